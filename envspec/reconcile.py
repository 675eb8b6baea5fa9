"""Reconcile: a plan and what is live in, the change set out. Pure: no I/O, no clock.

For every planned object the change set says, with the reason, whether it is
created (not live), configured (its hash changed) or unchanged (its live
`envspec.dev/object-hash` equals the planned one, so it is not sent); live objects
of the environment that the plan no longer has are pruned, last wave first. The
namespace is written whenever its lease or the plan's hash moves.

`up` executes a change set (`envspec.runner`), `diff` prints it with dry-run
detail, `watch` reconciles each edit against the inventory its last cycle left.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets as random_secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from envspec.errors import ClusterError, EnvspecError
from envspec.inventory import Inventory
from envspec.meta import (
    ENVIRONMENT_LABEL,
    EXPIRES_AT_ANNOTATION,
    EXPIRY_ANNOTATIONS,
    LEASE_ANNOTATIONS,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    OBJECT_HASH_ANNOTATION,
    PLAN_HASH_ANNOTATION,
    Manifest,
    ObjectKey,
    annotations_of,
    belongs_to,
    is_managed,
    is_test_run_object,
    key_of,
    labels_of,
    lease_annotations,
    metadata_of,
    ref_of,
    wave_of,
)
from envspec.plan import Plan, PlannedObject, SecretSlot

Json = dict[str, Any]
ChangeKind = Literal["create", "configure", "unchanged"]

HASH_LENGTH = 24  # hex digits of sha256: collisions are not a concern at this size
GENERATED_SECRET_BYTES = 24  # token_urlsafe(24): 32 characters
UNKNOWN_WAVE = 1 << 30  # live objects without a readable wave are pruned first


# ---------------------------------------------------------------- hashes


def object_hash(manifest: Mapping[str, Any]) -> str:
    """Hash of what envspec asks for, ignoring the annotations it stamps (hash, lease)."""
    content = copy.deepcopy(dict(manifest))
    metadata = content.get("metadata") or {}
    annotations = metadata.get("annotations")
    if annotations is not None:
        for name in (*LEASE_ANNOTATIONS, OBJECT_HASH_ANNOTATION):
            annotations.pop(name, None)
        if not annotations:
            del metadata["annotations"]
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_LENGTH]


def plan_hash(hashes: Mapping[ObjectKey, str]) -> str:
    lines = sorted(f"{'/'.join(str(part) for part in key)}={value}" for key, value in hashes.items())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:HASH_LENGTH]


def stamped(manifest: Mapping[str, Any], annotations: Mapping[str, str]) -> Manifest:
    """A copy of `manifest` with `annotations` added."""
    result = copy.deepcopy(dict(manifest))
    metadata = result.setdefault("metadata", {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
    return result


def live_hash(live: Mapping[str, Any] | None) -> str | None:
    return annotations_of(live).get(OBJECT_HASH_ANNOTATION) if live is not None else None


# ---------------------------------------------------------------- secrets


def resolve_secrets(
    slots: Sequence[SecretSlot],
    live: Mapping[SecretSlot, str],
    generate: Callable[[], str] = lambda: random_secrets.token_urlsafe(GENERATED_SECRET_BYTES),
) -> dict[SecretSlot, str]:
    """Live values where they exist, fresh ones for the rest: nothing is ever rotated.

    `generate` is the one source of randomness, passed in by the caller.
    """
    return {slot: live[slot] if slot in live else generate() for slot in slots}


# ---------------------------------------------------------------- ownership


def check_namespace_ownership(plan: Plan, live: Json | None) -> None:
    """Refuse to apply into a namespace envspec does not own, or that another environment owns."""
    if live is None:
        return
    name = plan.namespace
    if not is_managed(live):
        raise EnvspecError(
            f"namespace {name} exists and is not managed by envspec (no label "
            f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}): refusing to take it over; "
            "pick another namespacePrefix, name or --id"
        )
    owner = labels_of(live).get(ENVIRONMENT_LABEL)
    if owner != plan.environment:
        raise EnvspecError(f"namespace {name} belongs to envspec environment {owner!r}, not {plan.environment!r}")
    if metadata_of(live).get("deletionTimestamp"):
        raise ClusterError(f"namespace {name} is being deleted (envspec down or gc); run up again once it is gone")


# ---------------------------------------------------------------- the change set


def namespace_object(plan: Plan) -> PlannedObject:
    """The plan's Namespace; one is made up if the plan has none, since it carries the lease."""
    for obj in plan.objects:
        if obj.kind == "Namespace" and obj.name == plan.namespace:
            return obj
    labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, ENVIRONMENT_LABEL: plan.environment}
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": plan.namespace, "labels": labels}}
    return PlannedObject(wave=min((o.wave for o in plan.objects), default=0), manifest=manifest)


def planned_waves(plan: Plan) -> list[tuple[PlannedObject, ...]]:
    """The waves in order, the namespace first in the first wave."""
    namespace = namespace_object(plan)
    waves = [objects for _, objects in plan.waves()]
    if namespace not in plan.objects:
        waves = [(namespace,), *waves]
    return [tuple(sorted(wave, key=lambda o: o is not namespace)) for wave in waves]


@dataclass(frozen=True)
class Change:
    """What happens to one planned object."""

    obj: PlannedObject
    kind: ChangeKind
    reason: str
    manifest: Manifest  # what is sent: the planned object stamped with its hash (the namespace: and lease)
    write: bool  # sent to the server (the namespace is also written to renew its lease)
    wave: int  # 1-based position among the change set's waves

    @property
    def ref(self) -> str:
        return self.obj.ref

    @property
    def key(self) -> ObjectKey:
        return key_of(self.obj.manifest)

    @property
    def is_namespace(self) -> bool:
        return self.obj.kind == "Namespace" and self.obj.namespace is None


@dataclass(frozen=True)
class Prune:
    """A live object of the environment that the plan no longer has."""

    live: Json
    reason: str

    @property
    def ref(self) -> str:
        return ref_of(self.live)

    @property
    def key(self) -> ObjectKey:
        return key_of(self.live)

    @property
    def namespace(self) -> str | None:
        value = metadata_of(self.live).get("namespace")
        return None if value is None else str(value)

    @property
    def wave(self) -> int | None:
        return wave_of(self.live)


@dataclass(frozen=True)
class ChangeSet:
    environment: str
    namespace: str
    waves: tuple[tuple[Change, ...], ...]
    prunes: tuple[Prune, ...]  # in deletion order: last wave first
    plan_hash: str
    expires_at: str | None  # the lease this run stamps; None: ttl never
    drop_expiry: tuple[str, ...] = ()  # expiry annotations to remove from the namespace (ttl never)

    def changes(self) -> Iterator[Change]:
        for wave in self.waves:
            yield from wave

    def count(self, kind: ChangeKind) -> int:
        return sum(1 for change in self.changes() if change.kind == kind)

    def refs(self, kind: ChangeKind) -> tuple[str, ...]:
        return tuple(change.ref for change in self.changes() if change.kind == kind)

    @property
    def changed(self) -> bool:
        """Something besides the lease moves: an object is created, configured or pruned."""
        return bool(self.prunes or self.drop_expiry) or any(c.kind != "unchanged" for c in self.changes())

    @property
    def writes(self) -> int:
        """Write requests executing this change set sends."""
        return sum(1 for c in self.changes() if c.write) + len(self.prunes) + (1 if self.drop_expiry else 0)

    def find(self, ref: str) -> Change | None:
        return next((c for c in self.changes() if c.ref == ref), None)


def reconcile(plan: Plan, inventory: Inventory, *, now: datetime) -> ChangeSet:
    """The change set that brings what is live (`inventory`) to `plan`.

    Raises EnvspecError (or ClusterError for a namespace being deleted) when the
    namespace is not this environment's to write.
    """
    check_namespace_ownership(plan, inventory.namespace)
    namespace = namespace_object(plan)
    waves = planned_waves(plan)
    hashes = {key_of(o.manifest): object_hash(o.manifest) for o in (*plan.objects, namespace)}
    digest = plan_hash(hashes)
    lease = lease_annotations(plan.ttl_seconds, now)
    changes: list[tuple[Change, ...]] = []
    for position, wave in enumerate(waves, 1):
        changes.append(
            tuple(
                _change(obj, position, hashes[key_of(obj.manifest)], inventory, namespace, lease, digest)
                for obj in wave
            )
        )
    live_namespace = inventory.namespace
    stale = tuple(
        key for key in EXPIRY_ANNOTATIONS if not lease and key in annotations_of(live_namespace or {})
    )  # ttl never: an expiry `extend` or watch's keep-alive wrote under their own field manager
    return ChangeSet(
        environment=plan.environment,
        namespace=plan.namespace,
        waves=tuple(changes),
        prunes=_prunes(plan, inventory),
        plan_hash=digest,
        expires_at=lease.get(EXPIRES_AT_ANNOTATION),
        drop_expiry=stale,
    )


def _change(
    obj: PlannedObject,
    wave: int,
    wanted: str,
    inventory: Inventory,
    namespace: PlannedObject,
    lease: Mapping[str, str],
    digest: str,
) -> Change:
    live = inventory.get(key_of(obj.manifest))
    current = live_hash(live)
    annotations = {OBJECT_HASH_ANNOTATION: wanted}
    kind: ChangeKind
    if live is None:
        kind, reason = "create", "not on the cluster"
    elif current != wanted:
        kind = "configure"
        reason = f"spec changed (object hash {current} -> {wanted})" if current else "not stamped by envspec yet"
    else:
        kind, reason = "unchanged", "object hash matches"
    write = kind != "unchanged"
    if obj is namespace:
        annotations.update(lease)
        annotations[PLAN_HASH_ANNOTATION] = digest
        live_plan = annotations_of(live).get(PLAN_HASH_ANNOTATION) if live is not None else None
        if not write and live_plan != digest:
            write, reason = True, "the plan changed: its hash is recorded on the namespace"
        elif not write and lease:
            write, reason = True, "lease renewal (now + ttl)"
    return Change(obj, kind, reason, stamped(obj.manifest, annotations), write, wave)


def _prunes(plan: Plan, inventory: Inventory) -> tuple[Prune, ...]:
    planned = {key_of(o.manifest) for o in plan.objects}
    doomed = [
        obj
        for key, obj in inventory.objects.items()
        if key not in planned
        and key[1] != "Namespace"
        and belongs_to(obj, plan.environment)
        and not is_test_run_object(obj)  # a test run's Job is not the environment's: never pruned
    ]

    def order(obj: Json) -> tuple[int, str]:
        wave = wave_of(obj)
        return (-(wave if wave is not None else UNKNOWN_WAVE), ref_of(obj))

    return tuple(Prune(obj, "no longer in the spec") for obj in sorted(doomed, key=order))
