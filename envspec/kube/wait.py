"""Waiting for objects to become ready (or gone), driven by watches.

A `ClusterView` runs informers on demand (one per kind and namespace) for as long
as a command needs them, so that the waves of one `up` share their watches and no
change is missed between waves. `wait_ready` re-assesses its targets whenever an
informer reports a change, stops at the first terminal failure, and owns the one
overall deadline.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from anyio.abc import TaskGroup

from envspec.errors import EnvspecError, NotReadyError
from envspec.kube import kinds
from envspec.kube.deadline import Deadline
from envspec.kube.informer import Informer
from envspec.kube.kinds import ResourceType
from envspec.kube.readiness import Readiness, Related, assess, has_pods, waiting
from envspec.kube.ssa import describe
from envspec.kube.times import format_server_time

Json = dict[str, Any]
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


@dataclass(frozen=True)
class Target:
    """An object to wait for."""

    rtype: ResourceType
    name: str
    namespace: str | None

    @property
    def ref(self) -> str:
        return self.rtype.ref(self.name)

    def describe(self) -> str:
        return describe(self.rtype, self.name, self.namespace)


class _ChangeSignal:
    """Wakes the one waiter whenever any informer saw a change."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = anyio.Event()


class ClusterView:
    """Informers started on demand and kept until the view closes."""

    def __init__(self, api: Any, task_group: TaskGroup) -> None:
        self.api = api
        self._task_group = task_group
        self._informers: dict[tuple[ResourceType, str | None, str | None], Informer] = {}
        self.changed = _ChangeSignal()
        # When the run that uses this view began, on the API server's clock: conditions
        # older than that are history to judge again, not verdicts (see readiness).
        self.since: datetime | None = None

    async def informer(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        field_selector: str | None = None,
        only_new: bool = False,
    ) -> Informer:
        """The informer for this kind and namespace, started and synced (listed) on first use."""
        informer = self.start(rtype, namespace, field_selector=field_selector, only_new=only_new)
        await informer.synced.wait()
        return informer

    def start(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        field_selector: str | None = None,
        only_new: bool = False,
    ) -> Informer:
        """Start the informer for this kind and namespace without waiting for its first list.

        Starting early lets its list and watch overlap with the writes of earlier waves.
        """
        key = (rtype, namespace if rtype.namespaced else None, field_selector)
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(
                self.api,
                rtype,
                key[1],
                on_change=self.changed.notify,
                field_selector=field_selector,
                only_new=only_new,
            )
            self._informers[key] = informer
            self._task_group.start_soon(informer.run, name=f"informer {rtype.plural}")
        return informer

    async def _target_informer(self, target: Target) -> Informer:
        if target.rtype.kind == "Namespace":
            # Watch only this namespace, not every namespace of the cluster.
            return await self.informer(target.rtype, None, field_selector=f"metadata.name={target.name}")
        return await self.informer(target.rtype, target.namespace)

    async def observe(self, target: Target, obj: Json) -> None:
        """Seed the view with what a write just returned, so a lagging watch cannot look ready."""
        (await self._target_informer(target)).seed(obj)

    async def get(self, target: Target) -> Json | None:
        return (await self._target_informer(target)).get(target.name, target.namespace)

    def start_related(self, namespace: str) -> None:
        """Start, without waiting, the informers `related` reads for workloads of `namespace`."""
        self.start(kinds.POD, namespace)
        self.start(kinds.REPLICA_SET, namespace)
        self.start(kinds.EVENT, namespace, only_new=True)

    def outage(self) -> tuple[datetime, str] | None:
        """Since when the API server has been unreachable for this view's watches, and why; None if it answers."""
        down = [
            (informer.unreachable_since, informer.unreachable_reason)
            for informer in self._informers.values()
            if informer.unreachable_since is not None
        ]
        return min(down) if down else None

    async def related(self, targets: Sequence[Target]) -> Related:
        """Pods, ReplicaSets, recent events and storage classes that explain the targets' state."""
        pods: list[Json] = []
        replica_sets: list[Json] = []
        events: list[Json] = []
        modes: dict[str, str] = {}
        default_class: str | None = None
        for namespace in sorted({t.namespace for t in targets if has_pods(t.rtype.kind) and t.namespace}):
            pods += (await self.informer(kinds.POD, namespace)).objects.values()
            replica_sets += (await self.informer(kinds.REPLICA_SET, namespace)).objects.values()
            events += (await self.informer(kinds.EVENT, namespace, only_new=True)).objects.values()
        if any(t.rtype.kind == "PersistentVolumeClaim" for t in targets):
            for storage_class in (await self.informer(kinds.STORAGE_CLASS, None)).objects.values():
                metadata = storage_class.get("metadata") or {}
                modes[str(metadata.get("name"))] = str(storage_class.get("volumeBindingMode", "Immediate"))
                if (metadata.get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true":
                    default_class = str(metadata.get("name"))
        return Related(pods, replica_sets, events, modes, default_class, since=self.since)


@asynccontextmanager
async def cluster_view(api: Any) -> AsyncIterator[ClusterView]:
    """A view whose informers stop when the block ends; errors come out unwrapped."""
    async with task_group() as group:
        view = ClusterView(api, group)
        try:
            yield view
        finally:
            group.cancel_scope.cancel()


@asynccontextmanager
async def task_group() -> AsyncIterator[TaskGroup]:
    """An anyio task group that raises the meaningful error, not an ExceptionGroup.

    The CLI shows an `EnvspecError`'s message; one wrapped in a group would look
    like a crash.
    """
    try:
        async with anyio.create_task_group() as group:
            yield group
    except BaseExceptionGroup as grouped:
        raise _most_meaningful(grouped) from None


def _most_meaningful(grouped: BaseExceptionGroup[BaseException]) -> BaseException:
    leaves: list[BaseException] = []

    def collect(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                collect(inner)
        else:
            leaves.append(error)

    collect(grouped)
    for preferred in (KeyboardInterrupt, EnvspecError):
        for leaf in leaves:
            if isinstance(leaf, preferred):
                return leaf
    return leaves[0]


# How long pods may be refused for want of room in the quota before that counts as a
# failure. Room comes when pods going away have terminated (a rollout replaces pods one
# at a time, and the old one counts until it is gone: up to its 30 s grace period).
QUOTA_PATIENCE_SECONDS = 45.0


async def wait_ready(
    view: ClusterView,
    targets: Sequence[Target],
    *,
    deadline: Deadline,
    on_change: Callable[[Target, Readiness], None],
) -> dict[Target, Readiness]:
    """Wait until every target is ready; NotReadyError at the first terminal failure or the deadline.

    `on_change` hears every change of a target's readiness (progress lines, failures).
    """
    latest: dict[Target, Readiness] = {}
    stalled_since: dict[Target, float] = {}
    pending = list(targets)
    with anyio.move_on_after(deadline.remaining()) as timer:
        while pending:
            related = await view.related(pending)
            now = anyio.current_time()
            for target in list(pending):
                obj = await view.get(target)
                state = waiting("not created yet") if obj is None else assess(obj, related)
                if latest.get(target) != state:
                    latest[target] = state
                    on_change(target, state)
                if state.failed:
                    raise NotReadyError(f"{target.describe()}: {state.message}")
                if state.stalled:
                    since = stalled_since.setdefault(target, now)
                    if now - since >= QUOTA_PATIENCE_SECONDS:
                        raise NotReadyError(
                            f"{target.describe()}: {state.message} (no room came for {QUOTA_PATIENCE_SECONDS:.0f}s)"
                        )
                else:
                    stalled_since.pop(target, None)
                if state.done:
                    pending.remove(target)
            if pending:
                # A stalled target is re-assessed on a clock, not only on changes: the
                # absence of change is what makes it fail.
                with anyio.move_on_after(1.0 if stalled_since else math.inf):
                    await view.changed.wait()
    if timer.cancelled_caught:
        stuck = "; ".join(f"{t.describe()}: {latest[t].message}" for t in pending if t in latest)
        outage = view.outage()
        if outage is not None:
            down_since, reason = outage
            raise NotReadyError(
                f"not ready after {deadline.describe()}: the API server has been unreachable since "
                f"{format_server_time(down_since)} ({reason}); "
                f"last known state: {stuck or 'nothing seen yet'}"
            )
        raise NotReadyError(f"not ready after {deadline.describe()}: {stuck}")
    return latest


async def wait_gone(view: ClusterView, targets: Sequence[Target], *, deadline: Deadline) -> None:
    """Wait until every target has disappeared (deleted, finalizers done)."""
    pending = list(targets)
    with anyio.move_on_after(deadline.remaining()) as timer:
        while pending:
            pending = [t for t in pending if await view.get(t) is not None]
            if pending:
                await view.changed.wait()
    if timer.cancelled_caught:
        names = ", ".join(t.describe() for t in pending)
        raise NotReadyError(f"still not deleted after {deadline.describe()}: {names}")
