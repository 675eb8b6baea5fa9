"""The one place a command enters the event loop: `anyio.run` lives here and nowhere else.

A command parses its options, builds what the operation needs, and calls `run`
with the operation's body; `run` picks the sinks — the output (`-o`), and Redis
Streams when `--report-redis` / $ENVSPEC_REPORT_REDIS or the spec's
`reporting.redis` asks for it — and runs the body through
`envspec.operations.run.run_operation` (first and last event, sinks opened and
closed). This is the only place the Redis sink is composed in: no command knows it.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import click

from envspec.cli.options import REPORT_REDIS_META

if TYPE_CHECKING:
    import anyio

    from envspec.events import Emitter, Sink
    from envspec.pipeline import ValidSpec

ResultT = TypeVar("ResultT")


def output_sink(output: str, *, timestamps: bool = False) -> Sink:
    """Where progress goes: live lines for people, JSON lines for machines; both on stdout."""
    from envspec.sinks import JsonLinesSink, TerminalSink

    if output == "json":
        return JsonLinesSink(sys.stdout)
    return TerminalSink(sys.stdout, timestamps=timestamps)


def report_sink(spec: ValidSpec | None, env_id: str | None) -> Sink | None:
    """The Redis Streams sink, when the command line or the spec asks for one.

    The URL: `--report-redis` / $ENVSPEC_REPORT_REDIS, else the spec's
    `reporting.redis.url`; the stream prefix and cap: the spec's, else the defaults.
    Its one warning (Redis unreachable, the password masked) goes to stderr.
    """
    from envspec.operations.spec import report_target

    context = click.get_current_context(silent=True)
    flag_url = context.meta.get(REPORT_REDIS_META) if context is not None else None
    target = report_target(spec, env_id) if spec is not None else None
    url = flag_url or (target.url if target is not None else None)
    if not url:
        return None
    from envspec.report.redis_sink import DEFAULT_MAXLEN, DEFAULT_STREAM_PREFIX
    from envspec.report.status import reporting_sink

    return reporting_sink(
        url,
        stream_prefix=target.stream_prefix if target is not None else DEFAULT_STREAM_PREFIX,
        maxlen=target.maxlen if target is not None else DEFAULT_MAXLEN,
        on_warning=lambda text: click.echo(text, err=True),
    )


def run(
    operation: str,
    body: Callable[[Emitter], Awaitable[ResultT]],
    *,
    output: str = "table",
    sink: Sink | None = None,
    environment: str | None = None,
    namespace: str | None = None,
    detail: str = "",
    spec: ValidSpec | None = None,
    env_id: str | None = None,
) -> ResultT:
    """Run one operation to its end on a fresh event loop; its result.

    `spec` (and `env_id`): the spec the operation acts on, if it has one; its
    `reporting` section may add a sink.
    """
    import anyio  # here, not at the top: `envspec <command> --help` needs no event loop

    from envspec.cli.main import start_collecting
    from envspec.operations.run import run_operation
    from envspec.sinks import Fanout

    chosen = sink if sink is not None else output_sink(output)
    report = report_sink(spec, env_id)
    if report is not None:
        chosen = Fanout([chosen, report])
    start_collecting()

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
    environment: str | None = None,
    namespace: str | None = None,
    spec: ValidSpec | None = None,
    env_id: str | None = None,
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

    return run(
        operation,
        until_stopped,
        output=output,
        sink=sink,
        detail=detail,
        environment=environment,
        namespace=namespace,
        spec=spec,
        env_id=env_id,
    )


def run_service(main: Callable[[], Awaitable[ResultT]]) -> ResultT:
    """Run a long-lived service (`envspec worker`) that opens its own sinks, on a fresh event loop."""
    import anyio

    from envspec.cli.main import start_collecting

    start_collecting()
    return anyio.run(main)
