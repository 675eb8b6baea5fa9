"""Report events and results to Redis Streams, without ever holding up or breaking the job.

`RedisStreamSink` is one sink behind the event layer's interface (`start`, `emit`,
`close`). It knows no command: which envelopes are phase transitions, and with which
`type`, is decided by the injected `status_type`; the event's own fields come from the
injected `to_fields` (the event layer's JSON form); a final result comes from the
injected `result_of`, or is handed over with `publish_result`.

    <prefix>:status   one entry per phase transition (`status_entry` below)
    <prefix>:results  one entry per operation (`envspec.report.results.result_fields`)

`emit` only appends to a bounded in-memory buffer (when it is full the oldest status
entry is dropped and counted); a background task flushes it with pipelined
`XADD ... MAXLEN ~ N`. Redis unreachable at start, failing mid-way or slow: the
operation goes on, the entries wait in the buffer (retried with backoff), and exactly
one warning is given through `on_warning`, naming the URL with its password masked.
`close` flushes for at most `flush_timeout` seconds, and makes only one more attempt
when Redis is known to be unreachable, so a Redis that is down adds no wait to a command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from envspec.meta import format_instant_ms
from envspec.report.redis_url import mask_text, mask_url
from envspec.report.results import OperationResult, flat_fields, result_fields

DEFAULT_STREAM_PREFIX = "maestro:streams:k8s"
DEFAULT_MAXLEN = 10_000
DEFAULT_BUFFER = 10_000  # status entries held while Redis is away
RESULT_BUFFER = 1_000  # results are few and precious: their own, separate bound
BATCH = 200  # entries per pipelined round trip
CONNECT_TIMEOUT = 1.0
SOCKET_TIMEOUT = 2.0
FLUSH_TIMEOUT = 2.0
RETRY_FIRST = 0.2
RETRY_MAX = 5.0
# Fields every status entry carries, taken from the envelope itself.
ENVELOPE_FIELDS = ("type", "event", "time", "operation_id", "operation", "environment", "namespace")

logger = logging.getLogger("envspec.report.redis")


class EnvelopeLike(Protocol):
    """What the sink reads of an event envelope (envspec.events.Envelope has these)."""

    @property
    def operation_id(self) -> str: ...
    @property
    def operation(self) -> str: ...
    @property
    def environment(self) -> str | None: ...
    @property
    def namespace(self) -> str | None: ...
    @property
    def time(self) -> datetime: ...
    @property
    def event(self) -> object: ...


E = TypeVar("E", bound=EnvelopeLike)


def stream_names(prefix: str) -> tuple[str, str]:
    """(`<prefix>:status`, `<prefix>:results`)."""
    return f"{prefix}:status", f"{prefix}:results"


def status_entry(envelope: EnvelopeLike, status: str, fields: Mapping[str, object]) -> dict[str, str]:
    """A `<prefix>:status` entry: flat fields, non-string values JSON-encoded, nulls left out.

    `type` (the status type), `time` (RFC 3339 UTC, ms), `operation_id`, `operation`,
    `environment`, `namespace` come from the envelope and always win; `event` and the
    event's own fields come from `fields`.
    """
    entry = flat_fields(fields)
    entry.update(
        flat_fields(
            {
                "type": status,
                "time": format_instant_ms(envelope.time),
                "operation_id": envelope.operation_id,
                "operation": envelope.operation,
                "environment": envelope.environment,
                "namespace": envelope.namespace,
            }
        )
    )
    return entry


@dataclass
class SinkStats:
    """What happened to the entries, for tests, benchmarks and `--verbose` output."""

    queued: int = 0  # accepted by emit/publish_result
    sent: int = 0  # XADDed
    dropped: int = 0  # dropped: buffer full, refused by Redis, or not flushed by close
    failures: int = 0  # failed flush attempts

    @property
    def pending(self) -> int:
        return self.queued - self.sent - self.dropped


class RedisStreamSink(Generic[E]):
    """Publishes status entries and results to Redis Streams in the background.

    Generic over the envelope type, so that the injected functions keep their own
    signatures: `RedisStreamSink[Envelope](url, status_type=..., to_fields=envelope_to_dict)`.
    """

    def __init__(
        self,
        url: str,
        *,
        status_type: Callable[[E], str | None],
        to_fields: Callable[[E], Mapping[str, object]],
        result_of: Callable[[E], OperationResult | None] | None = None,
        stream_prefix: str = DEFAULT_STREAM_PREFIX,
        maxlen: int = DEFAULT_MAXLEN,
        buffer_size: int = DEFAULT_BUFFER,
        connect_timeout: float = CONNECT_TIMEOUT,
        socket_timeout: float = SOCKET_TIMEOUT,
        flush_timeout: float = FLUSH_TIMEOUT,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url
        self.masked_url = mask_url(url)
        self.status_stream, self.results_stream = stream_names(stream_prefix)
        self.maxlen = maxlen
        self.flush_timeout = flush_timeout
        self.stats = SinkStats()
        self.warned = False
        self._status_type = status_type
        self._to_fields = to_fields
        self._result_of = result_of
        self._connect_timeout = connect_timeout
        self._socket_timeout = socket_timeout
        self._on_warning = on_warning or logger.warning
        self._buffer_size = buffer_size
        # Envelopes are formatted by the flusher, not by `emit`, to keep `emit` O(1).
        self._status: deque[tuple[E, str] | dict[str, str]] = deque()
        self._results: deque[OperationResult] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._close_requested = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: aioredis.Redis | None = None

    # --- the Sink interface -----------------------------------------------------------------

    async def start(self) -> None:
        """Start the flusher; never waits for Redis (connecting happens in the background)."""
        if self._task is not None:
            return
        try:
            self._client = aioredis.Redis.from_url(
                self.url,
                socket_connect_timeout=self._connect_timeout,
                socket_timeout=self._socket_timeout,
                # Our own retry loop, with backoff and one warning, replaces redis-py's.
                retry=Retry(NoBackoff(), 0),
                decode_responses=False,
            )
        except (ValueError, RedisError) as exc:
            self._warn(f"not usable ({self._masked(exc)})")
            return
        self._task = asyncio.create_task(self._flush_forever(), name="envspec-redis-sink")

    def emit(self, envelope: E) -> None:
        """Queue the envelope if it is a phase transition (and its result, if it ends the operation)."""
        try:
            status = self._status_type(envelope)
            result = self._result_of(envelope) if self._result_of is not None else None
        except Exception as exc:  # a mapping bug must not break the operation
            self.stats.queued += 1
            self.stats.dropped += 1
            self._warn(f"could not map an event ({type(exc).__name__}: {exc})")
            return
        if status is not None:
            self._queue_status((envelope, status))
        if result is not None:
            self.publish_result(result)

    def publish_result(self, result: OperationResult) -> None:
        """Queue an operation's final record for `<prefix>:results`."""
        self.stats.queued += 1
        if len(self._results) >= RESULT_BUFFER:
            self._results.popleft()
            self.stats.dropped += 1
        self._results.append(result)
        self._wake.set()

    async def close(self) -> None:
        """Flush what is buffered for at most `flush_timeout` seconds, then disconnect."""
        self._closing = True
        self._close_requested.set()
        self._wake.set()
        task = self._task
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), self.flush_timeout)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        left = self.stats.pending
        if left > 0:
            self.stats.dropped += left
            self._status.clear()
            self._results.clear()
            self._warn(f"{left} entr{'y' if left == 1 else 'ies'} not delivered within {self.flush_timeout:g}s")
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.aclose(), self._socket_timeout)
            self._client = None

    # --- internals ----------------------------------------------------------------------------

    def _queue_status(self, item: tuple[E, str]) -> None:
        self.stats.queued += 1
        if len(self._status) >= self._buffer_size:
            self._status.popleft()
            self.stats.dropped += 1
        self._status.append(item)
        self._wake.set()

    async def _flush_forever(self) -> None:
        delay = RETRY_FIRST
        while True:
            if not (self._status or self._results):
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            results = [self._results.popleft() for _ in range(min(len(self._results), BATCH))]
            entries = self._take_status(BATCH - len(results))
            closing = self._closing
            try:
                await self._send(results, entries)
            except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
                # Not delivered: back to the front of the buffers, in order, and try again later.
                self._results.extendleft(reversed(results))
                self._status.extendleft(reversed(entries))
                self._trim()
                self.stats.failures += 1
                self._warn(f"unreachable ({self._masked(exc)}); the operation goes on without reporting")
                if closing:
                    return  # one attempt after `close` began: a Redis that is down costs no more
                # Back off, but wake at once for `close` (an emit does not shorten the wait).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._close_requested.wait(), delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            except RedisError as exc:
                # Redis refused the entries (a key of another type, say): retrying cannot help.
                self.stats.dropped += len(results) + len(entries)
                self.stats.failures += 1
                self._warn(f"refused the entries ({self._masked(exc)})")
                continue
            self.stats.sent += len(results) + len(entries)
            delay = RETRY_FIRST

    def _take_status(self, count: int) -> list[dict[str, str]]:
        """Up to `count` status entries, formatted (an envelope that cannot be formatted is dropped)."""
        entries: list[dict[str, str]] = []
        while self._status and len(entries) < count:
            item = self._status.popleft()
            if isinstance(item, dict):
                entries.append(item)
                continue
            envelope, status = item
            try:
                entries.append(status_entry(envelope, status, self._to_fields(envelope)))
            except Exception as exc:  # a formatting bug must not stop reporting
                self.stats.dropped += 1
                self._warn(f"could not format an event ({type(exc).__name__}: {exc})")
        return entries

    async def _send(self, results: list[OperationResult], entries: list[dict[str, str]]) -> None:
        assert self._client is not None
        pipe = self._client.pipeline(transaction=False)
        for result in results:
            pipe.xadd(self.results_stream, result_fields(result), maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
        for entry in entries:
            pipe.xadd(self.status_stream, entry, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
        await pipe.execute()

    def _trim(self) -> None:
        while len(self._status) > self._buffer_size:
            self._status.popleft()
            self.stats.dropped += 1

    def _masked(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        return mask_text(text, self.url)

    def _warn(self, what: str) -> None:
        """The one warning of this sink's life; later problems are only counted."""
        if self.warned:
            return
        self.warned = True
        self._on_warning(f"warning: Redis reporting to {self.masked_url}: {what}")
