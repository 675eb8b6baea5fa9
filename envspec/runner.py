"""Execute a change set: wave by wave, with readiness, then prune.

For each wave, every change that must be written is server-side applied
concurrently; then the wave's objects are awaited until ready (watches, one
deadline for the whole run) before the next wave starts. Afterwards the pruned
objects are deleted, last wave first, objects of one wave concurrently.

What the cluster looks like afterwards is kept in `ApplyResult.inventory`, so the
next reconcile (a `watch` cycle) needs no new list.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio

from envspec.errors import EnvspecError, NotReadyError
from envspec.events import (
    Action,
    Emitter,
    EnvironmentReady,
    LeaseRenewed,
    ObjectApplied,
    ObjectFailed,
    ObjectProgress,
    ObjectReady,
    Pruned,
    Summary,
    WaveFinished,
    WaveStarted,
)
from envspec.inventory import Inventory
from envspec.kube import kinds
from envspec.kube.deadline import Deadline
from envspec.kube.readiness import Readiness, Related, assess, has_pods, needs_watching, server_time_of
from envspec.kube.ssa import FIELD_MANAGER, delete_object, merge_patch, resolve_type, server_side_apply
from envspec.kube.wait import ClusterView, Target, cluster_view, task_group, wait_ready
from envspec.meta import drop_expiry_patch, metadata_of
from envspec.reconcile import Change, ChangeSet, Prune

Json = dict[str, Any]

DEFAULT_TIMEOUT_SECONDS = 600.0
DEFAULT_CONCURRENCY = 16  # requests in flight per wave; a local API server takes this easily
LEASE_FIELD_MANAGER = "envspec-lease"  # lease writes outside `up`: extend, keep-alive, the ttl-never cleanup
PAST: dict[str, Action] = {"create": "created", "configure": "configured", "unchanged": "unchanged"}


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
    writes: int = 0  # write requests sent (server-side applies, patches and deletes)
    inventory: Inventory = field(default_factory=Inventory)  # live state afterwards, for the next run

    def count(self, action: Action) -> int:
        return sum(1 for a in self.actions.values() if a == action)

    def refs(self, action: Action) -> tuple[str, ...]:
        return tuple(ref for ref, done in self.actions.items() if done == action)

    def resources(self) -> tuple[str, ...]:
        """What this run created or applied, namespace first."""
        return tuple(self.actions)


class _Run:
    """The state of one `execute` call."""

    def __init__(
        self,
        api: Any,
        changes: ChangeSet,
        inventory: Inventory,
        options: ApplyOptions,
        events: Emitter,
        deadline: Deadline,
    ) -> None:
        self.api = api
        self.changes = changes
        self.options = options
        self.events = events
        self.deadline = deadline
        self.wave_count = len(changes.waves)
        self.result = ApplyResult(
            changes.environment,
            changes.namespace,
            expires_at=changes.expires_at,
            plan_hash=changes.plan_hash,
            inventory=inventory.copy(),
        )
        self.limiter = anyio.CapacityLimiter(max(1, options.concurrency))
        self.started_at = datetime.now(UTC)
        self.view_since: datetime | None = None

    async def run(self) -> ApplyResult:
        async with cluster_view(self.api) as view:
            for wave in self.changes.waves:
                await self.apply_wave(view, wave)
                if view.since is None:
                    view.since = self.view_since or self.started_at
                if wave[0].wave == 1 and self.options.wait:
                    self.start_watching_early(view)
        if self.options.prune:
            await self.prune()
        return self.result

    def start_watching_early(self, view: ClusterView) -> None:
        """The namespace exists now: start watching what readiness reads, so the lists
        and watches overlap with the waves before the first workload."""
        workload_types = {target.rtype for target in self.written_workloads(list(self.changes.changes()))}
        if workload_types:
            view.start_related(self.changes.namespace)
            for rtype in workload_types:
                view.start(rtype, self.changes.namespace)

    def written_workloads(self, changes: Sequence[Change]) -> list[Target]:
        """The workloads among `changes` that this run writes (and so waits for)."""
        return [
            Target(kinds.MANAGED_KINDS[(c.obj.api_version, c.obj.kind)], c.obj.name, c.obj.namespace)
            for c in changes
            if c.write and has_pods(c.obj.kind) and (c.obj.api_version, c.obj.kind) in kinds.MANAGED_KINDS
        ]

    async def apply_wave(self, view: ClusterView, wave: Sequence[Change]) -> None:
        position = wave[0].wave
        wave_started = time.monotonic()
        self.events.emit(WaveStarted(position, self.wave_count, tuple(c.ref for c in wave)))
        unready: dict[Target, tuple[Change, Json]] = {}

        async def apply_one(change: Change) -> None:
            async with self.limiter:
                current = await self.apply_change(change, wave_started)
            state = assess(current, Related(since=view.since))
            if state.done or not self.options.wait:
                self.report(change, state, wave_started)
                if state.failed and self.options.wait:  # e.g. a Job that failed in an earlier run
                    where = f" in {change.obj.namespace}" if change.obj.namespace else ""
                    raise NotReadyError(f"{change.ref}{where}: {state.message}")
            else:
                rtype = await resolve_type(self.api, change.obj.api_version, change.obj.kind, deadline=self.deadline)
                unready[Target(rtype, change.obj.name, change.obj.namespace)] = (change, current)

        rest = list(wave)
        if rest[0].is_namespace:  # everything namespaced needs it to exist first
            await apply_one(rest.pop(0))
        if self.options.wait:
            # Pod creation refused by quota is often reported only as a FailedCreate event,
            # emitted a moment after the write: watch before writing, or it is missed.
            written = self.written_workloads(rest)
            if written:
                await view.related(written)
        async with task_group() as group:
            for change in rest:
                group.start_soon(apply_one, change)
        if unready:
            for target, (_, current) in unready.items():
                if needs_watching(target.rtype.kind):
                    await view.observe(target, current)
            by_target = {target: change for target, (change, _) in unready.items()}

            def on_change(target: Target, state: Readiness) -> None:
                self.report(by_target[target], state, wave_started)

            await wait_ready(view, list(unready), deadline=self.deadline, on_change=on_change)
            for target in by_target:
                latest = await view.get(target)
                if latest is not None:
                    self.result.inventory.put(latest)
        seconds = time.monotonic() - wave_started
        self.result.wave_seconds.append(seconds)
        self.events.emit(WaveFinished(position, self.wave_count, seconds))

    async def apply_change(self, change: Change, wave_started: float) -> Json:
        """Server-side apply the change if it must be written; the object as now live."""
        obj = change.obj
        current = self.result.inventory.get(change.key)
        if change.write or current is None:
            rtype = await resolve_type(self.api, obj.api_version, obj.kind, deadline=self.deadline)
            try:
                current = await server_side_apply(self.api, rtype, change.manifest, deadline=self.deadline)
            except EnvspecError as exc:
                self.events.emit(
                    ObjectFailed(
                        change.wave,
                        self.wave_count,
                        change.ref,
                        obj.namespace,
                        exc.message,
                        time.monotonic() - wave_started,
                    )
                )
                raise
            self.result.writes += 1
        if change.is_namespace:
            # The run's start on the server's clock (our write's managedFields time), which
            # readiness compares conditions with; the local clock when nothing was written.
            self.view_since = server_time_of(current, FIELD_MANAGER) if change.write else None
            if self.changes.expires_at:
                self.events.emit(LeaseRenewed(self.changes.namespace, self.changes.expires_at))
            if self.changes.drop_expiry:
                current = await self.drop_expiry()
        self.result.actions[change.ref] = PAST[change.kind]
        self.result.inventory.put(current)
        self.events.emit(
            ObjectApplied(
                change.wave,
                self.wave_count,
                change.ref,
                obj.namespace,
                PAST[change.kind],
                time.monotonic() - wave_started,
            )
        )
        return current

    async def drop_expiry(self) -> Json:
        """`ttl: never`: remove an expiry that `extend` or watch's keep-alive left behind.

        Those write the expiry under their own field manager, so applying a namespace
        without it does not remove it; kube-janitor would still act on `janitor/expires`.
        """
        name = self.changes.namespace
        patched = await merge_patch(
            self.api,
            kinds.NAMESPACE,
            name,
            None,
            drop_expiry_patch(self.changes.drop_expiry),
            field_manager=LEASE_FIELD_MANAGER,
            deadline=self.deadline,
            doing=f"removing the expiry of namespace/{name} (ttl: never)",
        )
        self.result.writes += 1
        return patched

    def report(self, change: Change, state: Readiness, wave_started: float) -> None:
        args = (
            change.wave,
            self.wave_count,
            change.ref,
            change.obj.namespace,
            state.message,
            time.monotonic() - wave_started,
        )
        if state.failed:
            self.events.emit(ObjectFailed(*args))
        elif state.done:
            self.events.emit(ObjectReady(*args))
        elif self.options.wait:
            self.events.emit(ObjectProgress(*args))

    async def prune(self) -> None:
        """Delete what the change set prunes: last wave first, one wave's objects concurrently."""
        batches: list[list[Prune]] = []
        for prune in self.changes.prunes:
            if batches and batches[-1][0].wave == prune.wave:
                batches[-1].append(prune)
            else:
                batches.append([prune])
        for batch in batches:
            async with task_group() as group:
                for prune in batch:
                    group.start_soon(self.delete, prune)

    async def delete(self, prune: Prune) -> None:
        obj = prune.live
        metadata = metadata_of(obj)
        rtype = await resolve_type(self.api, str(obj.get("apiVersion")), str(obj.get("kind")), deadline=self.deadline)
        async with self.limiter:
            await delete_object(
                self.api,
                rtype,
                str(metadata["name"]),
                prune.namespace,
                deadline=self.deadline,
                uid=metadata.get("uid"),
            )
        self.result.writes += 1
        self.result.pruned.append(prune.ref)
        self.result.inventory.drop(prune.key)
        self.events.emit(Pruned(prune.ref, prune.namespace, prune.wave))


async def execute(
    api: Any,
    changes: ChangeSet,
    inventory: Inventory,
    *,
    events: Emitter,
    options: ApplyOptions = ApplyOptions(),
    deadline: Deadline | None = None,
) -> ApplyResult:
    """Execute `changes` over the live state `inventory`; emits events, then a Summary.

    Raises ClusterError (a request failed) or NotReadyError (a terminal readiness
    failure, or the deadline).
    """
    run = _Run(api, changes, inventory, options, events, deadline or Deadline(options.timeout_seconds))
    result = run.result
    try:
        await run.run()
    except EnvspecError as exc:
        result.seconds = run.deadline.elapsed()
        events.emit(summary_of(result, ok=False, waited=options.wait, message=exc.message))
        raise
    # From the start of the deadline: with `up`, that includes connecting and reading.
    result.seconds = run.deadline.elapsed()
    if options.wait:
        events.emit(EnvironmentReady(changes.environment, changes.namespace, result.seconds))
    events.emit(summary_of(result, ok=True, waited=options.wait))
    return result


def summary_of(result: ApplyResult, *, ok: bool, waited: bool, message: str = "") -> Summary:
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
