"""`gc`: delete the environments whose expiry has passed.

A sweep is one paginated list of the namespaces labelled
`app.kubernetes.io/managed-by=envspec`, a pure decision per namespace (`expiry.judge`),
then one DELETE per expired namespace. Nothing else is ever deleted: a namespace
without the label is not even listed, and the label is checked again before deleting.
Each DELETE carries the uid and resourceVersion gc judged, so an environment extended
(or recreated) between the list and the delete survives.

`run_loop` repeats sweeps until asked to stop; a sweep that fails (API down) is
reported and the next one is tried after the interval.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio

from envspec.errors import ClusterError, EnvspecError
from envspec.events import Emitter, GcDeleted, GcDeleteFailed, GcSkipped, GcStuck, GcSweepFailed, GcSweepFinished
from envspec.kube import kinds
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.ssa import ChangedSinceRead, delete_object, list_objects
from envspec.kube.wait import task_group
from envspec.lifecycle.expiry import DEFAULT_STUCK_AFTER_SECONDS, Action, Clock, Verdict, judge
from envspec.meta import MANAGED_SELECTOR, format_instant

DEFAULT_INTERVAL_SECONDS = 30  # as kube-janitor
# Requests of one sweep (list, deletes, their retries) share this deadline, so a sweep
# against a dead API server ends and the loop can report it and try again.
SWEEP_DEADLINE_SECONDS = 60.0
# Deletes in flight at once: a namespace DELETE returns at once (the namespace
# controller does the work), so a few in parallel are plenty.
DELETE_CONCURRENCY = 8


@dataclass(frozen=True)
class GcOptions:
    dry_run: bool = False
    stuck_after_seconds: float = DEFAULT_STUCK_AFTER_SECONDS
    sweep_deadline_seconds: float = SWEEP_DEADLINE_SECONDS
    concurrency: int = DELETE_CONCURRENCY


@dataclass
class SweepReport:
    verdicts: list[Verdict] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)  # namespaces deleted (or that would be, dry run)
    failed: dict[str, str] = field(default_factory=dict)  # namespace -> message
    changed: list[str] = field(default_factory=list)  # changed between list and delete: left alone
    seconds: float = 0.0

    def count(self, *actions: Action) -> int:
        return sum(1 for v in self.verdicts if v.action in actions)


async def sweep(api: Any, *, clock: Clock, events: Emitter, options: GcOptions = GcOptions()) -> SweepReport:
    """One sweep; raises ClusterError only when the namespaces cannot be listed.

    A delete that fails is reported (GcDeleteFailed) and counted, and the sweep goes on.
    """
    started = time.monotonic()
    deadline = Deadline(options.sweep_deadline_seconds)
    listing = await list_objects(api, kinds.NAMESPACE, None, deadline=deadline, label_selector=MANAGED_SELECTOR)
    now = clock()  # after the list: decisions are about the state as listed
    report = SweepReport(
        verdicts=sorted(
            (judge(item, now, stuck_after=options.stuck_after_seconds) for item in listing.items),
            key=lambda v: v.namespace,
        )
    )
    for verdict in report.verdicts:
        if verdict.action in (Action.MISSING, Action.INVALID):
            events.emit(GcSkipped(verdict.namespace, verdict.environment, verdict.reason))
        elif verdict.action is Action.STUCK:
            events.emit(
                GcStuck(verdict.namespace, verdict.environment, verdict.terminating_seconds or 0.0, verdict.blockers)
            )
    expired = [v for v in report.verdicts if v.action is Action.DELETE]
    if options.dry_run:
        for verdict in expired:
            _report_deleted(events, verdict, dry_run=True)
            report.deleted.append(verdict.namespace)
    else:
        limiter = anyio.CapacityLimiter(max(1, options.concurrency))

        async def delete(verdict: Verdict) -> None:
            async with limiter:
                await _delete_expired(api, verdict, report, events, deadline)

        async with task_group() as group:
            for verdict in expired:
                group.start_soon(delete, verdict)
    report.seconds = time.monotonic() - started
    events.emit(
        GcSweepFinished(
            examined=len(report.verdicts),
            deleted=len(report.deleted),
            kept=report.count(Action.KEEP),
            never=report.count(Action.NEVER),
            skipped=report.count(Action.MISSING, Action.INVALID) + len(report.changed),
            terminating=report.count(Action.TERMINATING, Action.STUCK),
            stuck=report.count(Action.STUCK),
            failed=len(report.failed),
            dry_run=options.dry_run,
            seconds=report.seconds,
        )
    )
    return report


async def _delete_expired(api: Any, verdict: Verdict, report: SweepReport, events: Emitter, deadline: Deadline) -> None:
    try:
        # The preconditions make the API server refuse (409) a namespace recreated under the
        # same name (uid) or modified since it was listed (resourceVersion): an `extend`
        # that lands between gc's list and its delete wins.
        await delete_object(
            api,
            kinds.NAMESPACE,
            verdict.namespace,
            None,
            deadline=deadline,
            uid=verdict.uid,
            resource_version=verdict.resource_version,
        )
    except ChangedSinceRead:
        report.changed.append(verdict.namespace)
        events.emit(
            GcSkipped(
                verdict.namespace,
                verdict.environment,
                "changed since it was listed (extended or recreated?): left for the next sweep",
            )
        )
        return
    except EnvspecError as exc:
        report.failed[verdict.namespace] = exc.message
        events.emit(GcDeleteFailed(verdict.namespace, verdict.environment, exc.message))
        return
    # Already gone (404) counts as deleted: the environment is gone either way.
    report.deleted.append(verdict.namespace)
    _report_deleted(events, verdict, dry_run=False)


def _report_deleted(events: Emitter, verdict: Verdict, *, dry_run: bool) -> None:
    assert verdict.expires_at is not None  # only DELETE verdicts get here
    events.emit(
        GcDeleted(
            namespace=verdict.namespace,
            environment=verdict.environment,
            expired_at=format_instant(verdict.expires_at),
            expired_seconds_ago=verdict.expired_seconds_ago or 0.0,
            age_seconds=verdict.age_seconds,
            dry_run=dry_run,
        )
    )


async def gc(target: ClusterTarget, *, clock: Clock, events: Emitter, options: GcOptions = GcOptions()) -> SweepReport:
    """`envspec gc`: one sweep; ClusterError when it could not list, or when any delete failed."""
    async with connect(target) as api:
        report = await sweep(api, clock=clock, events=events, options=options)
    if report.failed:
        count = len(report.failed)
        raise ClusterError(f"{count} expired environment{'s' if count != 1 else ''} could not be deleted")
    return report


async def gc_loop(
    target: ClusterTarget,
    *,
    interval_seconds: float,
    stop: anyio.Event,
    clock: Clock,
    events: Emitter,
    options: GcOptions = GcOptions(),
) -> int:
    """`envspec gc --loop`: sweep every `interval_seconds` until `stop` is set; the number of sweeps run.

    `stop` is only looked at between sweeps, so a sweep is never cut in half. A
    sweep that fails for any reason, including not reaching the API server at all,
    is reported and retried after the interval: a janitor must outlive API outages.
    """
    sweeps = 0
    async with AsyncExitStack() as stack:
        api: Any = None
        while not stop.is_set():
            try:
                if api is None:
                    api = await stack.enter_async_context(connect(target))
                await sweep(api, clock=clock, events=events, options=options)
            except EnvspecError as exc:
                events.emit(GcSweepFailed(exc.message, interval_seconds))
            except Exception as exc:  # a janitor that dies on one odd answer deletes nothing any more
                events.emit(GcSweepFailed(f"unexpected error: {type(exc).__name__}: {exc}", interval_seconds))
            sweeps += 1
            with anyio.move_on_after(interval_seconds):
                await stop.wait()
    return sweeps
