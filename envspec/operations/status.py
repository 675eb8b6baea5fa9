"""`status` and `ls`: environments as they live on the cluster, from each object's own status."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from envspec.errors import EnvspecError
from envspec.kube import kinds
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.readiness import Readiness, Related, assess, waiting
from envspec.kube.ssa import list_objects
from envspec.kube.wait import DEFAULT_CLASS_ANNOTATION, task_group
from envspec.meta import (
    EXPIRES_AT_ANNOTATION,
    MANAGED_SELECTOR,
    SPEC_NAME_ANNOTATION,
    annotations_of,
    environment_of,
    environment_selector,
    is_managed,
    is_test_run_object,
    metadata_of,
    name_of,
    timestamp_of,
    wave_of,
)
from envspec.operations.environments import EnvironmentRef, find_namespace
from envspec.plan import Plan

Json = dict[str, Any]
MANAGED_TYPES = tuple(t for t in kinds.MANAGED_KINDS.values() if t.kind != "Namespace")


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
    expires_at: str | None  # as written on the namespace; read through meta.parse_instant
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
        name = name_of(storage_class)
        modes[name] = str(storage_class.get("volumeBindingMode", "Immediate"))
        if annotations_of(storage_class).get(DEFAULT_CLASS_ANNOTATION) == "true":
            default_class = name
    # Events are left out on purpose: old FailedCreate events would report healed failures.
    return Related(tuple(pods), tuple(replica_sets), (), modes, default_class)


def object_statuses(live: Iterable[Json], related: Related, plan: Plan | None = None) -> tuple[ObjectStatus, ...]:
    """A row per live object (and per planned object that is missing), ordered by wave."""
    rows: dict[tuple[str, str | None, str], ObjectStatus] = {}
    for obj in live:
        metadata = metadata_of(obj)
        key = (str(obj.get("kind")), metadata.get("namespace"), str(metadata.get("name")))
        rows[key] = ObjectStatus(wave_of(obj), key[0], key[2], key[1], assess(obj, related))
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


async def status(target: ClusterTarget, ref: EnvironmentRef, *, deadline: Deadline) -> EnvironmentStatus:
    """`envspec status`: every object of the environment with its readiness; EnvspecError when it is not there."""
    async with connect(target) as api:
        namespace = await find_namespace(api, ref, deadline=deadline)
        if namespace is None or not is_managed(namespace):
            raise EnvspecError(f"{ref.describe()} is not on the cluster")
        name = name_of(namespace)
        environment = environment_of(namespace) or ref.environment
        objects = await _list_all(api, MANAGED_TYPES, name, environment_selector(environment), deadline)
        helpers = await _list_all(api, [kinds.POD, kinds.REPLICA_SET, kinds.STORAGE_CLASS], name, None, deadline)
    live = [namespace] + [
        item
        for rtype in MANAGED_TYPES
        for item in objects[rtype]
        if not is_test_run_object(item)  # a test run's Job is not one of the environment's objects
        and (
            (not rtype.namespaced and environment_of(item) == environment) or metadata_of(item).get("namespace") == name
        )
    ]
    related = related_objects(helpers[kinds.POD], helpers[kinds.REPLICA_SET], helpers[kinds.STORAGE_CLASS])
    return EnvironmentStatus(
        environment=environment,
        namespace=name,
        phase=str((namespace.get("status") or {}).get("phase", "")),
        created=timestamp_of(metadata_of(namespace).get("creationTimestamp")),
        expires_at=annotations_of(namespace).get(EXPIRES_AT_ANNOTATION),
        spec_name=annotations_of(namespace).get(SPEC_NAME_ANNOTATION),
        objects=object_statuses(live, related, ref.plan),
    )


@dataclass(frozen=True)
class EnvironmentListing:
    environment: str
    namespace: str
    phase: str
    created: datetime | None
    expires_at: str | None
    ready: int
    total: int


async def ls(
    target: ClusterTarget, *, deadline: Deadline, label_selector: str | None = None
) -> list[EnvironmentListing]:
    """`envspec ls`: every envspec environment on the cluster with its readiness (from each object's own status).

    `label_selector` narrows the namespaces listed (the REST API's filter).
    """
    selector = f"{MANAGED_SELECTOR},{label_selector}" if label_selector else MANAGED_SELECTOR
    async with connect(target) as api:
        namespaces = (await list_objects(api, kinds.NAMESPACE, None, deadline=deadline, label_selector=selector)).items
        if not namespaces:
            return []
        objects = await _list_all(api, MANAGED_TYPES, None, MANAGED_SELECTOR, deadline)
    counts: dict[str, list[int]] = {}  # environment -> [ready, total]
    for item in (item for items in objects.values() for item in items):
        environment = environment_of(item)
        if environment is None or not is_managed(item) or is_test_run_object(item):
            continue
        tally = counts.setdefault(environment, [0, 0])
        tally[1] += 1
        state = assess(item)
        tally[0] += 1 if state.done and state.ok else 0
    listings = []
    for namespace in namespaces:
        environment = environment_of(namespace) or ""
        ready, total = counts.get(environment, [0, 0])
        namespace_ready = assess(namespace)
        listings.append(
            EnvironmentListing(
                environment=environment,
                namespace=name_of(namespace),
                phase=str((namespace.get("status") or {}).get("phase", "")),
                created=timestamp_of(metadata_of(namespace).get("creationTimestamp")),
                expires_at=annotations_of(namespace).get(EXPIRES_AT_ANNOTATION),
                ready=ready + (1 if namespace_ready.ok else 0),
                total=total + 1,
            )
        )
    return sorted(listings, key=lambda e: (e.environment, e.namespace))
