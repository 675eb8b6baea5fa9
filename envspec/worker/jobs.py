"""`envspec worker`: serve environment requests from `<prefix>:jobs` until SIGTERM.

The loop is `streams.StreamConsumer` (consumer group, own pending first, reclaim,
heartbeat, dead letters, per-environment locks, XACK only after the result); this
module gives it the handler that turns one stream entry into one served request:

    entry --parse_entry--> Request --service.operations.serve--> OperationResult
          \\-- RequestError: an error result with the reason, and a dead letter

Each request runs as one operation (`run_operation`: `operation_started` ...
`operation_finished`, its operation id the request's `job_id`) whose events go to
`<prefix>:status` through the Redis sink; its result is written to
`<prefix>:results` by the consumer, before the XACK, never through the sink's
best-effort buffer.

A Kubernetes API outage makes the job fail with an error result (acknowledged, not
retried: the caller decides whether to ask again); a bug in serving leaves the entry
pending, so it is retried after `--claim-idle` and dead-lettered after
`--max-deliveries`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envspec.errors import ExitCode
from envspec.events import Envelope, Sink, open_sink
from envspec.kube.wait import task_group
from envspec.lifecycle.signals import graceful_stop
from envspec.operations.run import run_operation
from envspec.report.results import OperationResult, result_fields
from envspec.report.status import reporting_sink
from envspec.service.operations import Service, serve
from envspec.service.requests import Request, RequestError, decode_entry, parse_entry
from envspec.worker.streams import ConsumerConfig, ConsumerStats, Result, StreamConsumer, StreamMessage

logger = logging.getLogger("envspec.worker")


class _Shared:
    """A sink opened once for the worker's life: each job's `run_operation` must not close it."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    async def start(self) -> None:
        pass

    def emit(self, envelope: Envelope) -> None:
        self.sink.emit(envelope)

    async def close(self) -> None:
        pass


class RequestHandler:
    """One stream entry -> one served request -> what the consumer writes and acknowledges."""

    def __init__(self, service: Service, status: Sink) -> None:
        self.service = service
        self.status = _Shared(status)

    async def __call__(self, message: StreamMessage) -> Result:
        try:
            request = parse_entry(message.fields, self.service.settings)
        except RequestError as exc:
            return self._refused(message, exc)
        job_id = request.job_id or message.id
        try:
            result = await run_operation(
                request.operation,
                lambda events: serve(request, self.service, events=events),
                sink=self.status,
                environment=request.execution_id,
                operation_id=job_id,
            )
        except RequestError as exc:  # a spec that does not validate, an operation not served here
            return self._refused(message, exc, request)
        return Result(fields=result_fields(result))

    def _refused(self, message: StreamMessage, exc: RequestError, request: Request | None = None) -> Result:
        reason = f"invalid request: {exc.message}"
        fields = error_result(message, reason, request)
        return Result(fields=fields, dead_letter=reason)


def error_result(message: StreamMessage, reason: str, request: Request | None = None) -> dict[str, str]:
    """The `<prefix>:results` entry of a request that was not served, with what can be read of it."""
    known = request.model_dump() if request is not None else _readable(message.fields)
    result = OperationResult(
        job_id=_text(known.get("job_id")) or message.id,
        operation=_text(known.get("operation")) or "unknown",
        ok=False,
        execution_id=_text(known.get("execution_id")),
        environment=_text(known.get("execution_id")),
        error=reason,
        extra={"exit_code": int(ExitCode.USER_ERROR)},
    )
    return result_fields(result)


def dead_letter_result(message: StreamMessage, reason: str) -> dict[str, str]:
    """The error result of an entry dead-lettered for too many deliveries."""
    return error_result(message, reason)


def environment_key(message: StreamMessage) -> str | None:
    """Requests for one environment (its execution id) never run at the same time; None: no lock needed."""
    execution_id = _readable(message.fields).get("execution_id")
    return execution_id if isinstance(execution_id, str) and execution_id else None


def _readable(fields: Mapping[str, str]) -> dict[str, Any]:
    try:
        return decode_entry(fields)
    except RequestError:
        return {key: fields[key] for key in ("job_id", "execution_id", "operation") if key in fields}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class WorkerConfig:
    consumer: ConsumerConfig
    service: Service


async def run_worker(config: WorkerConfig) -> ConsumerStats:
    """Serve `<prefix>:jobs` until SIGTERM/SIGINT (a second one stops at once: KeyboardInterrupt)."""
    status = reporting_sink(
        config.consumer.url,
        stream_prefix=config.consumer.stream_prefix,
        maxlen=config.consumer.maxlen,
        results=False,
        on_warning=logger.warning,
    )
    consumer = StreamConsumer(
        config.consumer,
        RequestHandler(config.service, status),
        lock_key=environment_key,
        dead_letter_result=dead_letter_result,
    )
    logger.info(
        "worker %s: serving %s (group %s, concurrency %d)",
        config.consumer.consumer,
        config.consumer.jobs_stream,
        config.consumer.group,
        config.consumer.concurrency,
    )
    async with open_sink(status), graceful_stop() as stop, task_group() as group:

        async def stop_on_signal() -> None:
            await stop.requested.wait()
            logger.info("worker: %s: finishing the jobs in flight, taking no new ones", stop.signal_name)
            consumer.stop()

        group.start_soon(stop_on_signal)
        await consumer.run()
        group.cancel_scope.cancel()
    if stop.forced:
        raise KeyboardInterrupt
    logger.info(
        "worker: stopped (%d acknowledged, %d dead-lettered, %d left pending)",
        consumer.stats.acknowledged,
        consumer.stats.dead_lettered,
        consumer.stats.left_pending,
    )
    return consumer.stats
