"""Meaning checks: what the model's types cannot say, over a spec of the right shape.

Names (DNS labels, one namespace for databases, services and tests), labels,
database settings, dependencies and their cycles, references, and the defaulted
values (namespace prefix, requests against limits, the quota against what the
environment needs). Values are defaulted by `envspec.defaults`; this module
decides whether they are acceptable and builds the ValidSpec.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from envspec import defaults, refs
from envspec.defaults import ContainerResources, SettingError, ValidSpec
from envspec.graph import CycleError, layers
from envspec.loader import LoadedDocument, PathKey
from envspec.model import DNS_LABEL, HELPER_EXPANSION, NAME_MAX_LENGTH, EnvironmentSpec
from envspec.templates import engine
from envspec.units import MAX_QUANTITY, parse_quantity
from envspec.validation.images import image_problem
from envspec.validation.problems import ProblemCollector, with_suggestion
from envspec.validation.structure import COMPONENT_MAPS, Shaped

# Label key prefixes (before the `/`) that belong to someone else, and whom; a subdomain
# (`node.kubernetes.io`, `x.envspec.dev`) belongs to the same owner.
RESERVED_LABEL_DOMAINS = (
    ("envspec.dev", "envspec"),
    ("app.kubernetes.io", "envspec"),  # envspec writes managed-by, name and component
    ("pod-security.kubernetes.io", "envspec"),  # envspec writes the namespace's Pod Security level
    ("kubernetes.io", "Kubernetes"),
    ("k8s.io", "Kubernetes"),
)
RESERVED_ANNOTATION_PREFIX = "envspec.dev/"
RESERVED_LABEL_PREFIXES = ("janitor",)  # kube-janitor's janitor/ttl and janitor/expires (exact prefix)
NAMESPACE_PREFIX_MAX_LENGTH = 40

_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DATABASE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}")
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def check_meaning(
    doc: LoadedDocument, shaped: Shaped, environ: Mapping[str, str], out: ProblemCollector
) -> ValidSpec | None:
    """Every meaning check over `shaped`; the ValidSpec when the spec can be compiled."""
    return _Meaning(doc, shaped.spec, environ, shaped.dropped, out).run()


class _Meaning:
    def __init__(
        self,
        doc: LoadedDocument,
        spec: EnvironmentSpec,
        environ: Mapping[str, str],
        dropped: frozenset[str],
        out: ProblemCollector,
    ) -> None:
        self.doc = doc
        self.spec = spec
        self.environ = environ
        self.dropped = dropped  # names (or "@field") removed after structural errors
        self.out = out
        self.used_environ: dict[str, str] = {}

    def run(self) -> ValidSpec | None:
        spec = self.spec
        self.check_names()
        prefix = self.namespace_prefix()
        ttl, ttl_seconds = self.ttl()
        self.check_labels()
        self.check_annotations()
        self.check_databases()
        self.check_services()
        self.check_references()
        service_layers = self.service_layers()
        default_resources = self.default_resources()
        resources = self.component_resources(default_resources)
        quota = self.quota(resources, default_resources)
        if self.out.problems or default_resources is None or quota is None:
            return None
        return ValidSpec(
            spec=spec,
            source=self.doc.source,
            environ=dict(sorted(self.used_environ.items())),
            namespace_prefix=prefix,
            ttl=ttl,
            ttl_seconds=ttl_seconds,
            default_resources=default_resources,
            quota_cpu=quota[0],
            quota_memory=quota[1],
            quota_pods=quota[2],
            resources=resources,
            service_layers=service_layers,
            document=self.doc,
        )

    # names

    def check_names(self) -> None:
        if "@name" not in self.dropped:
            name = self.spec.name
            if not (DNS_LABEL.fullmatch(name) and len(name) <= NAME_MAX_LENGTH):
                self.out.add(("name",), _dns_message(name, NAME_MAX_LENGTH))
        seen: dict[str, str] = {}
        for section in COMPONENT_MAPS:
            for name in self._raw_keys(section):
                path = (section, name)
                if not (DNS_LABEL.fullmatch(name) and len(name) <= NAME_MAX_LENGTH):
                    self.out.add(path, _dns_message(name, NAME_MAX_LENGTH), key=True)
                elif name[0].isdigit() and self._has_service_object(section, name):
                    self.out.add(
                        path,
                        f"'{name}' must start with a letter: it also names a Kubernetes Service",
                        key=True,
                    )
                if name in ("env", "environment"):
                    self.out.add(path, f"'{name}' is reserved for references (${{{name}.…}})", key=True)
                if name in seen:
                    self.out.add(
                        path,
                        f"name '{name}' is already used in {seen[name]}; names of databases, services and "
                        "tests must be unique",
                        key=True,
                    )
                else:
                    seen[name] = section

    def _has_service_object(self, section: str, name: str) -> bool:
        """Databases, and services with a port, get a Service, whose name is a DNS-1035 label."""
        if section == "databases":
            return True
        service = self.spec.services.get(name) if section == "services" else None
        return service is not None and service.port is not None

    def _raw_keys(self, section: str) -> list[str]:
        raw = self.doc.data.get(section) if isinstance(self.doc.data, dict) else None
        return [str(k) for k in raw] if isinstance(raw, dict) else []

    def namespace_prefix(self) -> str:
        prefix = defaults.namespace_prefix(self.spec, self.environ)
        if not (DNS_LABEL.fullmatch(prefix.value) and len(prefix.value) <= NAMESPACE_PREFIX_MAX_LENGTH):
            message = _dns_message(prefix.value, NAMESPACE_PREFIX_MAX_LENGTH)
            if prefix.origin != "namespacePrefix":
                message = f"environment variable K8S_NAMESPACE_PREFIX={prefix.value!r}: {message}"
            self.out.add(("namespacePrefix",), message)
        return prefix.value

    def ttl(self) -> tuple[str, int | None]:
        try:
            return defaults.ttl(self.spec, self.environ)
        except SettingError as exc:
            self.out.add(exc.path, exc.message)
            return defaults.default_ttl()

    def check_labels(self) -> None:
        for key, value in self.spec.labels.items():
            path = ("labels", key)
            problem = _label_key_problem(key) or _reserved_label_problem(key)
            if problem:
                self.out.add(path, problem, key=True)
            if value and not (len(value) <= 63 and _LABEL_NAME.fullmatch(value)):
                self.out.add(
                    path,
                    f"invalid label value {value!r}: at most 63 characters of a-z, A-Z, 0-9, '-', '_', '.', "
                    "starting and ending with a letter or digit",
                )

    def check_annotations(self) -> None:
        """Pod annotations: valid Kubernetes annotation keys, none in envspec's own prefix."""
        sections: tuple[tuple[str, Mapping[str, Any]], ...] = (
            ("databases", self.spec.databases),
            ("services", self.spec.services),
            ("tests", self.spec.tests),
        )
        for section, components in sections:
            for name, component in components.items():
                for key in component.annotations:
                    path = (section, name, "annotations", key)
                    problem = _label_key_problem(key, "annotation")
                    if problem:
                        self.out.add(path, problem, key=True)
                    elif key.startswith(RESERVED_ANNOTATION_PREFIX):
                        self.out.add(path, f"annotation key '{key}' is reserved for envspec", key=True)

    def check_databases(self) -> None:
        for name, database in self.spec.databases.items():
            definition = engine(database.engine)
            path = ("databases", name)
            if database.database is not None and "database" not in definition.attributes:
                self.out.add((*path, "database"), f"{database.engine} databases have no database name")
            if database.database is not None and not _DATABASE_NAME.fullmatch(database.database):
                self.out.add((*path, "database"), "must be 1-63 characters of letters, digits, '_' and '-'")
            if database.version is not None and not _IMAGE_TAG.fullmatch(database.version):
                self.out.add((*path, "version"), f"invalid image tag {database.version!r}")

    def check_services(self) -> None:
        components = self._component_names()
        for name, service in self.spec.services.items():
            path = ("services", name)
            if service.health is not None and service.health.port is None and service.port is None:
                self.out.add((*path, "health"), "needs a port: set the service's `port` or `health.port`")
            for index, target in enumerate(service.depends_on or []):
                if target in self.spec.tests:
                    self.out.add((*path, "dependsOn", index), f"'{target}' is a test; services cannot depend on tests")
                elif target not in components and target not in self.dropped:
                    message = f"unknown name '{target}': no database or service is called that"
                    self.out.add((*path, "dependsOn", index), with_suggestion(message, target, components))

    def _component_names(self) -> list[str]:
        return sorted([*self.spec.databases, *self.spec.services])

    def service_layers(self) -> list[list[str]]:
        edges = {
            name: [t for t in (service.depends_on or []) if t in self.spec.services]
            for name, service in self.spec.services.items()
        }
        try:
            return layers(edges)
        except CycleError as exc:
            first, second = exc.cycle[0], exc.cycle[1]
            index = (self.spec.services[first].depends_on or []).index(second)
            self.out.add(("services", first, "dependsOn", index), f"dependency cycle: {exc}")
            return []

    # references

    def check_references(self) -> None:
        spec = self.spec
        for name, database in spec.databases.items():
            if database.image is not None:
                self._check_image(("databases", name, "image"), database.image)
        for section, workloads in (("services", spec.services), ("tests", spec.tests)):
            for name, workload in workloads.items():
                path = (section, name)
                self._check_image((*path, "image"), workload.image)
                for field_name in ("command", "args"):
                    words: list[str] | None = getattr(workload, field_name)
                    for index, word in enumerate(words or []):
                        item_path: PathKey = (*path, field_name, index)
                        if not self.doc.has(item_path):
                            item_path = (*path, field_name)
                        if self._check_text(item_path, word, secrets_allowed=False):
                            self._check_expansion(item_path, word)
                for key, value in workload.env.items():
                    if self._check_text((*path, "env", key), value, secrets_allowed=True):
                        self._check_expansion((*path, "env", key), value)
        if spec.reporting is not None and spec.reporting.redis is not None:
            self._check_text(("reporting", "redis", "url"), spec.reporting.redis.url, secrets_allowed=False)

    def _check_image(self, path: PathKey, image: str) -> None:
        """The image as the container runtime will read it: with its references substituted
        (a `${env.TAG}` holding a space or a newline makes it invalid), against the grammar."""
        if not image.strip():
            self.out.add(path, "must not be empty")  # the API server requires an image
            return
        if not self._check_text(path, image, secrets_allowed=False):
            return
        resolved = self._substituted(image)
        problem = image_problem(resolved)
        if problem and resolved != image:
            problem += f" (the image after substituting its references in {_shown(image)})"
        if problem:
            self.out.add(path, problem)

    def _check_expansion(self, path: PathKey, text: str) -> None:
        """`$(ENVSPEC_…)` brought in by a reference (`${env.X}`): harmless, since the compiler
        escapes it, but never what was meant; the spec's own text is checked by the model."""
        if HELPER_EXPANSION in text:
            return
        # Only an env reference can bring a `$(`: the others are names, ports and addresses.
        filled = "".join(
            s if isinstance(s, str) else self._reference_value(s) if s.is_env else "" for s in refs.parse(text)
        )
        if HELPER_EXPANSION in filled:
            self.out.add(
                path,
                f"with its references filled in, the text holds {HELPER_EXPANSION}…), a variable reserved for "
                "envspec; it would be passed on as written, not expanded",
            )

    def _check_text(self, path: PathKey, text: str, *, secrets_allowed: bool) -> bool:
        """Report every reference problem of `text`; True when it has none."""
        try:
            parsed = refs.references(text)
        except refs.ReferenceSyntaxError as exc:
            self.out.add(path, str(exc))
            return False
        ok = True
        for ref in parsed:
            problem = self._reference_problem(ref, secrets_allowed)
            if problem:
                self.out.add(path, problem)
                ok = False
        return ok

    def _substituted(self, text: str) -> str:
        """`text` with references replaced by the values the compiler will give them (without an
        `--id`, which adds only `-<id>` of a-z, 0-9 and '-' to the environment's name)."""
        return "".join(s if isinstance(s, str) else self._reference_value(s) for s in refs.parse(text))

    def _reference_value(self, ref: refs.Reference) -> str:
        """The value of a reference already known to be valid and to carry no secret."""
        spec = self.spec
        if ref.is_env:
            value = self.environ.get(ref.attribute)
            return value if value is not None else (ref.default or "")
        if ref.is_environment:
            prefix = defaults.namespace_prefix(spec, self.environ).value
            return spec.name if ref.attribute == "name" else f"{prefix}-{spec.name}"
        if ref.scope in spec.databases:
            database = spec.databases[ref.scope]
            definition = engine(database.engine)
            values = {
                "host": ref.scope,
                "port": str(definition.port),
                "user": definition.user or "",
                "database": database.database or ref.scope,
            }
            return values.get(ref.attribute, "")
        service = spec.services[ref.scope]
        values = {"host": ref.scope, "port": str(service.port), "url": f"http://{ref.scope}:{service.port}"}
        return values.get(ref.attribute, "")

    def _reference_problem(self, ref: refs.Reference, secrets_allowed: bool) -> str | None:
        spec = self.spec
        if ref.is_env:
            if ref.attribute in self.environ:
                self.used_environ[ref.attribute] = self.environ[ref.attribute]
                return None
            if ref.default is not None:
                return None
            return (
                f"{ref.text}: environment variable {ref.attribute} is not set "
                f"(give a default: ${{env.{ref.attribute}:-value}})"
            )
        if ref.is_environment:
            if ref.attribute not in refs.ENVIRONMENT_ATTRIBUTES:
                return _attribute_message(ref, "the environment", refs.ENVIRONMENT_ATTRIBUTES)
            return None
        if ref.scope in spec.databases:
            database = spec.databases[ref.scope]
            allowed = engine(database.engine).attributes
            if ref.attribute not in allowed:
                return _attribute_message(ref, f"{database.engine} database '{ref.scope}'", allowed)
            if ref.attribute in refs.SECRET_ATTRIBUTES and not secrets_allowed:
                what = "a password" if ref.attribute == "password" else "a database URL"
                return (
                    f"{ref.text} is {what}, which lives only in the database's Secret; "
                    "use it in `env` values, where it is read from that Secret"
                )
            return None
        if ref.scope in spec.services:
            service = spec.services[ref.scope]
            if ref.attribute not in refs.SERVICE_ATTRIBUTES:
                return _attribute_message(ref, f"service '{ref.scope}'", refs.SERVICE_ATTRIBUTES)
            if service.port is None:
                return f"{ref.text}: service '{ref.scope}' has no port, so it has no address"
            return None
        if ref.scope in self.dropped:
            return None
        if ref.scope in spec.tests:
            return f"{ref.text}: '{ref.scope}' is a test; only databases and services can be referenced"
        return with_suggestion(
            f"{ref.text}: unknown name '{ref.scope}'", ref.scope, [*self._component_names(), "env", "environment"]
        )

    # resources

    def default_resources(self) -> ContainerResources | None:
        try:
            effective = defaults.default_resources(self.spec, self.environ)
        except SettingError as exc:
            self.out.add(exc.path, exc.message)
            return None
        if not self._check_request_limits(effective, ("resources", "defaults")):
            return None
        return effective

    def component_resources(self, default_resources: ContainerResources | None) -> dict[str, ContainerResources]:
        if default_resources is None:
            return {}
        result: dict[str, ContainerResources] = {}
        spec = self.spec
        for section, items in (("databases", spec.databases), ("services", spec.services), ("tests", spec.tests)):
            for name, item in items.items():
                effective = defaults.effective_resources(item.resources, default_resources)
                if self._check_request_limits(effective, (section, name, "resources")):
                    result[name] = effective
        return result

    def _check_request_limits(self, resources: ContainerResources, path: PathKey) -> bool:
        ok = True
        for key in ("cpu", "memory"):
            request = parse_quantity(resources.requests[key])
            limit = parse_quantity(resources.limits[key])
            if request > limit:
                # At the value written in the spec (the request, else the limit), when there is one.
                where = next(
                    (
                        candidate
                        for candidate in ((*path, "requests", key), (*path, "limits", key))
                        if self.doc.has(candidate)
                    ),
                    path,
                )
                self.out.add(
                    where,
                    f"requests.{key} {resources.requests[key]} is more than limits.{key} {resources.limits[key]}",
                    display=path,
                )
                ok = False
        return ok

    def quota(
        self, resources: dict[str, ContainerResources], default_resources: ContainerResources | None
    ) -> tuple[str, str, int] | None:
        spec = self.spec
        if len(resources) != len(spec.databases) + len(spec.services) + len(spec.tests):
            return None  # a component's resources were invalid; already reported
        need = defaults.quota_need(spec, resources)
        written = defaults.written_quota(spec)
        amounts: list[str] = []
        for key in ("cpu", "memory"):
            given = written.cpu if key == "cpu" else written.memory
            if need.of(key) > MAX_QUANTITY:
                self.out.add(
                    ("resources", "quota", key),
                    f"the environment needs {defaults.format_amount(key, need.of(key))} of {key} (the sum of "
                    f"container limits x replicas, plus the largest test), more than a quota can hold: "
                    f"at most {MAX_QUANTITY} (2^63-1)",
                )
                return None
            amount = defaults.quota_amount(key, given, need)
            if given == defaults.AUTO and not spec.tests and default_resources is not None:
                # Without tests, `auto` still leaves room for one default-sized test, so that
                # `envspec test --image ...` can run one in the environment.
                room = need.of(key) + parse_quantity(default_resources.limits[key])
                amount = defaults.format_amount(key, room)
            if given != defaults.AUTO and parse_quantity(given) < need.of(key):
                self.out.add(
                    ("resources", "quota", key),
                    f"quota {given} is less than the environment needs: {defaults.format_amount(key, need.of(key))} "
                    "(the sum of container limits x replicas, plus the largest test)",
                )
            amounts.append(amount)
        if need.pods > written.pods:
            self.out.add(
                ("resources", "quota", "pods"),
                f"quota allows {written.pods} pods but the environment needs {need.pods} "
                "(service replicas + one per database + one test at a time)",
            )
        return amounts[0], amounts[1], written.pods


def _dns_message(name: str, maximum: int) -> str:
    if not name:
        return "must not be empty"
    if len(name) > maximum:
        return f"'{name}' is {len(name)} characters long; at most {maximum} are allowed"
    return (
        f"'{name}' is not a valid name: use lower-case letters, digits and '-', "
        "starting and ending with a letter or digit"
    )


def _label_key_problem(key: str, what: str = "label") -> str | None:
    """Label and annotation keys share one syntax: an optional DNS-subdomain prefix and `/`, then a name."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return f"invalid {what} key '{key}': the prefix must be a DNS subdomain"
    if not name or len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        return (
            f"invalid {what} key '{key}': the name must be 1-63 characters of a-z, A-Z, 0-9, '-', '_', '.', "
            "starting and ending with a letter or digit"
        )
    return None


def _reserved_label_problem(key: str) -> str | None:
    prefix, slash, _ = key.rpartition("/")
    if not slash:
        return None
    for domain, owner in RESERVED_LABEL_DOMAINS:
        if prefix == domain or prefix.endswith("." + domain):
            if owner == "envspec":
                return f"label key '{key}' is reserved for envspec"
            return (
                f"label key '{key}' is reserved for {owner}: prefixes kubernetes.io/ and k8s.io/, "
                "and their subdomains, are Kubernetes' own"
            )
    if prefix in RESERVED_LABEL_PREFIXES:
        return f"label key '{key}' is reserved for kube-janitor (envspec writes janitor/expires)"
    return None


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:60] + "…")


def _attribute_message(ref: refs.Reference, owner: str, allowed: Iterable[str]) -> str:
    return f"{ref.text}: {owner} has no attribute '{ref.attribute}' (use one of: {', '.join(allowed)})"
