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
    import anyio  # here, not at the top: `envspec <command> --help` needs no event loop

    from envspec.operations.run import run_operation

    chosen = sink if sink is not None else output_sink(output)

    async def main() -> ResultT:
        return await run_operation(
            operation, body, sink=chosen, environment=environment, namespace=namespace, detail=detail
        )

    return anyio.run(main)
