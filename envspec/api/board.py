"""The operations this server has started: running in the background, awaitable, observable.

Creates and deletes are long: the API answers `202 Accepted` at once and the operation
runs here, in the server's task group, through `run_operation` (so its events begin
with `operation_started` and end with `operation_finished`, like every CLI command).
A `Tracked` operation keeps its events for `GET /environments/{id}/events`, which
replays them and then follows the live ones; and its final `OperationResult`.

At most one operation per environment runs at a time (a second one is refused: 409),
and at most `max_running` run at once (the others wait for a slot, as `accepted`).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from envspec.errors import EnvspecError
from envspec.events import Emitter, Envelope
from envspec.meta import format_instant_ms
from envspec.operations.run import run_operation
from envspec.report.results import OperationResult

logger = logging.getLogger("envspec.api")

EVENT_HISTORY = 2_000  # events kept per operation for late subscribers
SUBSCRIBER_BUFFER = 1_000  # a subscriber this far behind loses events, never blocks the operation
FINISHED_KEPT = 500  # finished operations remembered (the cluster holds the environments themselves)
RUNNING = "running"
ACCEPTED = "accepted"
INTERRUPTED = "interrupted"
STORE_SECONDS = 10.0  # one write of a record; a slow API server must not hold the operation up


class OperationStore(Protocol):
    """Where operation records outlive the server (`envspec.api.records.ClusterRecords`)."""

    heartbeat_seconds: float

    async def write(self, tracked: Tracked) -> None: ...  # never raises: a failed write is logged


Body = Callable[[Emitter], Awaitable[OperationResult]]


class OperationFailed(EnvspecError):
    """The operation ran and did not succeed: carries its result so that the board keeps it."""

    def __init__(self, result: OperationResult) -> None:
        super().__init__(result.error or f"{result.operation} failed")
        self.result = result


@dataclass
class Tracked:
    """One operation started by this server."""

    job_id: str
    operation: str
    environment: str | None
    namespace: str | None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    state: str = ACCEPTED
    result: OperationResult | None = None
    finished_at: datetime | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    history: deque[Envelope] = field(default_factory=lambda: deque(maxlen=EVENT_HISTORY))
    subscribers: list[MemoryObjectSendStream[Envelope]] = field(default_factory=list)
    interrupted: bool = False  # the server stopped before the operation ended
    document: dict[str, object] | None = None  # a create's `config`/`spec`: kept so that /jobs can run its tests

    @property
    def status(self) -> str:
        """`accepted`, `running`, then the result's `success` or `error`; `interrupted` if the server stopped first."""
        if self.interrupted:
            return INTERRUPTED
        return self.result.status if self.result is not None else self.state

    def record(self) -> dict[str, object]:
        """The operation in the original's field names (the result's, once it has one)."""
        if self.result is not None:
            record = self.result.record()
        else:
            record = {
                "job_id": self.job_id,
                "status": self.status,
                "namespace": self.namespace,
                "resources_created": [],
                "duration_ms": int((datetime.now(UTC) - self.started_at).total_seconds() * 1000),
                "execution_id": self.environment,
                "operation": self.operation,
                "environment": self.environment,
                "time": format_instant_ms(self.started_at),
            }
        if self.interrupted:
            record["status"] = INTERRUPTED
            record["error"] = "the server stopped before the operation ended"
        record["started_at"] = format_instant_ms(self.started_at)
        record["finished_at"] = format_instant_ms(self.finished_at) if self.finished_at else None
        return record


class _BoardSink:
    """Keeps an operation's events and hands them to its subscribers; never blocks."""

    def __init__(self, tracked: Tracked) -> None:
        self.tracked = tracked

    async def start(self) -> None:
        pass

    def emit(self, envelope: Envelope) -> None:
        self.tracked.history.append(envelope)
        for subscriber in list(self.tracked.subscribers):
            try:
                subscriber.send_nowait(envelope)
            except anyio.WouldBlock:
                pass  # a slow reader misses events; the operation does not wait for it
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.tracked.subscribers.remove(subscriber)

    async def close(self) -> None:
        pass


class Board:
    """The operations of this server, by job id and by environment."""

    def __init__(
        self,
        group: TaskGroup,
        *,
        max_running: int = 4,
        on_result: Callable[[OperationResult], None] | None = None,
        store: OperationStore | None = None,
    ) -> None:
        self.store = store
        self.group = group
        self.limiter = anyio.CapacityLimiter(max_running)
        self.on_result = on_result
        self.by_job: dict[str, Tracked] = {}
        self.finished: deque[str] = deque()

    def running(self, environment: str) -> Tracked | None:
        """The operation of `environment` that has not ended yet, if any."""
        for tracked in self.by_job.values():
            if tracked.environment == environment and not tracked.done.is_set():
                return tracked
        return None

    def recent(self, count: int) -> list[Tracked]:
        """The last `count` operations started, newest first."""
        return sorted(self.by_job.values(), key=lambda t: t.started_at, reverse=True)[:count]

    def latest(self, environment: str) -> Tracked | None:
        """The operation on `environment` started last (running or not)."""
        found = [t for t in self.by_job.values() if t.environment == environment]
        return max(found, key=lambda t: t.started_at) if found else None

    def start(self, tracked: Tracked, body: Body) -> None:
        """Run `body` in the background as `tracked`."""
        self.by_job[tracked.job_id] = tracked
        self.group.start_soon(self._run, tracked, body)

    async def _run(self, tracked: Tracked, body: Body) -> None:
        async def checked(events: Emitter) -> OperationResult:
            result = await body(events)
            if not result.ok:
                raise OperationFailed(result)  # so that operation_finished says it failed
            return result

        try:
            async with self.limiter:
                tracked.state = RUNNING
                async with anyio.create_task_group() as beating:
                    if self.store is not None:
                        beating.start_soon(self._heartbeat, tracked)
                    result = await self._outcome(tracked, checked)
                    beating.cancel_scope.cancel()
            tracked.result = result
            if self.on_result is not None:
                self.on_result(result)
        finally:
            tracked.finished_at = datetime.now(UTC)
            if self.store is not None:
                # Written before `done` is set: whoever waited reads the final record from the cluster too.
                # Shielded, so that a server that is stopping still records how its operations ended.
                with anyio.CancelScope(shield=True), anyio.move_on_after(STORE_SECONDS):
                    await self.store.write(tracked)
            tracked.done.set()
            for subscriber in tracked.subscribers:
                subscriber.close()
            tracked.subscribers.clear()
            self._forget_old(tracked.job_id)

    async def _outcome(self, tracked: Tracked, checked: Body) -> OperationResult:
        try:
            return await run_operation(
                tracked.operation,
                checked,
                sink=_BoardSink(tracked),
                environment=tracked.environment,
                namespace=tracked.namespace,
                operation_id=tracked.job_id,
            )
        except OperationFailed as failed:
            return failed.result
        except anyio.get_cancelled_exc_class():
            tracked.interrupted = True  # the server is stopping: the record says so
            raise
        except Exception as exc:  # a bug: the operation ends as an error, the server goes on
            logger.exception("operation %s (%s) failed unexpectedly", tracked.job_id, tracked.operation)
            return OperationResult(
                job_id=tracked.job_id,
                operation=tracked.operation,
                ok=False,
                execution_id=tracked.environment,
                environment=tracked.environment,
                namespace=tracked.namespace,
                error=f"internal error: {type(exc).__name__}",
            )

    async def _heartbeat(self, tracked: Tracked) -> None:
        """Keep the operation's record on the cluster fresh while it runs (see `records.py`)."""
        assert self.store is not None
        while True:
            with anyio.move_on_after(STORE_SECONDS):
                await self.store.write(tracked)
            await anyio.sleep(self.store.heartbeat_seconds)

    def _forget_old(self, job_id: str) -> None:
        self.finished.append(job_id)
        while len(self.finished) > FINISHED_KEPT:
            self.by_job.pop(self.finished.popleft(), None)

    @asynccontextmanager
    async def follow(self, tracked: Tracked) -> AsyncIterator[AsyncIterator[Envelope]]:
        """The operation's events so far, then the live ones until it ends."""
        send, receive = anyio.create_memory_object_stream[Envelope](SUBSCRIBER_BUFFER)
        backlog = list(tracked.history)
        if not tracked.done.is_set():
            tracked.subscribers.append(send)
        else:
            send.close()

        async def events() -> AsyncIterator[Envelope]:
            for envelope in backlog:
                yield envelope
            async with receive:
                async for envelope in receive:  # ends when the operation closes the stream
                    yield envelope

        try:
            yield events()
        finally:
            if send in tracked.subscribers:
                tracked.subscribers.remove(send)
            send.close()
            receive.close()


async def wait_for(tracked: Tracked, seconds: float) -> bool:
    """Wait until the operation ends or `seconds` pass; whether it ended."""
    if tracked.done.is_set() or seconds <= 0:
        return tracked.done.is_set()
    with anyio.move_on_after(seconds if math.isfinite(seconds) else None):
        await tracked.done.wait()
    return tracked.done.is_set()
