"""Validate a loaded spec: structure (pydantic) and meaning (names, references,
dependencies, resources, quota), every problem located at its YAML node.

The result, a ValidSpec, holds everything the compiler needs with every default
resolved, including those that come from the process environment, so that the
compiler itself reads nothing but its arguments.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from pydantic import BaseModel, ValidationError

from envspec import refs
from envspec.errors import Problem, SpecError
from envspec.graph import CycleError, layers
from envspec.loader import LoadedDocument, PathKey, format_path
from envspec.model import API_VERSION, DNS_LABEL, NAME_MAX_LENGTH, EnvironmentSpec, Resources
from envspec.templates import engine
from envspec.units import NEVER, format_cpu, format_duration, format_memory, parse_duration, parse_quantity

DEFAULT_NAMESPACE_PREFIX = "envspec"
DEFAULT_TTL = "60m"
DEFAULT_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
DEFAULT_LIMITS = {"cpu": "1000m", "memory": "1Gi"}
RESERVED_ANNOTATION_PREFIX = "envspec.dev/"
RESERVED_LABEL_PREFIXES = ("envspec.dev/", "app.kubernetes.io/", "pod-security.kubernetes.io/")
COMPONENT_MAPS = ("databases", "services", "tests")

_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DATABASE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}")
_IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class ContainerResources:
    """Effective requests and limits of one container, defaults applied."""

    requests: dict[str, str]
    limits: dict[str, str]

    def as_manifest(self) -> dict[str, dict[str, str]]:
        return {"requests": dict(self.requests), "limits": dict(self.limits)}


@dataclass(frozen=True)
class ValidSpec:
    """A spec that passed validation, with every default resolved."""

    spec: EnvironmentSpec
    source: str
    environ: Mapping[str, str]  # the variables `${env.X}` references read, nothing else
    namespace_prefix: str
    ttl: str  # "60m", "1h30m" or "never"
    ttl_seconds: int | None
    default_resources: ContainerResources
    quota_cpu: str
    quota_memory: str
    quota_pods: int
    resources: dict[str, ContainerResources]  # component name -> effective resources
    service_layers: list[list[str]]  # services grouped by dependsOn, in start order
    document: LoadedDocument | None = field(default=None, repr=False, compare=False)


class _Collector:
    def __init__(self, doc: LoadedDocument) -> None:
        self.doc = doc
        self.problems: list[Problem] = []

    def add(self, path: PathKey, message: str, *, key: bool = False, display: PathKey | None = None) -> None:
        location = self.doc.locate(path, key=key)
        problem = Problem(location, format_path(display if display is not None else path), message)
        if problem not in self.problems:
            self.problems.append(problem)


def validate(doc: LoadedDocument, environ: Mapping[str, str]) -> ValidSpec:
    """Check everything; raise SpecError listing every problem found."""
    out = _Collector(doc)
    spec, dropped = _validate_structure(doc, out)
    if spec is None:
        raise SpecError(out.problems)
    valid = _Semantics(doc, spec, environ, dropped, out).run()
    if out.problems or valid is None:
        raise SpecError(out.problems)
    return valid


# --- structure -------------------------------------------------------------------------------


def _validate_structure(doc: LoadedDocument, out: _Collector) -> tuple[EnvironmentSpec | None, set[str]]:
    """Validate with pydantic; on errors, drop the offending parts and retry, so that the
    semantic checks still run over everything that is well-formed."""
    data: Any = _copy(doc.data)
    dropped: set[str] = set()
    for _ in range(4):
        try:
            return EnvironmentSpec.model_validate(data), dropped
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            for error in errors:
                _report_pydantic_error(error, out)
            if not _drop_invalid(data, [tuple(e["loc"]) for e in errors], dropped):
                return None, dropped
    return None, dropped


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _drop_invalid(data: dict[str, Any], locations: list[PathKey], dropped: set[str]) -> bool:
    """Remove what failed so a second pass can succeed; False when that is impossible."""
    for loc in locations:
        if not loc:
            return False
        top = loc[0]
        if top in ("apiVersion", "name"):
            # Required and without a default: substitute a neutral value.
            data[str(top)] = API_VERSION if top == "apiVersion" else "invalid"
            dropped.add(f"@{top}")
        elif top in COMPONENT_MAPS and len(loc) >= 2 and isinstance(data.get(top), dict):
            data[top].pop(loc[1], None)
            dropped.add(str(loc[1]))
        elif isinstance(top, str):
            data.pop(top, None)
            dropped.add(f"@{top}")
    return True


_TYPE_MESSAGES = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
}


def _report_pydantic_error(error: Mapping[str, Any], out: _Collector) -> None:
    loc: PathKey = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "envspec_at_key":
        out.add((*loc, ctx["key"]), ctx["reason"], key=True)
    elif kind == "extra_forbidden":
        name = str(loc[-1])
        message = f"unknown key '{name}'"
        suggestion = _closest(name, _keys_at(loc[:-1]))
        if suggestion:
            message += f"; did you mean '{suggestion}'?"
        out.add(loc, message, key=True)
    elif kind == "missing":
        out.add(loc[:-1], f"missing required key '{loc[-1]}'", key=True, display=loc[:-1] or loc)
    elif kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        given = error.get("input")
        if loc == ("apiVersion",):
            message = f"unsupported apiVersion {given!r}; the supported version is {API_VERSION}"
        else:
            message = f"must be one of: {', '.join(allowed)}"
            if isinstance(given, str):
                message += f" (got {given!r})"
                suggestion = _closest(given, allowed)
                if suggestion:
                    message += f"; did you mean '{suggestion}'?"
        out.add(loc, message)
    elif kind in _TYPE_MESSAGES:
        out.add(loc, _TYPE_MESSAGES[kind])
    else:
        message = str(error["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        out.add(loc, message[:1].lower() + message[1:])


def _closest(word: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    if matches:
        return matches[0]
    lowered = {c.lower(): c for c in candidates}
    return lowered.get(word.lower().replace("_", "").replace("-", ""))


def _keys_at(loc: PathKey) -> list[str]:
    """The keys valid in the mapping at `loc` (for suggestions)."""
    model: type[BaseModel] = EnvironmentSpec
    index = 0
    while index < len(loc):
        fields = {(f.alias or n): f for n, f in model.model_fields.items()}
        info = fields.get(str(loc[index]))
        if info is None:
            return []
        index += 1
        target = _unwrap(info.annotation)
        origin = typing.get_origin(target)
        if origin in (dict, list):
            index += 1
            target = _unwrap(typing.get_args(target)[-1])
        if not (isinstance(target, type) and issubclass(target, BaseModel)):
            return []
        model = target
    return [(f.alias or n) for n, f in model.model_fields.items()]


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


# --- meaning ---------------------------------------------------------------------------------


class _Semantics:
    def __init__(
        self,
        doc: LoadedDocument,
        spec: EnvironmentSpec,
        environ: Mapping[str, str],
        dropped: set[str],
        out: _Collector,
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
        defaults = self.default_resources()
        resources = self.component_resources(defaults)
        quota = self.quota(resources, defaults)
        if self.out.problems or defaults is None or quota is None:
            return None
        return ValidSpec(
            spec=spec,
            source=self.doc.source,
            environ=dict(sorted(self.used_environ.items())),
            namespace_prefix=prefix,
            ttl=ttl,
            ttl_seconds=ttl_seconds,
            default_resources=defaults,
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
        prefix = self.spec.namespace_prefix
        path: PathKey = ("namespacePrefix",)
        origin = "namespacePrefix"
        if prefix is None:
            prefix = self.environ.get("K8S_NAMESPACE_PREFIX") or DEFAULT_NAMESPACE_PREFIX
            origin = "K8S_NAMESPACE_PREFIX" if self.environ.get("K8S_NAMESPACE_PREFIX") else "default"
        if not (DNS_LABEL.fullmatch(prefix) and len(prefix) <= 40):
            message = _dns_message(prefix, 40)
            if origin != "namespacePrefix":
                message = f"environment variable K8S_NAMESPACE_PREFIX={prefix!r}: {message}"
            self.out.add(path, message)
        return prefix

    def ttl(self) -> tuple[str, int | None]:
        text = self.spec.ttl
        if text is None:
            minutes = self.environ.get("K8S_TTL_MINUTES")
            if minutes is None or minutes.strip() == "":
                text = DEFAULT_TTL
            elif minutes.strip().isdigit() and int(minutes) > 0:
                text = format_duration(int(minutes) * 60)
            else:
                self.out.add(
                    ("ttl",),
                    f"environment variable K8S_TTL_MINUTES={minutes!r} must be a whole number of minutes > 0",
                )
                return DEFAULT_TTL, parse_duration(DEFAULT_TTL)
        if text == NEVER:
            return NEVER, None
        seconds = parse_duration(text)
        return format_duration(seconds), seconds

    def check_labels(self) -> None:
        for key, value in self.spec.labels.items():
            path = ("labels", key)
            problem = _label_key_problem(key)
            if problem:
                self.out.add(path, problem, key=True)
            elif key.startswith(RESERVED_LABEL_PREFIXES):
                self.out.add(path, f"label key '{key}' is reserved for envspec", key=True)
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
                    suggestion = _closest(target, components)
                    if suggestion:
                        message += f"; did you mean '{suggestion}'?"
                    self.out.add((*path, "dependsOn", index), message)

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
                        self._check_text(item_path, word, secrets_allowed=False)
                for key, value in workload.env.items():
                    self._check_text((*path, "env", key), value, secrets_allowed=True)
        if spec.reporting is not None and spec.reporting.redis is not None:
            self._check_text(("reporting", "redis", "url"), spec.reporting.redis.url, secrets_allowed=False)

    def _check_image(self, path: PathKey, image: str) -> None:
        # The API server requires an image, and no pull can succeed with whitespace in it.
        if not image.strip():
            self.out.add(path, "must not be empty")
        elif any(character.isspace() for character in image):
            self.out.add(path, f"invalid image {image!r}: an image reference has no spaces")
        self._check_text(path, image, secrets_allowed=False)

    def _check_text(self, path: PathKey, text: str, *, secrets_allowed: bool) -> None:
        try:
            parsed = refs.references(text)
        except refs.ReferenceSyntaxError as exc:
            self.out.add(path, str(exc))
            return
        for ref in parsed:
            problem = self._reference_problem(ref, secrets_allowed)
            if problem:
                self.out.add(path, problem)

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
        message = f"{ref.text}: unknown name '{ref.scope}'"
        suggestion = _closest(ref.scope, [*self._component_names(), "env", "environment"])
        if suggestion:
            message += f"; did you mean '{suggestion}'?"
        return message

    # resources

    def default_resources(self) -> ContainerResources | None:
        requests = dict(DEFAULT_REQUESTS)
        limits = dict(DEFAULT_LIMITS)
        for variable, key in (("DEFAULT_CPU_LIMIT", "cpu"), ("DEFAULT_MEMORY_LIMIT", "memory")):
            value = self.environ.get(variable, "").strip()
            if value:
                try:
                    parse_quantity(value)
                except ValueError:
                    self.out.add(("resources",), f"environment variable {variable}={value!r} is not a valid quantity")
                    return None
                limits[key] = value
        settings = self.spec.resources
        written = settings.defaults if settings is not None else None
        written_requests: set[str] = set()
        if written is not None:
            for target, source, keys in (
                (requests, written.requests, written_requests),
                (limits, written.limits, set()),
            ):
                if source is not None:
                    given = {k: v for k, v in source.model_dump().items() if v is not None}
                    target.update(given)
                    keys.update(given)
        for key in ("cpu", "memory"):
            # A default limit (written, or from DEFAULT_*_LIMIT) below the built-in default
            # request lowers that request too, as Kubernetes does for a missing request.
            if key not in written_requests and parse_quantity(requests[key]) > parse_quantity(limits[key]):
                requests[key] = limits[key]
        effective = ContainerResources(requests, limits)
        if not self._check_request_limits(effective, ("resources", "defaults")):
            return None
        return effective

    def component_resources(self, defaults: ContainerResources | None) -> dict[str, ContainerResources]:
        if defaults is None:
            return {}
        result: dict[str, ContainerResources] = {}
        spec = self.spec
        for section, items in (("databases", spec.databases), ("services", spec.services), ("tests", spec.tests)):
            for name, item in items.items():
                effective = _effective(item.resources, defaults)
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
        self, resources: dict[str, ContainerResources], defaults: ContainerResources | None
    ) -> tuple[str, str, int] | None:
        spec = self.spec
        if len(resources) != len(spec.databases) + len(spec.services) + len(spec.tests):
            return None  # a component's resources were invalid; already reported
        need: dict[str, Fraction] = {}
        for key in ("cpu", "memory"):
            workloads = sum(
                (parse_quantity(resources[n].limits[key]) * s.replicas for n, s in spec.services.items()),
                Fraction(0),
            )
            databases = sum((parse_quantity(resources[n].limits[key]) for n in spec.databases), Fraction(0))
            largest_test = max((parse_quantity(resources[n].limits[key]) for n in spec.tests), default=Fraction(0))
            need[key] = workloads + databases + largest_test
        pods_needed = sum(s.replicas for s in spec.services.values()) + len(spec.databases) + (1 if spec.tests else 0)
        quota = spec.resources.quota if spec.resources is not None and spec.resources.quota else None
        written_cpu = quota.cpu if quota else "auto"
        written_memory = quota.memory if quota else "auto"
        pods = quota.pods if quota else 10
        result: list[str] = []
        formatters = (("cpu", written_cpu, format_cpu), ("memory", written_memory, format_memory))
        for key, written, formatter in formatters:
            if written == "auto":
                # Without tests, `auto` still leaves room for one default-sized test, so that
                # `envspec test --image ...` can run one in the environment.
                ad_hoc = parse_quantity(defaults.limits[key]) if defaults is not None and not spec.tests else 0
                result.append(formatter(need[key] + ad_hoc) if need[key] + ad_hoc else "0")
                continue
            if parse_quantity(written) < need[key]:
                self.out.add(
                    ("resources", "quota", key),
                    f"quota {written} is less than the environment needs: {formatter(need[key])} "
                    f"(the sum of container limits x replicas, plus the largest test)",
                )
            result.append(written)
        if pods_needed > pods:
            self.out.add(
                ("resources", "quota", "pods"),
                f"quota allows {pods} pods but the environment needs {pods_needed} "
                "(service replicas + one per database + one test at a time)",
            )
        return result[0], result[1], pods


def _effective(resources: Resources | None, defaults: ContainerResources) -> ContainerResources:
    requests = dict(defaults.requests)
    limits = dict(defaults.limits)
    own_requests = resources.requests.model_dump() if resources and resources.requests else {}
    own_limits = resources.limits.model_dump() if resources and resources.limits else {}
    for key in ("cpu", "memory"):
        if own_limits.get(key) is not None:
            limits[key] = own_limits[key]
            # A container that lowers its limit below the default request gets a request
            # equal to its limit, as Kubernetes itself defaults a missing request.
            if own_requests.get(key) is None and parse_quantity(requests[key]) > parse_quantity(limits[key]):
                requests[key] = limits[key]
        if own_requests.get(key) is not None:
            requests[key] = own_requests[key]
    return ContainerResources(requests, limits)


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


def _attribute_message(ref: refs.Reference, owner: str, allowed: Iterable[str]) -> str:
    return f"{ref.text}: {owner} has no attribute '{ref.attribute}' (use one of: {', '.join(allowed)})"
