"""Run any operation inside its first and last event, with its sink open.

The CLI, the worker and the REST API all run operations through `run_operation`,
so every operation, whoever starts it, begins with `operation_started` and ends
with `operation_finished` (ok, exit code, duration, what it created or applied),
and its sink is started before and closed (flushed) after.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from envspec.errors import EnvspecError, ExitCode
from envspec.events import Emitter, OperationFinished, OperationStarted, Sink, open_sink

ResultT = TypeVar("ResultT")


class HasResources(Protocol):
    def resources(self) -> tuple[str, ...]: ...


def resources_of(result: object) -> tuple[str, ...]:
    """What a result says it created or applied, if it says (see `HasResources`)."""
    method = getattr(result, "resources", None)
    return tuple(method()) if callable(method) else ()


async def run_operation(
    operation: str,
    body: Callable[[Emitter], Awaitable[ResultT]],
    *,
    sink: Sink,
    environment: str | None = None,
    namespace: str | None = None,
    detail: str = "",
    operation_id: str | None = None,
) -> ResultT:
    """`await body(events)` between `operation_started` and `operation_finished`, with `sink` open."""
    async with open_sink(sink):
        events = Emitter(
            sink, operation=operation, operation_id=operation_id, environment=environment, namespace=namespace
        )
        events.emit(OperationStarted(detail))
        started = time.monotonic()
        try:
            result = await body(events)
        except EnvspecError as exc:
            events.emit(OperationFinished(False, int(exc.exit_code), time.monotonic() - started, exc.message))
            raise
        except BaseException as exc:  # cancelled (Ctrl-C) or a bug: still say how it ended
            code = ExitCode.INTERRUPTED if _is_interrupt(exc) else ExitCode.INTERNAL
            message = "interrupted" if code == ExitCode.INTERRUPTED else f"internal error: {type(exc).__name__}"
            events.emit(OperationFinished(False, int(code), time.monotonic() - started, message))
            raise
        events.emit(OperationFinished(True, int(ExitCode.OK), time.monotonic() - started, "", resources_of(result)))
        return result


def _is_interrupt(exc: BaseException) -> bool:
    import anyio

    return isinstance(exc, KeyboardInterrupt | anyio.get_cancelled_exc_class())
