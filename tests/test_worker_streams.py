"""The stream consumer core against a real redis-server: pending, reclaim, heartbeat, dead letters,
per-environment serialisation, outages and stopping."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from envspec.worker.streams import ConsumerConfig, ConsumerError, Result, StreamConsumer, StreamMessage
from tests.redis_fixtures import RedisFactory, stream_entries

pytestmark = pytest.mark.redis

PREFIX = "t:k8s"
JOBS, RESULTS, DEAD = f"{PREFIX}:jobs", f"{PREFIX}:results", f"{PREFIX}:dead"
GROUP = "envspec"


def config(url: str, consumer: str = "w1", **options: Any) -> ConsumerConfig:
    defaults: dict[str, Any] = {"block": 0.2, "grace": 10.0, "claim_idle": 60.0, "concurrency": 4}
    return ConsumerConfig(url=url, stream_prefix=PREFIX, group=GROUP, consumer=consumer, **{**defaults, **options})


@dataclass
class Recorder:
    """A trivial handler: records each call; a message with `data` that is not JSON is an error result."""

    calls: list[tuple[str, str, int]] = field(default_factory=list)  # (consumer, job, deliveries)
    delay: float = 0.0
    consumer: str = ""

    async def __call__(self, message: StreamMessage) -> Result:
        job = message.fields.get("job", "?")
        self.calls.append((self.consumer, job, message.deliveries))
        try:
            json.loads(message.fields["data"]) if "data" in message.fields else None
        except ValueError as exc:
            reason = f"data: not valid JSON: {exc}"
            return Result(fields={"job": job, "status": "error", "error": reason}, dead_letter=reason)
        if self.delay:
            await asyncio.sleep(self.delay)
        return Result(fields={"job": job, "status": "success", "by": self.consumer})


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), 120))


@contextlib.asynccontextmanager
async def serving(consumer: StreamConsumer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(consumer.run())
    try:
        yield task
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 60)


async def until(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.02)


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def add_jobs(url: str, *jobs: str, **extra: str) -> list[str]:
    with client(url) as c:
        return [c.xadd(JOBS, {"job": job, **extra}) for job in jobs]


def results(url: str) -> list[dict[str, str]]:
    with client(url) as c:
        reply: Any = c.xrange(RESULTS)
    return [dict(fields) for _, fields in reply]


def pending_count(url: str) -> int:
    with client(url) as c:
        return int(c.xpending(JOBS, GROUP)["pending"])


def ghost_reads(url: str, count: int, consumer: str = "ghost") -> list[str]:
    """A consumer that reads entries and dies without acknowledging them."""
    with client(url) as c:
        c.xgroup_create(JOBS, GROUP, id="0", mkstream=True)
        reply = c.xreadgroup(GROUP, consumer, {JOBS: ">"}, count=count)
        return [entry_id for _, entries in reply for entry_id, _ in entries]


def test_serves_entries_written_before_any_worker_result_before_ack(redis_url: str) -> None:
    add_jobs(redis_url, "j1", "j2", "j3")  # the stream exists, the group does not yet
    handler = Recorder()
    consumer = StreamConsumer(config(redis_url), handler)

    async def scenario() -> None:
        async with serving(consumer):
            await until(lambda: consumer.stats.acknowledged == 3)

    run(scenario)
    assert sorted(job for _, job, _ in handler.calls) == ["j1", "j2", "j3"]
    assert sorted(r["job"] for r in results(redis_url)) == ["j1", "j2", "j3"]
    assert pending_count(redis_url) == 0


def test_creates_the_stream_and_group_when_missing(redis_url: str) -> None:
    consumer = StreamConsumer(config(redis_url), Recorder())

    async def scenario() -> None:
        async with serving(consumer):
            await until(lambda: client(redis_url).exists(JOBS) == 1)
            add_jobs(redis_url, "late")
            await until(lambda: consumer.stats.acknowledged == 1)

    run(scenario)
    assert [g["name"] for g in client(redis_url).xinfo_groups(JOBS)] == [GROUP]


def test_own_pending_entries_are_drained_first(redis_url: str) -> None:
    add_jobs(redis_url, "p1", "p2")
    ghost_reads(redis_url, 2, consumer="w1")  # w1 read them and crashed
    add_jobs(redis_url, "n1")
    handler = Recorder()
    consumer = StreamConsumer(config(redis_url, concurrency=1), handler)

    async def scenario() -> None:
        async with serving(consumer):
            await until(lambda: consumer.stats.acknowledged == 3)

    run(scenario)
    assert [(job, deliveries) for _, job, deliveries in handler.calls] == [("p1", 2), ("p2", 2), ("n1", 1)]
    assert consumer.stats.claimed == 0


def test_entries_of_a_dead_consumer_are_reclaimed_and_completed(redis_url: str) -> None:
    add_jobs(redis_url, *(f"g{i}" for i in range(10)))
    ghost_reads(redis_url, 10)
    handler = Recorder()
    consumer = StreamConsumer(
        config(redis_url, concurrency=3, claim_idle=0.3, claim_interval=0.1, heartbeat_interval=0.1), handler
    )

    async def scenario() -> None:
        async with serving(consumer):
            await until(lambda: consumer.stats.acknowledged == 10)

    run(scenario)
    assert sorted(job for _, job, _ in handler.calls) == sorted(f"g{i}" for i in range(10))
    assert {deliveries for _, _, deliveries in handler.calls} == {2}
    assert consumer.stats.claimed == 10
    assert pending_count(redis_url) == 0


@pytest.mark.parametrize("heartbeat", [True, False], ids=["heartbeat", "no-heartbeat"])
def test_a_job_longer_than_claim_idle_is_not_reclaimed_while_its_worker_lives(redis_url: str, heartbeat: bool) -> None:
    claim_idle = 1.0
    taken_over = asyncio.Event()
    runs: list[str] = []

    def make(name: str) -> Callable[[StreamMessage], Awaitable[Result]]:
        async def handler(message: StreamMessage) -> Result:
            runs.append(name)
            if name == "b":
                taken_over.set()
            else:
                # Four times claim_idle, or until the other worker took the entry over.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(taken_over.wait(), claim_idle * 4)
            return Result(fields={"job": message.fields["job"], "by": name})

        return handler

    first = StreamConsumer(
        config(redis_url, "a", claim_idle=claim_idle, heartbeat_interval=0.1 if heartbeat else 3600), make("a")
    )
    second = StreamConsumer(config(redis_url, "b", claim_idle=claim_idle, claim_interval=0.1), make("b"))

    async def scenario() -> None:
        async with serving(first):
            await until(lambda: client(redis_url).exists(JOBS) == 1)
            add_jobs(redis_url, "long")
            await until(lambda: runs == ["a"])
            async with serving(second):
                await until(lambda: len(results(redis_url)) == (1 if heartbeat else 2))
                await until(lambda: not first.in_flight)

    run(scenario)
    if heartbeat:
        assert runs == ["a"]  # never taken over
        assert second.stats.claimed == 0
        assert first.stats.heartbeats >= 1 and first.stats.lost == 0
        assert first.stats.acknowledged == 1
        assert [r["by"] for r in results(redis_url)] == ["a"]
    else:
        # The control: without the heartbeat, the idle entry is taken over and run twice.
        assert runs == ["a", "b"]
        assert sorted(r["by"] for r in results(redis_url)) == ["a", "b"]
    assert pending_count(redis_url) == 0


def test_after_max_deliveries_the_entry_is_dead_lettered_not_run(redis_url: str) -> None:
    [entry_id] = add_jobs(redis_url, "poison", data='{"operation": "create"}')
    ghost_reads(redis_url, 1)
    with client(redis_url) as c:
        for _ in range(2):  # two more deliveries (each XCLAIM without JUSTID counts one): 3 in all
            c.xclaim(JOBS, GROUP, "ghost", 0, [entry_id])
    handler = Recorder()

    def dead_result(message: StreamMessage, reason: str) -> dict[str, str]:
        return {"job": message.fields["job"], "status": "error", "error": reason}

    consumer = StreamConsumer(
        config(redis_url, claim_idle=0.2, claim_interval=0.1, max_deliveries=3), handler, dead_letter_result=dead_result
    )

    async def scenario() -> None:
        async with serving(consumer):
            await until(lambda: consumer.stats.dead_lettered == 1)

    run(scenario)
    assert handler.calls == []
    reason = "delivered 4 times without being acknowledged (at most 3)"
    [dead] = stream_entries(redis_url, DEAD)
    assert dead.pop("dead_letter_time").endswith("Z")
    assert dead == {
        "job": "poison",
        "data": '{"operation": "create"}',
        "dead_letter_reason": reason,
        "dead_letter_id": entry_id,
        "dead_letter_deliveries": "4",
        "dead_letter_consumer": "w1",
    }
    assert results(redis_url) == [{"job": "poison", "status": "error", "error": reason}]
    assert pending_count(redis_url) == 0


def test_a_handler_that_keeps_failing_is_retried_then_dead_lettered(redis_url: str) -> None:
    calls: list[int] = []

    async def failing(message: StreamMessage) -> Result:
        calls.append(message.deliveries)
        raise RuntimeError("boom")

    consumer = StreamConsumer(config(redis_url, claim_idle=0.2, claim_interval=0.1, max_deliveries=3), failing)

    async def scenario() -> None:
        async with serving(consumer):
            await until(lambda: client(redis_url).exists(JOBS) == 1)
            add_jobs(redis_url, "flaky")
            await until(lambda: consumer.stats.dead_lettered == 1)

    run(scenario)
    assert calls == [1, 2, 3]
    assert consumer.stats.left_pending == 3
    assert client(redis_url).xlen(DEAD) == 1
    assert pending_count(redis_url) == 0


def test_a_retry_result_leaves_the_entry_pending_for_a_later_delivery(redis_url: str) -> None:
    calls: list[int] = []

    async def flaky(message: StreamMessage) -> Result:
        calls.append(message.deliveries)
        return Result(retry=True) if message.deliveries == 1 else Result(fields={"ok": "yes"})

    consumer = StreamConsumer(config(redis_url, claim_idle=0.2, claim_interval=0.1), flaky)

    async def scenario() -> None:
        async with serving(consumer):
            await until(lambda: client(redis_url).exists(JOBS) == 1)
            add_jobs(redis_url, "again")
            await until(lambda: consumer.stats.acknowledged == 1)

    run(scenario)
    assert calls == [1, 2]
    assert results(redis_url) == [{"ok": "yes"}]


def test_malformed_entries_take_the_error_path_and_the_worker_goes_on(redis_url: str) -> None:
    with client(redis_url) as c:
        c.xadd(JOBS, {"job": "bad", "data": "{not json"})
    with redis.Redis.from_url(redis_url) as raw:
        raw.xadd(JOBS, {b"job": b"latin1-\xe9", b"data": b"\xff\xfe"})
    add_jobs(redis_url, "good", data='{"operation": "status"}')
    handler = Recorder()
    consumer = StreamConsumer(config(redis_url, concurrency=1), handler)

    async def scenario() -> None:
        async with serving(consumer):
            await until(lambda: consumer.stats.acknowledged == 3)

    run(scenario)
    by_job = {r["job"]: r for r in results(redis_url)}
    assert by_job["bad"]["status"] == "error" and "not valid JSON" in by_job["bad"]["error"]
    assert by_job["latin1-\ufffd"]["status"] == "error"
    assert by_job["good"]["status"] == "success"
    dead = stream_entries(redis_url, DEAD)
    assert [d["job"] for d in dead] == ["bad", "latin1-\ufffd"]
    assert all(d["dead_letter_reason"].startswith("data: not valid JSON") for d in dead)
    assert pending_count(redis_url) == 0


def test_two_requests_for_one_environment_never_run_at_once_across_workers(redis_url: str) -> None:
    active: dict[str, int] = {"a": 0, "b": 0}
    most: dict[str, int] = {"a": 0, "b": 0}
    overlapped = asyncio.Event()
    order: list[str] = []

    def make(name: str) -> Callable[[StreamMessage], Awaitable[Result]]:
        async def handler(message: StreamMessage) -> Result:
            env = message.fields["env"]
            active[env] += 1
            most[env] = max(most[env], active[env])
            order.append(message.fields["job"])
            if active["a"] and active["b"]:
                overlapped.set()
            # Give a second job for the same environment every chance to start meanwhile.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(overlapped.wait(), 2.0)
            await asyncio.sleep(0.1)
            active[env] -= 1
            return Result(fields={"job": message.fields["job"], "by": name})

        return handler

    def environment(message: StreamMessage) -> str:
        return message.fields["env"]

    workers = [
        StreamConsumer(config(redis_url, name, concurrency=4, lock_ttl=5.0), make(name), lock_key=environment)
        for name in ("w1", "w2")
    ]

    async def scenario() -> None:
        async with serving(workers[0]), serving(workers[1]):
            await until(lambda: client(redis_url).exists(JOBS) == 1)
            with client(redis_url) as c:
                for i in range(4):
                    for env in ("a", "b"):
                        c.xadd(JOBS, {"job": f"{env}{i}", "env": env})
            await until(lambda: sum(w.stats.acknowledged for w in workers) == 8)

    run(scenario)
    assert most == {"a": 1, "b": 1}
    assert overlapped.is_set()  # different environments did run at the same time
    assert len({r["by"] for r in results(redis_url)}) == 2  # both workers served
    assert client(redis_url).keys(f"{PREFIX}:lock:*") == []  # released


def test_within_one_worker_one_environment_keeps_the_stream_order(redis_url: str) -> None:
    handler = Recorder(delay=0.05)
    consumer = StreamConsumer(config(redis_url, concurrency=4), handler, lock_key=lambda m: "same")

    async def scenario() -> None:
        async with serving(consumer):
            await until(lambda: client(redis_url).exists(JOBS) == 1)
            add_jobs(redis_url, *(f"j{i}" for i in range(6)))
            await until(lambda: consumer.stats.acknowledged == 6)

    run(scenario)
    assert [job for _, job, _ in handler.calls] == [f"j{i}" for i in range(6)]


def test_redis_restarted_under_a_running_consumer_nothing_lost_nothing_twice(redis_factory: RedisFactory) -> None:
    server = redis_factory(persistent=True)
    url = server.url
    release = asyncio.Event()
    calls: list[str] = []

    async def handler(message: StreamMessage) -> Result:
        job = message.fields["job"]
        calls.append(job)
        if job == "during":
            await release.wait()
        return Result(fields={"job": job})

    consumer = StreamConsumer(config(url, block=0.5, backoff_max=0.5), handler)

    async def scenario() -> None:
        async with serving(consumer):
            await until(lambda: server.client().exists(JOBS) == 1)
            add_jobs(url, "before")
            await until(lambda: consumer.stats.acknowledged == 1)
            add_jobs(url, "during")
            await until(lambda: "during" in calls)
            server.stop()
            release.set()  # the job ends while Redis is down: its result and XACK must wait
            await asyncio.sleep(1.0)
            server.start()
            await until(lambda: consumer.stats.acknowledged == 2)
            add_jobs(url, "after")
            await until(lambda: consumer.stats.acknowledged == 3)

    run(scenario)
    assert calls == ["before", "during", "after"]
    assert [r["job"] for r in results(url)] == ["before", "during", "after"]
    assert pending_count(url) == 0
    assert consumer.stats.outages >= 1


def test_stop_finishes_in_flight_jobs_then_returns(redis_url: str) -> None:
    handler = Recorder(delay=1.0)
    consumer = StreamConsumer(config(redis_url), handler)

    async def scenario() -> None:
        task = asyncio.create_task(consumer.run())
        await until(lambda: client(redis_url).exists(JOBS) == 1)
        add_jobs(redis_url, "j1")
        await until(lambda: len(handler.calls) == 1)
        consumer.stop()
        await asyncio.sleep(0.2)  # let the loop act on it (add_jobs below blocks the loop)
        add_jobs(redis_url, "j2")  # not taken any more
        await asyncio.wait_for(task, 30)

    run(scenario)
    assert [job for _, job, _ in handler.calls] == ["j1"]
    assert [r["job"] for r in results(redis_url)] == ["j1"]
    with client(redis_url) as c:
        assert c.xpending(JOBS, GROUP)["pending"] == 0
        # j2 was never delivered: the next worker reads it with `>`.
        assert c.xinfo_groups(JOBS)[0]["lag"] == 1


def test_after_the_grace_period_in_flight_jobs_are_left_pending(redis_url: str) -> None:
    async def forever(message: StreamMessage) -> Result:
        await asyncio.Event().wait()
        return Result()

    consumer = StreamConsumer(config(redis_url, grace=0.5), forever, lock_key=lambda m: "env")

    async def scenario() -> None:
        task = asyncio.create_task(consumer.run())
        await until(lambda: client(redis_url).exists(JOBS) == 1)
        add_jobs(redis_url, "stuck")
        await until(lambda: consumer.stats.started == 1)
        consumer.stop()
        await asyncio.wait_for(task, 30)

    run(scenario)
    assert consumer.stats.left_pending == 1
    with client(redis_url) as c:
        assert c.xpending(JOBS, GROUP)["consumers"] == [{"name": "w1", "pending": 1}]
        assert c.keys(f"{PREFIX}:lock:*") == []  # the lock was released on the way out
        assert c.xlen(RESULTS) == 0


def test_stop_while_waiting_for_an_environment_lock_leaves_the_entry_pending(redis_url: str) -> None:
    with client(redis_url) as c:
        c.set(f"{PREFIX}:lock:env", "someone-else", px=60_000)
    handler = Recorder()
    consumer = StreamConsumer(config(redis_url), handler, lock_key=lambda m: "env")

    async def scenario() -> None:
        task = asyncio.create_task(consumer.run())
        await until(lambda: client(redis_url).exists(JOBS) == 1)
        add_jobs(redis_url, "waits")
        await until(lambda: consumer.stats.started == 1)
        await asyncio.sleep(0.3)
        consumer.stop()
        await asyncio.wait_for(task, 30)

    run(scenario)
    assert handler.calls == []
    assert pending_count(redis_url) == 1
    assert client(redis_url).get(f"{PREFIX}:lock:env") == "someone-else"  # not ours: untouched


def test_a_block_longer_than_redis_py_default_socket_timeout_does_not_fail(redis_url: str) -> None:
    # redis-py 8's default socket_timeout is 5 s: a 6 s BLOCK works only because the
    # consumer sets its socket timeout above the block time.
    handler = Recorder()
    consumer = StreamConsumer(config(redis_url, block=6.0), handler)

    async def scenario() -> None:
        async with serving(consumer):
            await until(lambda: client(redis_url).exists(JOBS) == 1)
            await asyncio.sleep(7.0)  # one whole blocking read with nothing to read
            add_jobs(redis_url, "after-a-long-wait")
            await until(lambda: consumer.stats.acknowledged == 1)

    run(scenario)
    assert consumer.stats.outages == 0


def test_refused_credentials_stop_the_consumer_with_a_clear_masked_error(redis_factory: RedisFactory) -> None:
    server = redis_factory(password="the-right-one")
    consumer = StreamConsumer(config(f"redis://:wrong-secret@127.0.0.1:{server.port}/0"), Recorder())
    with pytest.raises(ConsumerError) as caught:
        run(consumer.run)
    assert f"redis://:****@127.0.0.1:{server.port}/0 refused the credentials" in caught.value.message
    assert "wrong-secret" not in caught.value.message


def test_an_outcome_redis_refuses_leaves_the_entry_pending_and_the_worker_serving(redis_url: str) -> None:
    with client(redis_url) as c:
        c.set(RESULTS, "not a stream")
    consumer = StreamConsumer(config(redis_url, concurrency=1), Recorder())

    async def scenario() -> None:
        async with serving(consumer):
            await until(lambda: client(redis_url).exists(JOBS) == 1)
            add_jobs(redis_url, "j1")
            await until(lambda: consumer.stats.left_pending == 1)
            client(redis_url).delete(RESULTS)
            add_jobs(redis_url, "j2")
            await until(lambda: consumer.stats.acknowledged == 1)

    run(scenario)
    assert [r["job"] for r in results(redis_url)] == ["j2"]
    assert pending_count(redis_url) == 1  # j1, for a later retry


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("concurrency", 0, "concurrency must be at least 1"),
        ("max_deliveries", 0, "max_deliveries must be at least 1"),
        ("claim_idle", 0, "claim_idle must be more than 0 seconds"),
        ("grace", -1, "grace must not be negative"),
    ],
)
def test_config_refuses_values_that_cannot_work(option: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        options: dict[str, Any] = {option: value}
        config("redis://127.0.0.1:1/0", **options)


def test_socket_timeout_is_above_the_block_time() -> None:
    for block in (0.2, 2.0, 6.0, 30.0):
        assert config("redis://h/0", block=block).socket_timeout > block


def test_an_entry_taken_over_while_it_ran_is_not_acknowledged_by_its_first_worker(redis_url: str) -> None:
    release = asyncio.Event()

    async def handler(message: StreamMessage) -> Result:
        await release.wait()
        return Result(fields={"job": message.fields["job"]})

    consumer = StreamConsumer(config(redis_url, heartbeat_interval=0.1), handler)

    async def scenario() -> None:
        async with serving(consumer):
            await until(lambda: client(redis_url).exists(JOBS) == 1)
            [entry_id] = add_jobs(redis_url, "contested")
            await until(lambda: consumer.stats.started == 1)
            client(redis_url).xclaim(JOBS, GROUP, "other", 0, [entry_id])  # taken over (say, after a partition)
            await until(lambda: consumer.stats.lost == 1)  # the heartbeat noticed, and did not steal it back
            release.set()
            await until(lambda: consumer.stats.not_acknowledged == 1)  # ... nor did the XACK

    run(scenario)
    assert consumer.stats.acknowledged == 0
    assert client(redis_url).xpending(JOBS, GROUP)["consumers"] == [{"name": "other", "pending": 1}]
    assert [r["job"] for r in results(redis_url)] == ["contested"]


def test_a_jobs_key_that_is_not_a_stream_stops_the_consumer_with_a_clear_error(redis_url: str) -> None:
    with client(redis_url) as c:
        c.set(JOBS, "oops")
    consumer = StreamConsumer(config(redis_url), Recorder())
    with pytest.raises(ConsumerError, match="WRONGTYPE"):
        run(consumer.run)


def test_the_results_and_dead_letter_streams_are_capped_at_maxlen(redis_url: str) -> None:
    total, cap = 300, 20
    add_jobs(redis_url, *(f"ok{index}" for index in range(total)))
    add_jobs(redis_url, *(f"bad{index}" for index in range(total)), data="{not json")
    consumer = StreamConsumer(config(redis_url, maxlen=cap, concurrency=16), Recorder())

    async def scenario() -> None:
        async with serving(consumer):
            await until(lambda: consumer.stats.acknowledged == 2 * total)

    run(scenario)
    with client(redis_url) as c:
        lengths = (c.xlen(RESULTS), c.xlen(DEAD))
    # `MAXLEN ~` trims whole macro nodes (100 entries by default): at least `cap` kept, far fewer than written.
    assert all(cap <= length <= cap + 100 for length in lengths), lengths
