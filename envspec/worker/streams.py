"""Serve a Redis stream through a consumer group: at least once, never two at a time per environment.

`StreamConsumer` is generic: it hands each entry of `<prefix>:jobs` to a handler
`async (StreamMessage) -> Result` and does everything around it.

- The group is created with `MKSTREAM` if missing (from ID `0`: requests written before
  the first worker started are served). On start the consumer first drains its own
  pending entries (`XREADGROUP ... 0`), then reads new ones (`>`), never more than it
  has free slots for (`--concurrency`).
- Every `claim_interval` it takes over entries another consumer left idle for longer
  than `claim_idle` (`XAUTOCLAIM`, looped until the cursor is `0-0` or its slots are
  full, so one worker does not hoard what others could run).
- A heartbeat re-claims its own in-flight entries every `heartbeat_interval`
  (`XCLAIM ... JUSTID`, which resets their idle time without counting a delivery), so
  a job that runs longer than `claim_idle` is never taken over while its worker lives.
  The re-claim is a Lua script that first checks the entry is still this consumer's:
  a heartbeat never steals back an entry another worker took over.
- An entry delivered more than `max_deliveries` times is not run again: it is copied to
  `<prefix>:dead` with the reason (and an error result, if `dead_letter_result` gives
  one). A handler may also ask for a dead letter (a malformed request).
- The result and the dead letter are written first (one MULTI/EXEC), and only when
  that succeeded is the entry acknowledged: a crash in between loses nothing (the entry
  is redelivered; its result may then appear twice, never zero times). The XACK is a
  script that acknowledges only an entry this consumer still owns, so a worker never
  acknowledges an entry another one took over and is running.
- Entries for one environment (`lock_key`) never run at the same time, across workers
  too: a short-lived Redis lock, `SET <prefix>:lock:<key> <token> NX PX <ttl>`, renewed
  while the job runs and released by a compare-and-delete script. Chosen over the
  namespace as the arbiter because it also covers requests for which no namespace
  exists yet (create) or any more (delete), costs no write to the Kubernetes API, and
  expires by itself when its worker dies. Within one worker an asyncio lock per key
  keeps the stream's order.
- `stop()`: no new entries are taken; in-flight ones finish, or after `grace` seconds
  are cancelled and left pending for another worker to reclaim.
- A Redis outage or restart: every call is retried with backoff (one log line per
  outage), nothing is acknowledged that was not handled, nothing twice. An entry read
  but never seen (its reply lost in the outage) stays in this consumer's pending list
  and is reclaimed after `claim_idle`.

redis-py applies `socket_timeout` to blocking reads: it is set above the `BLOCK` time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from envspec.errors import EnvspecError
from envspec.meta import format_instant_ms
from envspec.report.redis_url import mask_text, mask_url

logger = logging.getLogger("envspec.worker")

DEFAULT_STREAM_PREFIX = "maestro:streams:k8s"
DEFAULT_GROUP = "envspec"
OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
# Fields added to a dead-letter entry (the original entry's fields are kept as they were).
DEAD_FIELDS = (
    "dead_letter_reason",
    "dead_letter_id",
    "dead_letter_deliveries",
    "dead_letter_consumer",
    "dead_letter_time",
)

# Re-claim the given entries (ARGV[3..]) for consumer ARGV[2] of group ARGV[1] only where
# that consumer still owns them; JUSTID resets the idle time without counting a delivery.
_HEARTBEAT_LUA = """
local kept = {}
for i = 3, #ARGV do
  local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if entry[1] and entry[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept[#kept + 1] = ARGV[i]
  end
end
return kept
"""
# XACK entry ARGV[3] only while consumer ARGV[2] owns it: 1 acknowledged, 0 already
# acknowledged (a retried call whose first reply was lost), -1 another consumer's now.
_ACK_LUA = """
local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not entry[1] then
  return 0
end
if entry[1][2] ~= ARGV[2] then
  return -1
end
return redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
"""
_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def default_consumer_name() -> str:
    """`<hostname>-<pid>`: unique per process, recognisable in `XINFO CONSUMERS`."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class StreamMessage:
    id: str
    fields: dict[str, str]  # as written; bytes that are not UTF-8 are replaced (U+FFFD)
    deliveries: int  # how many times it has been delivered, this time included


@dataclass(frozen=True)
class Result:
    """What to do with a handled message."""

    fields: Mapping[str, str] | None = None  # the `<prefix>:results` entry, written before the XACK
    dead_letter: str | None = None  # a reason: copy the message to `<prefix>:dead` before the XACK
    retry: bool = False  # leave it pending: redelivered after claim_idle (counts toward max_deliveries)


Handler = Callable[[StreamMessage], Awaitable[Result]]
LockKey = Callable[[StreamMessage], str | None]
DeadLetterResult = Callable[[StreamMessage, str], Mapping[str, str] | None]


@dataclass(frozen=True)
class ConsumerConfig:
    url: str
    stream_prefix: str = DEFAULT_STREAM_PREFIX
    group: str = DEFAULT_GROUP
    consumer: str = field(default_factory=default_consumer_name)
    concurrency: int = 4
    claim_idle: float = 60.0  # seconds an entry must be idle before another consumer takes it
    claim_interval: float | None = None  # default: claim_idle / 2
    heartbeat_interval: float | None = None  # default: claim_idle / 3
    max_deliveries: int = 3
    block: float = 2.0  # seconds one XREADGROUP waits for new entries (also how fast stop() is noticed)
    grace: float = 30.0  # seconds stop() lets in-flight jobs finish
    lock_ttl: float = 30.0  # seconds an environment lock lives without renewal
    maxlen: int = 10_000  # `MAXLEN ~` of the results and dead-letter streams
    connect_timeout: float = 5.0
    backoff_max: float = 10.0

    def __post_init__(self) -> None:
        for name in ("concurrency", "max_deliveries", "maxlen"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("claim_idle", "block", "lock_ttl", "connect_timeout", "backoff_max"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be more than 0 seconds")
        if self.grace < 0:
            raise ValueError("grace must not be negative")

    @property
    def jobs_stream(self) -> str:
        return f"{self.stream_prefix}:jobs"

    @property
    def results_stream(self) -> str:
        return f"{self.stream_prefix}:results"

    @property
    def dead_stream(self) -> str:
        return f"{self.stream_prefix}:dead"

    def lock_name(self, key: str) -> str:
        return f"{self.stream_prefix}:lock:{key}"

    @property
    def claim_every(self) -> float:
        return self.claim_interval if self.claim_interval is not None else self.claim_idle / 2

    @property
    def heartbeat_every(self) -> float:
        return self.heartbeat_interval if self.heartbeat_interval is not None else self.claim_idle / 3

    @property
    def socket_timeout(self) -> float:
        # Above the BLOCK time, or every blocking read would time out (redis-py >= 8).
        return self.block + max(5.0, self.block)


@dataclass
class ConsumerStats:
    started: int = 0  # handler calls begun
    acknowledged: int = 0
    dead_lettered: int = 0
    claimed: int = 0  # entries taken over from idle consumers (or from ourselves after a lost reply)
    left_pending: int = 0  # handler failed, asked to retry, or was cancelled by stop()
    lost: int = 0  # in-flight entries another consumer took over (heartbeat found them gone)
    not_acknowledged: int = 0  # finished here, but left to the consumer that owns them now
    heartbeats: int = 0
    outages: int = 0
    skipped_deleted: int = 0  # pending entries whose content was trimmed away


class StreamConsumer:
    """Runs `handler` for the entries of `config.jobs_stream` until `stop()`."""

    def __init__(
        self,
        config: ConsumerConfig,
        handler: Handler,
        *,
        lock_key: LockKey | None = None,
        dead_letter_result: DeadLetterResult | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.config = config
        self.handler = handler
        self.lock_key = lock_key
        self.dead_letter_result = dead_letter_result
        self.log = log or logger
        self.stats = ConsumerStats()
        self.masked_url = mask_url(config.url)
        self._client: aioredis.Redis | None = None
        self._running: dict[str, asyncio.Task[None]] = {}
        self._lost: set[str] = set()  # running here, but another consumer took them over
        self._stopping = False
        self._changed = asyncio.Event()  # a slot freed, or stop() was called
        self._stop_requested = asyncio.Event()
        self._local_locks: dict[str, asyncio.Lock] = {}
        self._local_waiters: dict[str, int] = {}
        self._outage_since: float | None = None
        self._backoff = 0.1
        self._heartbeat_script: Any = None
        self._ack_script: Any = None
        self._renew_script: Any = None
        self._release_script: Any = None

    # --- public -------------------------------------------------------------------------------

    @property
    def in_flight(self) -> frozenset[str]:
        return frozenset(self._running)

    def stop(self) -> None:
        """Stop taking entries; `run` returns once in-flight ones finished or the grace period passed."""
        self._stopping = True
        self._stop_requested.set()
        self._changed.set()

    async def run(self) -> None:
        self._client = aioredis.Redis.from_url(
            self.config.url,
            socket_connect_timeout=self.config.connect_timeout,
            socket_timeout=self.config.socket_timeout,
            retry=Retry(NoBackoff(), 0),  # our own retry loop, with backoff and outage logging
            decode_responses=False,
        )
        self._heartbeat_script = self._client.register_script(_HEARTBEAT_LUA)
        self._ack_script = self._client.register_script(_ACK_LUA)
        self._renew_script = self._client.register_script(_RENEW_LUA)
        self._release_script = self._client.register_script(_RELEASE_LUA)
        heartbeat = asyncio.create_task(self._heartbeat_forever(), name="envspec-worker-heartbeat")
        try:
            await self._ensure_group()
            await self._read_forever()
        except ResponseError as exc:
            # Not an outage: e.g. the jobs key holds something other than a stream.
            raise ConsumerError(f"Redis at {self.masked_url}: {mask_text(str(exc), self.config.url)}") from None
        finally:
            await self._drain()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.aclose(), 2.0)

    # --- reading ------------------------------------------------------------------------------

    async def _ensure_group(self) -> None:
        while not self._stopping:
            try:
                await self._redis().xgroup_create(self.config.jobs_stream, self.config.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            except OUTAGE_ERRORS as exc:
                await self._outage(exc)
                continue
            self._recovered()
            return

    async def _read_forever(self) -> None:
        pending_cursor: str | None = "0"  # our own pending entries first
        last_claim = -float("inf")
        while not self._stopping:
            free = await self._free_slots()
            if free == 0:
                continue
            try:
                if pending_cursor is not None:
                    entries = await self._read(pending_cursor, free, block=None)
                    if not entries:
                        pending_cursor = None
                        continue
                    pending_cursor = entries[-1][0]
                    counts = await self._delivery_counts([entry_id for entry_id, _ in entries])
                elif time.monotonic() - last_claim >= self.config.claim_every:
                    last_claim = time.monotonic()
                    entries = await self._autoclaim(free)
                    counts = await self._delivery_counts([entry_id for entry_id, _ in entries])
                    self.stats.claimed += len(entries)
                else:
                    entries = await self._read_new(free)
                    counts = {entry_id: 1 for entry_id, _ in entries}
            except OUTAGE_ERRORS as exc:
                await self._outage(exc)
                continue
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    # The stream or the group was deleted (or Redis restarted empty): recreate it.
                    self.log.warning("worker: consumer group %s is gone; creating it again", self.config.group)
                    await self._ensure_group()
                    continue
                raise
            self._recovered()
            for entry_id, fields in entries:
                if entry_id in self._running or entry_id not in counts:
                    continue  # already running here, or no longer ours
                if fields is None:
                    await self._ack_deleted(entry_id)
                    continue
                self._start(StreamMessage(entry_id, fields, counts[entry_id]))

    async def _read_new(self, count: int) -> list[tuple[str, dict[str, str] | None]]:
        """`XREADGROUP ... BLOCK ... >`, given up at once when stop() is called.

        Cancelling drops the connection (redis-py does); an entry Redis delivered just
        then stays in this consumer's pending list and is reclaimed after claim_idle.
        """
        read = asyncio.create_task(self._read(">", count, block=self.config.block))
        stopped = asyncio.create_task(self._stop_requested.wait())
        try:
            await asyncio.wait({read, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not read.done():
                read.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            return await read
        return []

    async def _free_slots(self) -> int:
        while not self._stopping and len(self._running) >= self.config.concurrency:
            self._changed.clear()
            await self._changed.wait()
        return 0 if self._stopping else self.config.concurrency - len(self._running)

    async def _read(self, cursor: str, count: int, *, block: float | None) -> list[tuple[str, dict[str, str] | None]]:
        reply: Any = await self._redis().xreadgroup(
            self.config.group,
            self.config.consumer,
            {self.config.jobs_stream: cursor},
            count=count,
            block=None if block is None else int(block * 1000),
        )
        entries: list[tuple[str, dict[str, str] | None]] = []
        for _stream, items in reply or []:
            for entry_id, fields in items:
                # A pending entry whose content was deleted (trimmed) comes back without fields.
                entries.append((_text(entry_id), _decode(fields) if fields else None))
        return entries

    async def _autoclaim(self, count: int) -> list[tuple[str, dict[str, str] | None]]:
        claimed: list[tuple[str, dict[str, str] | None]] = []
        cursor = "0-0"
        while len(claimed) < count:
            reply = await self._redis().xautoclaim(
                self.config.jobs_stream,
                self.config.group,
                self.config.consumer,
                int(self.config.claim_idle * 1000),
                start_id=cursor,
                count=count - len(claimed),
            )
            cursor = _text(reply[0])
            for entry_id, fields in reply[1]:
                if entry_id is not None:
                    claimed.append((_text(entry_id), _decode(fields) if fields else None))
            # reply[2] (Redis 7): entries deleted from the stream, dropped from the PEL by Redis itself.
            self.stats.skipped_deleted += len(reply[2]) if len(reply) > 2 else 0
            if cursor == "0-0":
                break
        if claimed:
            self.log.info("worker: took over %d idle entr%s", len(claimed), "y" if len(claimed) == 1 else "ies")
        return claimed

    async def _delivery_counts(self, ids: list[str]) -> dict[str, int]:
        """Deliveries of our pending entries among `ids` (an entry not ours any more is absent)."""
        if not ids:
            return {}
        rows: Any = await self._redis().xpending_range(
            self.config.jobs_stream,
            self.config.group,
            min=ids[0],
            max=ids[-1],
            # The range may also hold our in-flight entries: room for all of them.
            count=len(ids) + len(self._running) + 100,
            consumername=self.config.consumer,
        )
        wanted = set(ids)
        return {
            entry_id: int(row["times_delivered"]) for row in rows if (entry_id := _text(row["message_id"])) in wanted
        }

    async def _ack_deleted(self, entry_id: str) -> None:
        self.log.warning("worker: pending entry %s was deleted from the stream before it ran; acknowledged", entry_id)
        self.stats.skipped_deleted += 1
        with contextlib.suppress(*OUTAGE_ERRORS):
            await self._redis().xack(self.config.jobs_stream, self.config.group, entry_id)

    # --- running one message ------------------------------------------------------------------

    def _start(self, message: StreamMessage) -> None:
        self.stats.started += 1
        task = asyncio.create_task(self._process(message), name=f"envspec-job-{message.id}")
        self._running[message.id] = task
        task.add_done_callback(lambda _: self._finished(message.id))

    def _finished(self, entry_id: str) -> None:
        self._running.pop(entry_id, None)
        self._lost.discard(entry_id)
        self._changed.set()

    async def _process(self, message: StreamMessage) -> None:
        try:
            if message.deliveries > self.config.max_deliveries:
                reason = (
                    f"delivered {message.deliveries} times without being acknowledged "
                    f"(at most {self.config.max_deliveries})"
                )
                fields = self.dead_letter_result(message, reason) if self.dead_letter_result else None
                result = Result(fields=fields, dead_letter=reason)
            else:
                key = self.lock_key(message) if self.lock_key is not None else None
                if key is None:
                    result = await self.handler(message)
                else:
                    async with self._environment_lock(key, message):
                        result = await self.handler(message)
        except asyncio.CancelledError:
            self.stats.left_pending += 1
            self.log.warning("worker: %s did not finish within the grace period; left pending", message.id)
            return
        except _Abandoned:
            self.stats.left_pending += 1
            return
        except Exception:
            # A handler bug: leave it pending; it is reclaimed after claim_idle and, if it keeps
            # failing, dead-lettered after max_deliveries.
            self.stats.left_pending += 1
            self.log.exception("worker: handling %s failed; left pending for a retry", message.id)
            return
        if result.retry:
            self.stats.left_pending += 1
            return
        try:
            await self._complete(message, result)
        except Exception as exc:  # the credentials were refused mid-way: the main loop stops too
            self.stats.left_pending += 1
            self.log.error("worker: %s left pending: %s", message.id, exc)

    async def _complete(self, message: StreamMessage, result: Result) -> None:
        """Write the result (and dead letter), and only once that succeeded, XACK; retried through outages.

        Two steps, not one MULTI: Redis does not roll a transaction back when one of its
        commands fails (an XADD to a key of another type), so a MULTI could acknowledge an
        entry whose result was never written.
        """
        written = result.fields is None and result.dead_letter is None
        stop_deadline: float | None = None
        while True:
            try:
                if not written:
                    # Both entries or neither when the connection drops mid-way.
                    pipe = self._redis().pipeline(transaction=True)
                    if result.fields is not None:
                        self._xadd(pipe, self.config.results_stream, result.fields)
                    if result.dead_letter is not None:
                        self._xadd(pipe, self.config.dead_stream, self._dead_fields(message, result.dead_letter))
                    await pipe.execute()
                    written = True
                acknowledged = await self._ack_script(
                    keys=[self.config.jobs_stream], args=[self.config.group, self.config.consumer, message.id]
                )
            except ResponseError as exc:
                # Redis refused the write: leave the entry pending rather than lose it; it is
                # retried after claim_idle and, at worst, dead-lettered.
                self.stats.left_pending += 1
                self.log.error("worker: could not record the outcome of %s: %s", message.id, exc)
                return
            except OUTAGE_ERRORS as exc:
                if self._stopping:
                    stop_deadline = stop_deadline or time.monotonic() + self.config.grace
                    if time.monotonic() > stop_deadline:
                        self.stats.left_pending += 1
                        return
                await self._outage(exc)
                continue
            self._recovered()
            if int(acknowledged) < 0:
                self.stats.not_acknowledged += 1
                self.log.warning("worker: %s is now another consumer's; left for it to acknowledge", message.id)
                return
            self.stats.acknowledged += 1
            if result.dead_letter is not None:
                self.stats.dead_lettered += 1
                self.log.warning("worker: %s dead-lettered: %s", message.id, result.dead_letter)
            return

    def _xadd(self, pipe: Any, stream: str, fields: Mapping[str, str]) -> None:
        pipe.xadd(stream, dict(fields), maxlen=self.config.maxlen, approximate=True)

    def _dead_fields(self, message: StreamMessage, reason: str) -> dict[str, str]:
        fields = {key: value for key, value in message.fields.items() if key not in DEAD_FIELDS}
        fields.update(
            {
                "dead_letter_reason": reason,
                "dead_letter_id": message.id,
                "dead_letter_deliveries": str(message.deliveries),
                "dead_letter_consumer": self.config.consumer,
                "dead_letter_time": format_instant_ms(datetime.now(UTC)),
            }
        )
        return fields

    # --- per-environment serialisation --------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _environment_lock(self, key: str, message: StreamMessage) -> AsyncIterator[None]:
        local = self._local_locks.setdefault(key, asyncio.Lock())
        self._local_waiters[key] = self._local_waiters.get(key, 0) + 1
        try:
            async with local:
                token = f"{self.config.consumer}:{uuid.uuid4().hex}"
                name = self.config.lock_name(key)
                await self._acquire(name, token, message)
                renewal = asyncio.create_task(self._renew_forever(name, token, message))
                try:
                    yield
                finally:
                    renewal.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await renewal
                    await self._release(name, token)
        finally:
            self._local_waiters[key] -= 1
            if self._local_waiters[key] == 0:
                del self._local_waiters[key]
                del self._local_locks[key]

    async def _acquire(self, name: str, token: str, message: StreamMessage) -> None:
        ttl_ms = int(self.config.lock_ttl * 1000)
        wait = 0.05
        logged = False
        while True:
            if self._stopping:
                raise _Abandoned
            try:
                if await self._redis().set(name, token, nx=True, px=ttl_ms):
                    self._recovered()
                    return
            except OUTAGE_ERRORS as exc:
                await self._outage(exc)
                continue
            if not logged:
                self.log.info("worker: %s waits for %s (another job for that environment runs)", message.id, name)
                logged = True
            await asyncio.sleep(wait)
            wait = min(wait * 2, 1.0)

    async def _renew_forever(self, name: str, token: str, message: StreamMessage) -> None:
        ttl_ms = int(self.config.lock_ttl * 1000)
        while True:
            await asyncio.sleep(self.config.lock_ttl / 3)
            try:
                renewed = await self._renew_script(keys=[name], args=[token, ttl_ms])
            except OUTAGE_ERRORS:
                continue  # the main loop logs the outage; the lock lives lock_ttl meanwhile
            if not renewed:
                self.log.warning("worker: lock %s of %s expired while it ran", name, message.id)
                return

    async def _release(self, name: str, token: str) -> None:
        try:
            await asyncio.wait_for(self._release_script(keys=[name], args=[token]), self.config.connect_timeout)
        except (*OUTAGE_ERRORS, RedisError):
            pass  # it expires by itself after lock_ttl

    # --- heartbeat ----------------------------------------------------------------------------

    async def _heartbeat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_every)
            ids = [entry_id for entry_id in self._running if entry_id not in self._lost]
            if not ids:
                continue
            try:
                kept = await self._heartbeat_script(
                    keys=[self.config.jobs_stream], args=[self.config.group, self.config.consumer, *ids]
                )
            except (*OUTAGE_ERRORS, RedisError):
                continue  # next beat; an outage is logged by the main loop
            self.stats.heartbeats += 1
            lost = set(ids) - {_text(entry_id) for entry_id in kept}
            for entry_id in sorted(lost):
                if entry_id in self._running:  # not just finished
                    self._lost.add(entry_id)
                    self.stats.lost += 1
                    self.log.warning("worker: %s was taken over by another consumer while it ran here", entry_id)

    # --- stopping and outages -----------------------------------------------------------------

    async def _drain(self) -> None:
        tasks = list(self._running.values())
        if not tasks:
            return
        self.log.info("worker: waiting up to %gs for %d in-flight job(s)", self.config.grace, len(tasks))
        _done, still = await asyncio.wait(tasks, timeout=self.config.grace)
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still)

    async def _outage(self, exc: BaseException) -> None:
        if isinstance(exc, AuthenticationError):
            # Not an outage: retrying with the same credentials cannot succeed.
            detail = mask_text(str(exc), self.config.url)
            raise ConsumerError(f"Redis at {self.masked_url} refused the credentials: {detail}")
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self.stats.outages += 1
            detail = mask_text(str(exc) or type(exc).__name__, self.config.url)
            self.log.warning("worker: Redis at %s unreachable (%s); retrying", self.masked_url, detail)
        await asyncio.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, self.config.backoff_max)

    def _recovered(self) -> None:
        if self._outage_since is not None:
            self.log.warning(
                "worker: Redis at %s reachable again after %.1fs",
                self.masked_url,
                time.monotonic() - self._outage_since,
            )
            self._outage_since = None
        self._backoff = 0.1

    def _redis(self) -> aioredis.Redis:
        assert self._client is not None
        return self._client


class ConsumerError(EnvspecError):
    """The consumer cannot work at all (Redis refuses its credentials); the message masks the password."""


class _Abandoned(Exception):
    """stop() came while the job waited for its environment's lock: leave it pending."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(fields: Mapping[bytes, bytes]) -> dict[str, str]:
    return {_text_lenient(key): _text_lenient(value) for key, value in fields.items()}


def _text_lenient(value: bytes | str) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
