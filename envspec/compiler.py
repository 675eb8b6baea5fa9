"""Compile a validated spec into the ordered plan of Kubernetes objects.

Pure: the result depends only on the arguments (no files but the packaged
templates, no clock, no randomness, no environment), so identical input gives
byte-identical output. Secret values come in as an argument; a slot without a
value gets a visible placeholder, written where the API server refuses it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envspec import refs
from envspec.defaults import ContainerResources, ValidSpec
from envspec.model import RESERVED_ENV_PREFIX, Database, Service, TestJob
from envspec.plan import (
    ENVIRONMENT_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    TTL_ANNOTATION,
    WAVE_ANNOTATION,
    Manifest,
    Plan,
    PlannedObject,
    SecretSlot,
)
from envspec.templates import Engine, engine, fill, render
from envspec.units import parse_duration

SECRET_PLACEHOLDER = "<generated-at-apply>"
NAMESPACE_MAX_LENGTH = 63

WAVE_NAMESPACE = 0
WAVE_POLICY = 1  # ResourceQuota, LimitRange, NetworkPolicy
WAVE_CONFIG = 2  # Secrets
WAVE_NETWORK = 3  # Services (and PersistentVolumeClaims)
WAVE_DATABASES = 4  # StatefulSets
WAVE_FIRST_SERVICES = 5  # Deployments, one wave per dependsOn layer; Jobs after the last

# Kubernetes expands `$(NAME)` in a container's command, args and env values from its env.
# Only envspec's own helper variables (model.RESERVED_ENV_PREFIX) are ever expanded: every
# `$` of the spec's text that the expansion would consume is escaped (see escape_expansion).
_EXPANDED_DOLLAR = re.compile(r"\$(?=[$(]|\Z)")

COMPONENT_LABEL = "app.kubernetes.io/component"
NAME_LABEL = "app.kubernetes.io/name"
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"


@dataclass(frozen=True)
class Identity:
    """The names an environment gets in the cluster."""

    environment: str  # label value: name, or name-id
    namespace: str


def identity(valid: ValidSpec, env_id: str | None) -> Identity:
    environment = valid.spec.name if not env_id else f"{valid.spec.name}-{env_id}"
    return Identity(environment, namespace_name(f"{valid.namespace_prefix}-{environment}"))


def namespace_name(full: str) -> str:
    """`full` if it fits in 63 characters, else a deterministic shortening ending in a hash."""
    if len(full) <= NAMESPACE_MAX_LENGTH:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: NAMESPACE_MAX_LENGTH - 9].rstrip('-')}-{digest}"


def secret_name(database: str) -> str:
    return f"{database}-credentials"


def secret_slots(valid: ValidSpec) -> tuple[SecretSlot, ...]:
    """The generated values the plan needs, one per engine-generated key of each database."""
    return tuple(
        sorted(
            SecretSlot(secret_name(name), key)
            for name, database in valid.spec.databases.items()
            for key in engine(database.engine).generated
        )
    )


def compile_plan(
    valid: ValidSpec,
    *,
    env_id: str | None = None,
    secrets: Mapping[SecretSlot, str] | None = None,
    include_tests: bool = False,
) -> Plan:
    """The ordered plan for `valid`. Missing secret values are shown as a placeholder."""
    return _Compiler(valid, identity(valid, env_id), secrets or {}, include_tests).compile()


def substitute(valid: ValidSpec, text: str, *, env_id: str | None = None) -> str:
    """`text` (a spec string that validation checked carries no secret reference) with its references filled in."""
    return _Compiler(valid, identity(valid, env_id), {}, False).substitute(text)


class _Compiler:
    def __init__(
        self, valid: ValidSpec, ident: Identity, secrets: Mapping[SecretSlot, str], include_tests: bool
    ) -> None:
        self.valid = valid
        self.spec = valid.spec
        self.ident = ident
        self.secrets = secrets
        self.include_tests = include_tests
        self.objects: list[PlannedObject] = []

    def compile(self) -> Plan:
        spec = self.spec
        self.add(WAVE_NAMESPACE, self.namespace())
        self.add(WAVE_POLICY, self.quota())
        self.add(WAVE_POLICY, self.limit_range())
        if spec.isolation == "namespace":
            self.add(WAVE_POLICY, render("base/networkpolicy"))
        for name, database in spec.databases.items():
            definition = engine(database.engine)
            self.add(WAVE_CONFIG, self.database_secret(name, database, definition), name, "database")
            self.add(WAVE_NETWORK, self.service_object(name, definition.engine, definition.port), name, "database")
            self.add(WAVE_DATABASES, self.statefulset(name, database, definition), name, "database")
        for name, service in spec.services.items():
            if service.port is not None:
                self.add(WAVE_NETWORK, self.service_object(name, "http", service.port), name, "service")
        wave = WAVE_FIRST_SERVICES
        for layer in self.valid.service_layers:
            for name in layer:
                self.add(wave, self.deployment(name, spec.services[name]), name, "service")
            wave += 1
        if self.include_tests:
            for name, test in spec.tests.items():
                self.add(wave, self.job(name, test), name, "test")
        ordered = sorted(self.objects, key=lambda o: (o.wave, o.kind, o.name))
        return Plan(
            environment=self.ident.environment,
            namespace=self.ident.namespace,
            ttl_seconds=self.valid.ttl_seconds,
            objects=tuple(ordered),
            secret_slots=secret_slots(self.valid),
        )

    # metadata

    def add(self, wave: int, manifest: Manifest, component: str | None = None, role: str | None = None) -> None:
        metadata = manifest.setdefault("metadata", {})
        if manifest["kind"] != "Namespace":
            metadata["namespace"] = self.ident.namespace
        metadata["labels"] = {**metadata.get("labels", {}), **self.labels(component, role)}
        metadata["annotations"] = {**metadata.get("annotations", {}), WAVE_ANNOTATION: str(wave)}
        self.objects.append(PlannedObject(wave, _ordered_manifest(manifest)))

    def labels(self, component: str | None = None, role: str | None = None) -> dict[str, str]:
        labels = dict(self.spec.labels)
        labels[MANAGED_BY_LABEL] = MANAGED_BY_VALUE
        labels[ENVIRONMENT_LABEL] = self.ident.environment
        if component is not None and role is not None:
            labels[NAME_LABEL] = component
            labels[COMPONENT_LABEL] = role
        return labels

    def selector(self, component: str) -> dict[str, str]:
        return {NAME_LABEL: component, ENVIRONMENT_LABEL: self.ident.environment}

    # wave 0-1

    def namespace(self) -> Manifest:
        manifest: Manifest = render("base/namespace", name=self.ident.namespace)
        level = self.spec.pod_security
        manifest["metadata"]["labels"] = {
            ENFORCE_LABEL: level,
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/audit": "restricted",
        }
        manifest["metadata"]["annotations"] = {TTL_ANNOTATION: self.valid.ttl}
        return manifest

    def quota(self) -> Manifest:
        valid = self.valid
        manifest: Manifest = render(
            "base/resourcequota", cpu=valid.quota_cpu, memory=valid.quota_memory, pods=str(valid.quota_pods)
        )
        return manifest

    def limit_range(self) -> Manifest:
        defaults = self.valid.default_resources
        manifest: Manifest = render("base/limitrange", limits=dict(defaults.limits), requests=dict(defaults.requests))
        return manifest

    # databases

    def database_secret(self, name: str, database: Database, definition: Engine) -> Manifest:
        values = self.database_values(name, database, definition)
        data: dict[str, str] = {"host": name, "port": str(definition.port)}
        if definition.user is not None:
            data["username"] = definition.user
        if "database" in definition.attributes:
            data["database"] = values["database"]
        for key in definition.generated:
            data[key] = self.secret_value(SecretSlot(secret_name(name), key))
        data["url"] = str(fill(definition.url, values))
        manifest: Manifest = render("base/secret", name=secret_name(name), data=dict(sorted(data.items())))
        unset = {key: value for key, value in data.items() if SECRET_PLACEHOLDER in value}
        if unset:
            # A review render (no secret values given) must not be appliable with a password
            # everybody knows: the placeholder-bearing keys go under `data`, which holds base64,
            # and `<` is no base64 character, so the API server refuses the whole Secret.
            manifest["stringData"] = {k: v for k, v in manifest["stringData"].items() if k not in unset}
            manifest["data"] = dict(sorted(unset.items()))
        return manifest

    def database_values(self, name: str, database: Database, definition: Engine) -> dict[str, str]:
        return {
            "host": name,
            "port": str(definition.port),
            "user": definition.user or "",
            "password": self.secret_value(SecretSlot(secret_name(name), "password"))
            if "password" in definition.generated
            else "",
            "database": database.database or name,
        }

    def secret_value(self, slot: SecretSlot) -> str:
        return self.secrets.get(slot, SECRET_PLACEHOLDER)

    def statefulset(self, name: str, database: Database, definition: Engine) -> Manifest:
        image = (
            self.substitute(database.image)
            if database.image
            else f"{definition.image}:{database.version or definition.default_version}"
        )
        env = fill(definition.env, {"secret": secret_name(name)})
        # The root filesystem is read-only; what the engine writes gets an emptyDir of its own.
        writable = {_volume_name(path): path for path in definition.writable_paths}
        container = self.container(
            name=name,
            image=image,
            env=env,
            port=(definition.engine, definition.port),
            resources=self.valid.resources[name],
            readiness=definition.readiness_probe,
            liveness=definition.liveness_probe,
            startup=definition.readiness_probe,
            mounts=[
                {"name": "data", "mountPath": definition.data_path},
                *({"name": volume, "mountPath": path} for volume, path in writable.items()),
            ],
            run_as_user=definition.run_as_user,
        )
        claims = None
        volumes: list[dict[str, Any]] = [{"name": "data", "emptyDir": {}}]
        if database.storage is not None:
            claims = [render("base/volumeclaim", storage=database.storage)]
            volumes = []
        volumes += [{"name": volume, "emptyDir": {}} for volume in writable]
        pod = self.pod(container, restart_policy=None, volumes=volumes, fs_group=definition.run_as_user)
        manifest: Manifest = render(
            "base/statefulset",
            name=name,
            selector=self.selector(name),
            podLabels=self.pod_labels(name, "database"),
            podAnnotations=dict(database.annotations) or None,
            pod=pod,
            volumeClaimTemplates=claims,
        )
        return manifest

    # services and tests

    def service_object(self, name: str, port_name: str, port: int) -> Manifest:
        manifest: Manifest = render(
            "base/service", name=name, selector=self.selector(name), portName=port_name, port=port
        )
        return manifest

    def deployment(self, name: str, service: Service) -> Manifest:
        readiness = liveness = None
        if service.health is not None:
            probe: dict[str, Any] = {
                "httpGet": {"path": service.health.path, "port": service.health.port or service.port}
            }
            if service.health.initial_delay_seconds is not None:
                probe["initialDelaySeconds"] = service.health.initial_delay_seconds
            if service.health.period_seconds is not None:
                probe["periodSeconds"] = service.health.period_seconds
            readiness = probe
            # Liveness gives a slow starter more time than readiness before restarting it.
            liveness = {**probe, "failureThreshold": 6}
        container = self.container(
            name=name,
            image=self.substitute(service.image),
            command=self.substitute_all(service.command),
            args=self.substitute_all(service.args),
            env=self.env(service.env),
            port=("http", service.port) if service.port is not None else None,
            resources=self.valid.resources[name],
            readiness=readiness,
            liveness=liveness,
        )
        manifest: Manifest = render(
            "base/deployment",
            name=name,
            replicas=service.replicas,
            selector=self.selector(name),
            podLabels=self.pod_labels(name, "service"),
            podAnnotations=dict(service.annotations) or None,
            pod=self.pod(container, restart_policy=None, volumes=None),
        )
        return manifest

    def job(self, name: str, test: TestJob) -> Manifest:
        container = self.container(
            name=name,
            image=self.substitute(test.image),
            command=self.substitute_all(test.command),
            args=self.substitute_all(test.args),
            env=self.env(test.env),
            resources=self.valid.resources[name],
        )
        manifest: Manifest = render(
            "base/job",
            name=name,
            backoffLimit=test.retries,
            activeDeadlineSeconds=parse_duration(test.timeout),
            podLabels=self.pod_labels(name, "test"),
            podAnnotations=dict(test.annotations) or None,
            pod=self.pod(container, restart_policy="Never", volumes=None),
        )
        return manifest

    def pod_labels(self, component: str, role: str) -> dict[str, str]:
        return self.labels(component, role)

    def pod(
        self,
        container: dict[str, Any],
        *,
        restart_policy: str | None,
        volumes: list[dict[str, Any]] | None,
        fs_group: int | None = None,
    ) -> dict[str, Any]:
        security: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
        if self.spec.pod_security == "restricted":
            security["runAsNonRoot"] = True
        if fs_group is not None:
            security["fsGroup"] = fs_group
        pod: dict[str, Any] = render(
            "base/pod", restartPolicy=restart_policy, securityContext=security, container=container, volumes=volumes
        )
        return pod

    def container(
        self,
        *,
        name: str,
        image: str,
        resources: ContainerResources,
        command: list[str] | None = None,
        args: list[str] | None = None,
        env: list[dict[str, Any]] | None = None,
        port: tuple[str, int] | None = None,
        readiness: dict[str, Any] | None = None,
        liveness: dict[str, Any] | None = None,
        startup: dict[str, Any] | None = None,
        mounts: list[dict[str, Any]] | None = None,
        run_as_user: int | None = None,
    ) -> dict[str, Any]:
        security: dict[str, Any] = {"allowPrivilegeEscalation": False}
        if run_as_user is not None:
            # Database images run as their own non-root user: nothing needs a capability.
            security.update(
                capabilities={"drop": ["ALL"]}, runAsNonRoot=True, runAsUser=run_as_user, readOnlyRootFilesystem=True
            )
        elif self.spec.pod_security == "restricted":
            security.update(capabilities={"drop": ["ALL"]}, runAsNonRoot=True)
        else:
            # An application image may still start as root and switch users (SETUID,
            # SETGID, CHOWN); raw sockets are the one capability no test app needs.
            security["capabilities"] = {"drop": ["NET_RAW"]}
        container: dict[str, Any] = render(
            "base/container",
            name=name,
            image=image,
            command=command or None,
            args=args or None,
            env=env or None,
            ports=[{"name": port[0], "containerPort": port[1], "protocol": "TCP"}] if port else None,
            readinessProbe=readiness,
            livenessProbe=liveness,
            startupProbe=startup,
            resources=resources.as_manifest(),
            securityContext=security,
            volumeMounts=mounts,
        )
        return container

    # references

    def reference_value(self, ref: refs.Reference) -> str:
        """The literal value of a reference that carries no secret."""
        if ref.is_env:
            value = self.valid.environ.get(ref.attribute)
            return value if value is not None else (ref.default or "")
        if ref.is_environment:
            return self.ident.environment if ref.attribute == "name" else self.ident.namespace
        if ref.scope in self.spec.databases:
            database = self.spec.databases[ref.scope]
            return self.database_values(ref.scope, database, engine(database.engine))[ref.attribute]
        service = self.spec.services[ref.scope]
        values = {"host": ref.scope, "port": str(service.port), "url": f"http://{ref.scope}:{service.port}"}
        return values[ref.attribute]

    def substitute(self, text: str) -> str:
        return "".join(s if isinstance(s, str) else self.reference_value(s) for s in refs.parse(text))

    def substitute_all(self, words: list[str] | None) -> list[str] | None:
        """Command or args: the words as the container must see them, escaped for $(VAR) expansion."""
        return None if words is None else [escape_expansion(self.substitute(word)) for word in words]

    def is_secret(self, ref: refs.Reference) -> bool:
        return ref.scope in self.spec.databases and ref.attribute in refs.SECRET_ATTRIBUTES

    def env(self, variables: Mapping[str, str]) -> list[dict[str, Any]]:
        """Container env: secret-bearing references become secretKeyRefs, never values."""
        result: list[dict[str, Any]] = []
        injected: set[str] = set()
        for name, text in variables.items():
            segments = refs.parse(text)
            secret_refs = [s for s in segments if isinstance(s, refs.Reference) and self.is_secret(s)]
            if len(segments) == 1 and secret_refs:
                result.append({"name": name, "valueFrom": self.secret_key_ref(secret_refs[0])})
                continue
            parts: list[str] = []
            literal: list[str] = []  # the text between helpers: what the user wrote, references filled
            for segment in segments:
                if isinstance(segment, str):
                    literal.append(segment)
                elif self.is_secret(segment):
                    # Kubernetes expands $(VAR) from variables defined earlier in the list,
                    # so the secret is joined into the value by the kubelet, not by us.
                    helper = _helper_variable(segment)
                    if helper not in injected:
                        injected.add(helper)
                        result.append({"name": helper, "valueFrom": self.secret_key_ref(segment)})
                    parts.append(escape_expansion("".join(literal)))
                    literal = []
                    parts.append(f"$({helper})")
                else:
                    literal.append(self.reference_value(segment))
            parts.append(escape_expansion("".join(literal)))
            result.append({"name": name, "value": "".join(parts)})
        return result

    def secret_key_ref(self, ref: refs.Reference) -> dict[str, Any]:
        return {"secretKeyRef": {"name": secret_name(ref.scope), "key": ref.attribute}}


def _helper_variable(ref: refs.Reference) -> str:
    return f"{RESERVED_ENV_PREFIX}{ref.scope.upper().replace('-', '_')}_{ref.attribute.upper()}"


def _volume_name(path: str) -> str:
    """`/var/run/postgresql` -> `var-run-postgresql`: a DNS label naming the path's emptyDir."""
    return path.strip("/").replace("/", "-").replace("_", "-").lower()


def escape_expansion(text: str) -> str:
    """`text` written so that Kubernetes' $(VAR) expansion gives it back unchanged.

    The kubelet turns `$$` into `$` and `$(NAME)` into the value of NAME; a `$` before any
    other character (or at the end) is kept. So a `$` before `$` or `(`, or ending the text
    (a helper's `$(…)` may follow it), is doubled: no spelling in a spec, and no value a
    reference brings in, can expand a variable, a secret-backed one least of all.
    """
    return _EXPANDED_DOLLAR.sub("$$", text)


_TOP_ORDER = ("apiVersion", "kind", "metadata", "type", "spec", "stringData", "data")
_METADATA_ORDER = ("name", "namespace", "labels", "annotations")


def _ordered_manifest(manifest: Manifest) -> Manifest:
    """Conventional key order (apiVersion, kind, metadata, …) for readable output."""
    ordered = {key: manifest[key] for key in _TOP_ORDER if key in manifest}
    ordered.update({k: v for k, v in manifest.items() if k not in ordered})
    metadata = ordered["metadata"]
    ordered["metadata"] = {key: metadata[key] for key in _METADATA_ORDER if key in metadata}
    return ordered
