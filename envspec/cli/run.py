"""The one place a command enters the event loop: `anyio.run` lives here and nowhere else.

A command parses its options, builds what the operation needs, and calls `run`
with the operation's body; `run` picks the sink from `-o` and runs the body
through `envspec.operations.run.run_operation` (first and last event, sink
opened and closed).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import anyio

if TYPE_CHECKING:
    from envspec.events import Emitter, Sink

ResultT = TypeVar("ResultT")


def output_sink(output: str, *, timestamps: bool = False) -> Sink:
    """Where progress goes: live lines for people, JSON lines for machines; both on stdout."""
    from envspec.sinks import JsonLinesSink, TerminalSink

    if output == "json":
        return JsonLinesSink(sys.stdout)
    return TerminalSink(sys.stdout, timestamps=timestamps)


def run(
    operation: str,
    body: Callable[[Emitter], Awaitable[ResultT]],
    *,
    output: str = "table",
    sink: Sink | None = None,
    environment: str | None = None,
    namespace: str | None = None,
    detail: str = "",
) -> ResultT:
    """Run one operation to its end on a fresh event loop; its result."""
    from envspec.operations.run import run_operation

    chosen = sink if sink is not None else output_sink(output)

    async def main() -> ResultT:
        return await run_operation(
            operation, body, sink=chosen, environment=environment, namespace=namespace, detail=detail
        )

    return anyio.run(main)


def run_until_stopped(
    operation: str,
    body: Callable[[Emitter, anyio.Event], Awaitable[ResultT]],
    *,
    output: str = "table",
    sink: Sink | None = None,
    detail: str = "",
) -> ResultT:
    """`run` for the long-running commands (`gc --loop`, `watch`), until SIGINT or SIGTERM.

    The first signal sets the event `body` gets, which it checks at its next safe point
    (between two sweeps, between two cycles); a second one stops it at once and becomes
    KeyboardInterrupt (exit 130).
    """
    from envspec.lifecycle.signals import graceful_stop

    async def until_stopped(events: Emitter) -> ResultT:
        async with graceful_stop() as stop:
            result = await body(events, stop.requested)
        if stop.forced:
            raise KeyboardInterrupt
        return result

    return run(operation, until_stopped, output=output, sink=sink, detail=detail)
