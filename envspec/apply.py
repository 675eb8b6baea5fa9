"""`envspec up`: bring the cluster to the plan, wave by wave, and say what happened.

For each wave, every object is server-side applied concurrently, then the wave's
objects are awaited until ready (watches, one deadline for the whole run) before
the next wave starts. Afterwards, objects of this environment that the plan no
longer has are pruned, last wave first.

Re-runs are cheap and safe:

- each object carries `envspec.dev/object-hash`; an object whose live hash equals
  the planned one is not sent again ("unchanged"), so an `up` of an unchanged spec
  writes nothing but the namespace's lease (`envspec.dev/expires-at`, renewed to
  now + ttl);
- generated secrets (database passwords) are read back from the live Secrets and
  only missing ones are generated: never rotated, never printed;
- prune deletes only objects labelled both `app.kubernetes.io/managed-by: envspec`
  and this environment's label, and never a namespace.

`apply_plan` is the reusable core: `envspec watch` calls it again with the
`ApplyResult.inventory` of its previous cycle (no re-listing), `down`/`gc` reuse
the same requests and waits from `envspec.kube`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import secrets as random_secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from envspec.errors import ClusterError, EnvspecError, NotReadyError
from envspec.events import (
    Action,
    EnvironmentReady,
    LeaseRenewed,
    ObjectApplied,
    ObjectFailed,
    ObjectProgress,
    ObjectReady,
    Pruned,
    RedactingSink,
    Sink,
    Summary,
    WaveFinished,
    WaveStarted,
)
from envspec.kube import kinds
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.environments import EnvironmentRef
from envspec.kube.readiness import Readiness, assess, has_pods, needs_watching
from envspec.kube.ssa import delete_object, get_object, list_objects, resolve_type, server_side_apply
from envspec.kube.wait import ClusterView, Target, cluster_view, task_group, wait_ready
from envspec.plan import (
    ENVIRONMENT_LABEL,
    EXPIRES_AT_ANNOTATION,
    JANITOR_EXPIRES_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    OBJECT_HASH_ANNOTATION,
    PLAN_HASH_ANNOTATION,
    WAVE_ANNOTATION,
    Manifest,
    Plan,
    PlannedObject,
    SecretSlot,
    is_managed,
    labels_of,
)

Json = dict[str, Any]
# (API group, kind, namespace, name): the identity of an object across API versions.
ObjectKey = tuple[str, str, str | None, str]
PlanBuilder = Callable[[Mapping[SecretSlot, str] | None], Plan]

HASH_LENGTH = 24  # hex digits of sha256: collisions are not a concern at this size
GENERATED_SECRET_BYTES = 24  # token_urlsafe(24): 32 characters
DEFAULT_TIMEOUT_SECONDS = 600.0
DEFAULT_CONCURRENCY = 16  # requests in flight per wave; a local API server takes this easily
LEASE_ANNOTATIONS = (EXPIRES_AT_ANNOTATION, JANITOR_EXPIRES_ANNOTATION, PLAN_HASH_ANNOTATION)


# ---------------------------------------------------------------- identities and hashes


def key_of(manifest: Mapping[str, Any]) -> ObjectKey:
    metadata = manifest.get("metadata") or {}
    group = str(manifest.get("apiVersion", "")).rpartition("/")[0]
    namespace = metadata.get("namespace")
    return (group, str(manifest.get("kind")), None if namespace is None else str(namespace), str(metadata["name"]))


def ref_of(manifest: Mapping[str, Any]) -> str:
    return f"{str(manifest.get('kind', '')).lower()}/{(manifest.get('metadata') or {}).get('name')}"


def annotations_of(manifest: Mapping[str, Any]) -> Mapping[str, str]:
    annotations: Mapping[str, str] = (manifest.get("metadata") or {}).get("annotations") or {}
    return annotations


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


def rfc3339(instant: datetime) -> str:
    """`2026-01-01T12:00:00Z`: RFC 3339, UTC, whole seconds (also kube-janitor's format)."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def lease_annotations(ttl_seconds: int | None, now: datetime) -> dict[str, str]:
    """The expiry stamped on the namespace by every `up`; nothing for `ttl: never`."""
    if ttl_seconds is None:
        return {}
    expires = rfc3339(now + timedelta(seconds=ttl_seconds))
    return {EXPIRES_AT_ANNOTATION: expires, JANITOR_EXPIRES_ANNOTATION: expires}


def environment_selector(environment: str) -> str:
    return f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{ENVIRONMENT_LABEL}={environment}"


def belongs_to(obj: Mapping[str, Any], environment: str) -> bool:
    """Managed by envspec and labelled for this environment: the only objects envspec deletes."""
    return is_managed(obj) and labels_of(obj).get(ENVIRONMENT_LABEL) == environment


def wave_of(obj: Mapping[str, Any]) -> int | None:
    try:
        return int(annotations_of(obj).get(WAVE_ANNOTATION, ""))
    except ValueError:
        return None


# ---------------------------------------------------------------- what is live


@dataclass
class Inventory:
    """The live objects of one environment, by key: what `up` compares its plan with."""

    namespace: Json | None = None  # the environment's namespace, whoever owns it
    objects: dict[ObjectKey, Json] = field(default_factory=dict)

    def get(self, key: ObjectKey) -> Json | None:
        if key[1] == "Namespace" and key[0] == "":
            return self.namespace
        return self.objects.get(key)

    def put(self, obj: Json) -> None:
        key = key_of(obj)
        if key[1] == "Namespace" and key[0] == "":
            self.namespace = obj
        else:
            self.objects[key] = obj

    def secret_values(self, slots: Iterable[SecretSlot], namespace: str) -> dict[SecretSlot, str]:
        """Values of the slots that live Secrets of this environment already hold."""
        values: dict[SecretSlot, str] = {}
        for slot in slots:
            secret = self.objects.get(("", "Secret", namespace, slot.secret))
            encoded = ((secret or {}).get("data") or {}).get(slot.key)
            if encoded is None:
                continue
            try:
                values[slot] = base64.b64decode(encoded, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue  # not ours to interpret: regenerate
        return values


async def read_inventory(
    api: Any, environment: str, namespace: str, *, deadline: Deadline, extra_types: Iterable[kinds.ResourceType] = ()
) -> Inventory:
    """The namespace (whatever its labels) and every object labelled for `environment`.

    One list per kind envspec manages, concurrently: the namespaced kinds only when
    the namespace exists.
    """
    inventory = Inventory()
    inventory.namespace = await get_object(api, kinds.NAMESPACE, namespace, None, deadline=deadline)
    types = {t for t in [*kinds.MANAGED_KINDS.values(), *extra_types] if t.kind != "Namespace"}
    if inventory.namespace is None:
        types = {t for t in types if not t.namespaced}
    selector = environment_selector(environment)

    async def collect(rtype: kinds.ResourceType) -> None:
        listing = await list_objects(api, rtype, namespace, deadline=deadline, label_selector=selector)
        for item in listing.items:
            if belongs_to(item, environment):
                inventory.objects[key_of(item)] = item

    async with task_group() as group:
        for rtype in sorted(types, key=lambda t: t.plural):
            group.start_soon(collect, rtype)
    return inventory


def resolve_secrets(
    slots: Sequence[SecretSlot],
    live: Mapping[SecretSlot, str],
    generate: Callable[[], str] = lambda: random_secrets.token_urlsafe(GENERATED_SECRET_BYTES),
) -> dict[SecretSlot, str]:
    """Live values where they exist, fresh random ones for the rest: nothing is ever rotated."""
    return {slot: live[slot] if slot in live else generate() for slot in slots}


# ---------------------------------------------------------------- the run


@dataclass(frozen=True)
class ApplyOptions:
    timeout_seconds: float | None = DEFAULT_TIMEOUT_SECONDS
    wait: bool = True
    prune: bool = True
    concurrency: int = DEFAULT_CONCURRENCY


@dataclass
class ApplyResult:
    environment: str
    namespace: str
    actions: dict[str, Action] = field(default_factory=dict)  # "deployment/api" -> created/...
    pruned: list[str] = field(default_factory=list)
    wave_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0
    expires_at: str | None = None
    plan_hash: str = ""
    writes: int = 0  # write requests sent (server-side applies and deletes)
    inventory: Inventory = field(default_factory=Inventory)  # live state afterwards, for the next run

    def count(self, action: Action) -> int:
        return sum(1 for a in self.actions.values() if a == action)


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
    if (live.get("metadata") or {}).get("deletionTimestamp"):
        raise ClusterError(f"namespace {name} is being deleted (envspec down or gc); run up again once it is gone")


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


class _Run:
    """The state of one `apply_plan` call."""

    def __init__(
        self,
        api: Any,
        plan: Plan,
        inventory: Inventory,
        options: ApplyOptions,
        sink: Sink,
        deadline: Deadline,
        now: datetime,
    ) -> None:
        self.api = api
        self.plan = plan
        self.live = inventory
        self.options = options
        self.sink = sink
        self.deadline = deadline
        self.namespace = namespace_object(plan)
        self.waves = planned_waves(plan)
        self.hashes = {key_of(o.manifest): object_hash(o.manifest) for o in (*plan.objects, self.namespace)}
        self.lease = lease_annotations(plan.ttl_seconds, now)
        self.result = ApplyResult(
            plan.environment,
            plan.namespace,
            expires_at=self.lease.get(EXPIRES_AT_ANNOTATION),
            plan_hash=plan_hash(self.hashes),
            inventory=Inventory(inventory.namespace, dict(inventory.objects)),
        )
        self.limiter = anyio.CapacityLimiter(max(1, options.concurrency))

    async def run(self) -> ApplyResult:
        check_namespace_ownership(self.plan, self.live.namespace)
        async with cluster_view(self.api) as view:
            for position, wave in enumerate(self.waves, 1):
                await self.apply_wave(view, position, wave)
                workload_types = self.changed_workload_types() if position == 1 and self.options.wait else set()
                if workload_types:
                    # The namespace exists now: start watching what readiness reads, so the
                    # lists and watches overlap with the waves before the first workload.
                    view.start_related(self.plan.namespace)
                    for rtype in workload_types:
                        view.start(rtype, self.plan.namespace)
        if self.options.prune:
            await self.prune()
        return self.result

    def changed_workloads(self, objects: Sequence[PlannedObject]) -> list[Target]:
        """The workloads among `objects` that this run will write (and so wait for)."""
        return [
            Target(kinds.MANAGED_KINDS[(o.api_version, o.kind)], o.name, o.namespace)
            for o in objects
            if has_pods(o.kind)
            and (o.api_version, o.kind) in kinds.MANAGED_KINDS
            and self.live_hash(key_of(o.manifest)) != self.hashes[key_of(o.manifest)]
        ]

    def changed_workload_types(self) -> set[kinds.ResourceType]:
        return {target.rtype for target in self.changed_workloads(self.plan.objects)}

    async def apply_wave(self, view: ClusterView, position: int, wave: Sequence[PlannedObject]) -> None:
        count = len(self.waves)
        wave_started = time.monotonic()
        self.sink.emit(WaveStarted(position, count, tuple(o.ref for o in wave)))
        unready: dict[Target, tuple[PlannedObject, Json]] = {}

        async def apply_one(obj: PlannedObject) -> None:
            async with self.limiter:
                current = await self.apply_object(obj, position, wave_started)
            state = assess(current)
            if state.done or not self.options.wait:
                self.report(obj, state, position, wave_started)
                if state.failed and self.options.wait:  # e.g. a Job that failed in an earlier run
                    where = f" in {obj.namespace}" if obj.namespace else ""
                    raise NotReadyError(f"{obj.ref}{where}: {state.message}")
            else:
                rtype = await resolve_type(self.api, obj.api_version, obj.kind, deadline=self.deadline)
                unready[Target(rtype, obj.name, obj.namespace)] = (obj, current)

        first = wave[0]
        if first is self.namespace:  # everything namespaced needs it to exist first
            await apply_one(first)
            wave = wave[1:]
        if self.options.wait:
            await self.watch_pods_of(view, wave)
        async with task_group() as group:
            for obj in wave:
                group.start_soon(apply_one, obj)
        if unready:
            for target, (_, current) in unready.items():
                if needs_watching(target.rtype.kind):
                    await view.observe(target, current)
            by_target = {target: obj for target, (obj, _) in unready.items()}

            def on_change(target: Target, state: Readiness) -> None:
                self.report(by_target[target], state, position, wave_started)

            await wait_ready(view, list(unready), deadline=self.deadline, on_change=on_change)
            for target in by_target:
                latest = await view.get(target)
                if latest is not None:
                    self.result.inventory.put(latest)
        seconds = time.monotonic() - wave_started
        self.result.wave_seconds.append(seconds)
        self.sink.emit(WaveFinished(position, count, seconds))

    async def watch_pods_of(self, view: ClusterView, wave: Sequence[PlannedObject]) -> None:
        """Start watching pods, ReplicaSets and events before workloads are written.

        Pod creation refused by quota is often reported only as a FailedCreate event,
        emitted a moment after the write: a watch started later would miss it.
        """
        changing = self.changed_workloads(wave)
        if changing:
            await view.related(changing)

    def live_hash(self, key: ObjectKey) -> str | None:
        live = self.live.get(key)
        return annotations_of(live).get(OBJECT_HASH_ANNOTATION) if live is not None else None

    async def apply_object(self, obj: PlannedObject, position: int, wave_started: float) -> Json:
        """Server-side apply `obj` unless its live hash says it is already so; the object as now live."""
        key = key_of(obj.manifest)
        live = self.live.get(key)
        wanted = self.hashes[key]
        live_hash = self.live_hash(key)
        annotations = {OBJECT_HASH_ANNOTATION: wanted}
        must_write = live_hash != wanted
        if obj is self.namespace:
            annotations.update(self.lease)
            annotations[PLAN_HASH_ANNOTATION] = self.result.plan_hash
            # The lease is renewed on every up; the plan hash follows the plan.
            live_plan = annotations_of(live).get(PLAN_HASH_ANNOTATION) if live is not None else None
            must_write = must_write or bool(self.lease) or live_plan != self.result.plan_hash
        action: Action = "created" if live is None else "configured" if live_hash != wanted else "unchanged"
        current = live
        if must_write or current is None:
            rtype = await resolve_type(self.api, obj.api_version, obj.kind, deadline=self.deadline)
            try:
                current = await server_side_apply(
                    self.api, rtype, stamped(obj.manifest, annotations), deadline=self.deadline
                )
            except EnvspecError as exc:
                self.sink.emit(
                    ObjectFailed(
                        position,
                        len(self.waves),
                        obj.ref,
                        obj.namespace,
                        exc.message,
                        time.monotonic() - wave_started,
                    )
                )
                raise
            self.result.writes += 1
        if obj is self.namespace and self.lease:
            self.sink.emit(LeaseRenewed(self.plan.namespace, self.result.expires_at))
        if obj is self.namespace and not self.lease and current is not None:
            current = await self.drop_stale_expiry(current)
        self.result.actions[obj.ref] = action
        self.result.inventory.put(current)
        self.sink.emit(
            ObjectApplied(position, len(self.waves), obj.ref, obj.namespace, action, time.monotonic() - wave_started)
        )
        return current

    async def drop_stale_expiry(self, namespace: Json) -> Json:
        """`ttl: never`: remove an expiry that `extend` or watch's keep-alive left behind.

        Those write the expiry under their own field manager, so applying a namespace
        without it does not remove it; kube-janitor would still act on `janitor/expires`.
        """
        stale = [key for key in (EXPIRES_AT_ANNOTATION, JANITOR_EXPIRES_ANNOTATION) if key in annotations_of(namespace)]
        if not stale:
            return namespace
        from envspec.lifecycle.requests import merge_patch_namespace

        patched = await merge_patch_namespace(
            self.api,
            self.plan.namespace,
            {"metadata": {"annotations": dict.fromkeys(stale)}},
            deadline=self.deadline,
            doing=f"removing the expiry of namespace/{self.plan.namespace} (ttl: never)",
        )
        self.result.writes += 1
        return patched

    def report(self, obj: PlannedObject, state: Readiness, position: int, wave_started: float) -> None:
        args = (position, len(self.waves), obj.ref, obj.namespace, state.message, time.monotonic() - wave_started)
        if state.failed:
            self.sink.emit(ObjectFailed(*args))
        elif state.done:
            self.sink.emit(ObjectReady(*args))
        elif self.options.wait:
            self.sink.emit(ObjectProgress(*args))

    async def prune(self) -> None:
        """Delete what this environment has live but the plan no longer lists, last wave first."""
        planned = {key_of(o.manifest) for o in self.plan.objects}
        doomed = [
            obj
            for key, obj in self.live.objects.items()
            if key not in planned and key[1] != "Namespace" and belongs_to(obj, self.plan.environment)
        ]
        by_wave: dict[int, list[Json]] = {}
        for obj in doomed:
            wave = wave_of(obj)
            by_wave.setdefault(wave if wave is not None else 1 << 30, []).append(obj)
        for wave in sorted(by_wave, reverse=True):
            async with task_group() as group:
                for obj in by_wave[wave]:
                    group.start_soon(self.delete, obj)

    async def delete(self, obj: Json) -> None:
        metadata = obj.get("metadata") or {}
        rtype = await resolve_type(self.api, str(obj.get("apiVersion")), str(obj.get("kind")), deadline=self.deadline)
        async with self.limiter:
            await delete_object(
                self.api,
                rtype,
                str(metadata["name"]),
                metadata.get("namespace"),
                deadline=self.deadline,
                uid=metadata.get("uid"),
            )
        self.result.writes += 1
        self.result.pruned.append(ref_of(obj))
        self.result.inventory.objects.pop(key_of(obj), None)
        self.sink.emit(Pruned(ref_of(obj), metadata.get("namespace"), wave_of(obj)))


async def apply_plan(
    api: Any,
    plan: Plan,
    inventory: Inventory,
    *,
    sink: Sink,
    options: ApplyOptions = ApplyOptions(),
    deadline: Deadline | None = None,
    now: datetime | None = None,
) -> ApplyResult:
    """Apply `plan` over the live state `inventory`; emits events, then a Summary.

    Raises ClusterError (a request failed), NotReadyError (a terminal readiness
    failure or the deadline) or EnvspecError (the namespace belongs to someone else).
    """
    run = _Run(
        api,
        plan,
        inventory,
        options,
        sink,
        deadline or Deadline(options.timeout_seconds),
        now or datetime.now(UTC),
    )
    result = run.result
    try:
        await run.run()
    except EnvspecError as exc:
        result.seconds = run.deadline.elapsed()
        sink.emit(_summary(result, ok=False, waited=options.wait, message=exc.message))
        raise
    # From the start of the deadline: with `up`, that includes connecting and reading.
    result.seconds = run.deadline.elapsed()
    if options.wait:
        sink.emit(EnvironmentReady(plan.environment, plan.namespace, result.seconds))
    sink.emit(_summary(result, ok=True, waited=options.wait))
    return result


def _summary(result: ApplyResult, *, ok: bool, waited: bool, message: str = "") -> Summary:
    return Summary(
        environment=result.environment,
        namespace=result.namespace,
        ok=ok,
        created=result.count("created"),
        configured=result.count("configured"),
        unchanged=result.count("unchanged"),
        pruned=len(result.pruned),
        wave_seconds=tuple(result.wave_seconds),
        seconds=result.seconds,
        expires_at=result.expires_at,
        waited=waited,
        message=message,
    )


async def up_environment(
    target: ClusterTarget,
    build: PlanBuilder,
    *,
    sink: Sink,
    options: ApplyOptions = ApplyOptions(),
) -> ApplyResult:
    """Connect, read what is live, compile with the live secrets, apply.

    `build(secrets)` compiles the plan; it is called twice, first without secrets
    to learn the environment and namespace, then with the values to apply.
    """
    deadline = Deadline(options.timeout_seconds)
    draft = build(None)
    async with connect(target) as api:
        inventory = await read_inventory(api, draft.environment, draft.namespace, deadline=deadline)
        check_namespace_ownership(draft, inventory.namespace)
        live_values = inventory.secret_values(draft.secret_slots, draft.namespace)
        values = resolve_secrets(draft.secret_slots, live_values)
        plan = build(values)
        redacting = RedactingSink(sink, values.values())
        try:
            return await apply_plan(api, plan, inventory, sink=redacting, options=options, deadline=deadline)
        except EnvspecError as exc:
            # An API server message may quote what was sent; keep the values out of it.
            exc.message = redacting.redact(exc.message)
            exc.args = (exc.message,)
            raise


# ---------------------------------------------------------------- command entry points


@dataclass(frozen=True)
class UpRequest:
    """What `envspec up` was asked to do."""

    file: str
    env_id: str | None
    target: ClusterTarget
    options: ApplyOptions
    environ: Mapping[str, str]


def plan_builder(file: str, env_id: str | None, environ: Mapping[str, str]) -> PlanBuilder:
    """Load and validate the spec now (SpecError before any cluster access); compile on demand."""
    from envspec.pipeline import build_plan, check_id, load_spec

    spec = load_spec(file, environ)
    checked_id = check_id(env_id)

    def build(secrets: Mapping[SecretSlot, str] | None) -> Plan:
        return build_plan(spec, env_id=checked_id, secrets=secrets)

    return build


def up(request: UpRequest, sink: Sink) -> ApplyResult:
    """`envspec up`: load, compile, apply; the one `anyio.run` of the command."""
    build = plan_builder(request.file, request.env_id, request.environ)

    async def main() -> ApplyResult:
        return await up_environment(request.target, build, sink=sink, options=request.options)

    return anyio.run(main)


def environment_ref(
    file: str, name: str | None, env_id: str | None, environ: Mapping[str, str], *, with_plan: bool = False
) -> EnvironmentRef:
    """The environment `down`/`status` mean: `--name` (label value, optionally `-<id>`), else the spec's."""
    from envspec.pipeline import build_plan, check_id, identity, load_spec

    checked_id = check_id(env_id)
    if name is not None:
        return EnvironmentRef(f"{name}-{checked_id}" if checked_id else name)
    spec = load_spec(file, environ)
    names = identity(spec, checked_id)
    plan = build_plan(spec, env_id=checked_id) if with_plan else None
    return EnvironmentRef(names.environment, names.namespace, plan)
