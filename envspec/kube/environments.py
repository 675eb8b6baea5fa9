"""Environments as they live on the cluster: find, inspect (`status`, `ls`), delete (`down`).

An environment is a namespace labelled `app.kubernetes.io/managed-by: envspec` and
`envspec.dev/environment: <name>`, plus the objects carrying the same labels
(inside it, and cluster-scoped ones such as ClusterRoles). Nothing here deletes
or reports an object without those labels.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio

from envspec.errors import EnvspecError
from envspec.events import NamespaceDeleted, NamespaceDeleting, Sink, format_expiry, format_span
from envspec.kube import kinds
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.readiness import Readiness, Related, assess, waiting
from envspec.kube.ssa import delete_object, get_object, list_objects
from envspec.kube.wait import DEFAULT_CLASS_ANNOTATION, Target, cluster_view, task_group, wait_gone
from envspec.plan import (
    ENVIRONMENT_LABEL,
    EXPIRES_AT_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    SPEC_NAME_ANNOTATION,
    WAVE_ANNOTATION,
    Plan,
    is_managed,
    labels_of,
)

Json = dict[str, Any]
MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"


@dataclass(frozen=True)
class EnvironmentRef:
    """Which environment a command means: from a spec (`-f`, exact) or by name (`--name`)."""

    environment: str  # the environment label value: name, or name-id
    namespace: str | None = None  # known when it comes from a spec
    plan: Plan | None = None  # with `-f`: what should be there, to show what is missing

    def describe(self) -> str:
        return f"environment {self.environment}" + (f" (namespace {self.namespace})" if self.namespace else "")


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata: Mapping[str, Any] = obj.get("metadata") or {}
    return metadata


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    annotations: Mapping[str, str] = _metadata(obj).get("annotations") or {}
    return annotations


def _wave(obj: Mapping[str, Any]) -> int | None:
    try:
        return int(_annotations(obj).get(WAVE_ANNOTATION, ""))
    except ValueError:
        return None


def _created(obj: Mapping[str, Any]) -> datetime | None:
    stamp = _metadata(obj).get("creationTimestamp")
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None


async def find_namespace(api: Any, ref: EnvironmentRef, *, deadline: Deadline) -> Json | None:
    """The environment's namespace, managed or not (callers decide); None when there is none.

    By name: the namespace labelled for the environment, else a namespace named so
    (so that `down --name kube-system` is refused rather than "not found").
    """
    if ref.namespace:
        return await get_object(api, kinds.NAMESPACE, ref.namespace, None, deadline=deadline)
    selector = f"{MANAGED_SELECTOR},{ENVIRONMENT_LABEL}={ref.environment}"
    listing = await list_objects(api, kinds.NAMESPACE, None, deadline=deadline, label_selector=selector)
    if len(listing.items) > 1:
        names = ", ".join(str(_metadata(n).get("name")) for n in listing.items)
        raise EnvspecError(f"several namespaces carry environment {ref.environment}: {names}; use -f with the spec")
    if listing.items:
        return listing.items[0]
    return await get_object(api, kinds.NAMESPACE, ref.environment, None, deadline=deadline)


def require_managed(namespace: Json, what: str) -> None:
    if not is_managed(namespace):
        name = _metadata(namespace).get("name")
        raise EnvspecError(
            f"refusing to {what} namespace {name}: envspec does not manage it "
            f"(no label {MANAGED_BY_LABEL}={MANAGED_BY_VALUE})"
        )


# ---------------------------------------------------------------- down


@dataclass(frozen=True)
class DownResult:
    environment: str
    namespace: str | None  # None: there was nothing to delete
    deleted: tuple[str, ...] = ()  # cluster-scoped objects deleted besides the namespace
    seconds: float = 0.0
    waited: bool = True


async def down_environment(
    target: ClusterTarget, ref: EnvironmentRef, *, sink: Sink, wait: bool, deadline: Deadline
) -> DownResult:
    """Delete the environment's namespace (refusing one envspec does not manage), and wait until it is gone."""
    started = time.monotonic()
    async with connect(target) as api:
        namespace = await find_namespace(api, ref, deadline=deadline)
        if namespace is None:
            return DownResult(ref.environment, None)
        require_managed(namespace, "delete")
        name = str(_metadata(namespace)["name"])
        environment = labels_of(namespace).get(ENVIRONMENT_LABEL, ref.environment)
        sink.emit(NamespaceDeleting(environment, name))
        await delete_object(api, kinds.NAMESPACE, name, None, deadline=deadline, uid=_metadata(namespace).get("uid"))
        # Cluster-scoped objects of the environment are not inside the namespace: delete them too.
        deleted = await _delete_cluster_scoped(api, environment, deadline=deadline)
        if wait:
            async with cluster_view(api) as view:
                await wait_gone(view, [Target(kinds.NAMESPACE, name, None)], deadline=deadline)
            sink.emit(NamespaceDeleted(environment, name, time.monotonic() - started))
        return DownResult(environment, name, deleted, time.monotonic() - started, wait)


async def _delete_cluster_scoped(api: Any, environment: str, *, deadline: Deadline) -> tuple[str, ...]:
    selector = f"{MANAGED_SELECTOR},{ENVIRONMENT_LABEL}={environment}"
    deleted: list[str] = []
    for rtype in kinds.MANAGED_KINDS.values():
        if rtype.namespaced or rtype.kind == "Namespace":
            continue
        for item in (await list_objects(api, rtype, None, deadline=deadline, label_selector=selector)).items:
            if is_managed(item) and labels_of(item).get(ENVIRONMENT_LABEL) == environment:
                metadata = _metadata(item)
                name = str(metadata["name"])
                await delete_object(api, rtype, name, None, deadline=deadline, uid=metadata.get("uid"))
                deleted.append(rtype.ref(name))
    return tuple(deleted)


# ---------------------------------------------------------------- status


@dataclass(frozen=True)
class ObjectStatus:
    wave: int | None
    kind: str
    name: str
    namespace: str | None
    readiness: Readiness
    present: bool = True

    @property
    def ref(self) -> str:
        return f"{self.kind.lower()}/{self.name}"

    @property
    def ready(self) -> bool:
        return self.present and self.readiness.done and self.readiness.ok


@dataclass(frozen=True)
class EnvironmentStatus:
    environment: str
    namespace: str
    phase: str
    created: datetime | None
    expires_at: str | None
    spec_name: str | None
    objects: tuple[ObjectStatus, ...] = field(default=())

    @property
    def ready_count(self) -> int:
        return sum(1 for o in self.objects if o.ready)

    @property
    def all_ready(self) -> bool:
        return self.ready_count == len(self.objects)


def related_objects(pods: Iterable[Json], replica_sets: Iterable[Json], storage_classes: Iterable[Json]) -> Related:
    modes: dict[str, str] = {}
    default_class: str | None = None
    for storage_class in storage_classes:
        name = str(_metadata(storage_class).get("name"))
        modes[name] = str(storage_class.get("volumeBindingMode", "Immediate"))
        if _annotations(storage_class).get(DEFAULT_CLASS_ANNOTATION) == "true":
            default_class = name
    # Events are left out on purpose: old FailedCreate events would report healed failures.
    return Related(tuple(pods), tuple(replica_sets), (), modes, default_class)


def object_statuses(live: Iterable[Json], related: Related, plan: Plan | None = None) -> tuple[ObjectStatus, ...]:
    """A row per live object (and per planned object that is missing), ordered by wave."""
    rows: dict[tuple[str, str | None, str], ObjectStatus] = {}
    for obj in live:
        metadata = _metadata(obj)
        key = (str(obj.get("kind")), metadata.get("namespace"), str(metadata.get("name")))
        rows[key] = ObjectStatus(_wave(obj), key[0], key[2], key[1], assess(obj, related))
    if plan is not None:
        for planned in plan.objects:
            key = (planned.kind, planned.namespace, planned.name)
            if key not in rows:
                rows[key] = ObjectStatus(
                    planned.wave, planned.kind, planned.name, planned.namespace, waiting("missing"), present=False
                )
    return tuple(sorted(rows.values(), key=lambda r: (r.wave if r.wave is not None else 1 << 30, r.kind, r.name)))


async def _list_all(
    api: Any, types: Iterable[kinds.ResourceType], namespace: str | None, selector: str | None, deadline: Deadline
) -> dict[kinds.ResourceType, list[Json]]:
    found: dict[kinds.ResourceType, list[Json]] = {}

    async def collect(rtype: kinds.ResourceType) -> None:
        listing = await list_objects(api, rtype, namespace, deadline=deadline, label_selector=selector)
        found[rtype] = listing.items

    async with task_group() as group:
        for rtype in types:
            group.start_soon(collect, rtype)
    return found


async def environment_status(target: ClusterTarget, ref: EnvironmentRef, *, deadline: Deadline) -> EnvironmentStatus:
    async with connect(target) as api:
        namespace = await find_namespace(api, ref, deadline=deadline)
        if namespace is None or not is_managed(namespace):
            raise EnvspecError(f"{ref.describe()} is not on the cluster")
        name = str(_metadata(namespace)["name"])
        environment = labels_of(namespace).get(ENVIRONMENT_LABEL, ref.environment)
        selector = f"{MANAGED_SELECTOR},{ENVIRONMENT_LABEL}={environment}"
        managed = [t for t in kinds.MANAGED_KINDS.values() if t.kind != "Namespace"]
        objects = await _list_all(api, managed, name, selector, deadline)
        helpers = await _list_all(api, [kinds.POD, kinds.REPLICA_SET, kinds.STORAGE_CLASS], name, None, deadline)
    live = [namespace] + [
        item
        for rtype in managed
        for item in objects[rtype]
        if (not rtype.namespaced and labels_of(item).get(ENVIRONMENT_LABEL) == environment)
        or _metadata(item).get("namespace") == name
    ]
    related = related_objects(helpers[kinds.POD], helpers[kinds.REPLICA_SET], helpers[kinds.STORAGE_CLASS])
    return EnvironmentStatus(
        environment=environment,
        namespace=name,
        phase=str((namespace.get("status") or {}).get("phase", "")),
        created=_created(namespace),
        expires_at=_annotations(namespace).get(EXPIRES_AT_ANNOTATION),
        spec_name=_annotations(namespace).get(SPEC_NAME_ANNOTATION),
        objects=object_statuses(live, related, ref.plan),
    )


def status_table(status: EnvironmentStatus, *, now: datetime | None = None) -> str:
    head = (
        f"environment {status.environment}  namespace {status.namespace}  "
        f"ready {status.ready_count}/{len(status.objects)}  {format_expiry(status.expires_at, now=now)}"
    )
    rows = [("WAVE", "OBJECT", "READY", "MESSAGE")]
    for obj in status.objects:
        state = "yes" if obj.ready else "FAILED" if obj.readiness.failed else "no"
        rows.append(("-" if obj.wave is None else str(obj.wave), obj.ref, state, obj.readiness.message))
    return head + "\n" + _columns(rows)


def status_json(status: EnvironmentStatus, *, now: datetime | None = None) -> dict[str, Any]:
    return {
        "environment": status.environment,
        "namespace": status.namespace,
        "phase": status.phase,
        "expiresAt": status.expires_at,
        "expiresInSeconds": _seconds_left(status.expires_at, now),
        "ready": status.ready_count,
        "total": len(status.objects),
        "objects": [
            {
                "wave": o.wave,
                "kind": o.kind,
                "name": o.name,
                "namespace": o.namespace,
                "present": o.present,
                "ready": o.ready,
                "failed": o.readiness.failed,
                "message": o.readiness.message,
            }
            for o in status.objects
        ],
    }


def _seconds_left(expires_at: str | None, now: datetime | None) -> int | None:
    if not expires_at:
        return None
    try:
        instant = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int((instant - (now or datetime.now(UTC))).total_seconds())


def _columns(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]]) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


# ---------------------------------------------------------------- ls


@dataclass(frozen=True)
class EnvironmentListing:
    environment: str
    namespace: str
    phase: str
    created: datetime | None
    expires_at: str | None
    ready: int
    total: int


async def list_environments(target: ClusterTarget, *, deadline: Deadline) -> list[EnvironmentListing]:
    """Every envspec environment on the cluster with its readiness (from each object's own status)."""
    managed = [t for t in kinds.MANAGED_KINDS.values() if t.kind != "Namespace"]
    async with connect(target) as api:
        namespaces = (
            await list_objects(api, kinds.NAMESPACE, None, deadline=deadline, label_selector=MANAGED_SELECTOR)
        ).items
        if not namespaces:
            return []
        objects = await _list_all(api, managed, None, MANAGED_SELECTOR, deadline)
    counts: dict[str, list[int]] = {}  # environment -> [ready, total]
    for item in (item for items in objects.values() for item in items):
        environment = labels_of(item).get(ENVIRONMENT_LABEL)
        if environment is None or not is_managed(item):
            continue
        tally = counts.setdefault(environment, [0, 0])
        tally[1] += 1
        state = assess(item)
        tally[0] += 1 if state.done and state.ok else 0
    listings = []
    for namespace in namespaces:
        environment = labels_of(namespace).get(ENVIRONMENT_LABEL, "")
        ready, total = counts.get(environment, [0, 0])
        namespace_ready = assess(namespace)
        listings.append(
            EnvironmentListing(
                environment=environment,
                namespace=str(_metadata(namespace).get("name")),
                phase=str((namespace.get("status") or {}).get("phase", "")),
                created=_created(namespace),
                expires_at=_annotations(namespace).get(EXPIRES_AT_ANNOTATION),
                ready=ready + (1 if namespace_ready.ok else 0),
                total=total + 1,
            )
        )
    return sorted(listings, key=lambda e: (e.environment, e.namespace))


def ls_table(listings: Sequence[EnvironmentListing], *, now: datetime | None = None) -> str:
    if not listings:
        return "no envspec environments on this cluster"
    moment = now or datetime.now(UTC)
    rows = [("NAME", "NAMESPACE", "AGE", "EXPIRES IN", "READY")]
    for env in listings:
        age = format_span((moment - env.created).total_seconds()) if env.created else "?"
        left = _seconds_left(env.expires_at, moment)
        expires = (
            "never"
            if env.expires_at is None
            else "?"
            if left is None
            else ("expired" if left < 0 else format_span(left))
        )
        ready = f"{env.ready}/{env.total}" + ("  (terminating)" if env.phase == "Terminating" else "")
        rows.append((env.environment, env.namespace, age, expires, ready))
    return _columns(rows)


def ls_json(listings: Sequence[EnvironmentListing], *, now: datetime | None = None) -> list[dict[str, Any]]:
    moment = now or datetime.now(UTC)
    return [
        {
            "name": env.environment,
            "namespace": env.namespace,
            "phase": env.phase,
            "createdAt": env.created.isoformat().replace("+00:00", "Z") if env.created else None,
            "ageSeconds": int((moment - env.created).total_seconds()) if env.created else None,
            "expiresAt": env.expires_at,
            "expiresInSeconds": _seconds_left(env.expires_at, moment),
            "ready": env.ready,
            "total": env.total,
        }
        for env in listings
    ]


# ---------------------------------------------------------------- command entry points (one anyio.run each)


def down(target: ClusterTarget, ref: EnvironmentRef, *, sink: Sink, wait: bool, timeout_seconds: float) -> DownResult:
    async def main() -> DownResult:
        return await down_environment(target, ref, sink=sink, wait=wait, deadline=Deadline(timeout_seconds))

    return anyio.run(main)


def status(target: ClusterTarget, ref: EnvironmentRef, *, timeout_seconds: float) -> EnvironmentStatus:
    async def main() -> EnvironmentStatus:
        return await environment_status(target, ref, deadline=Deadline(timeout_seconds))

    return anyio.run(main)


def ls(target: ClusterTarget, *, timeout_seconds: float) -> list[EnvironmentListing]:
    async def main() -> list[EnvironmentListing]:
        return await list_environments(target, deadline=Deadline(timeout_seconds))

    return anyio.run(main)
