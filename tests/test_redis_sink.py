"""The Redis Streams sink against a real redis-server: entries, caps, outages, one warning."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from envspec.report.redis_sink import RedisStreamSink
from envspec.report.results import OperationResult
from tests.redis_fixtures import RedisFactory, stream_entries

pytestmark = pytest.mark.redis

PREFIX = "t:streams"
STATUS, RESULTS = f"{PREFIX}:status", f"{PREFIX}:results"


# A stand-in for envspec.events' envelope and events: the sink reads only these attributes.
@dataclass(frozen=True)
class ObjectReady:
    ref: str
    seconds: float
    conditions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObjectProgress:
    ref: str
    message: str


@dataclass(frozen=True)
class Envelope:
    operation_id: str
    operation: str
    environment: str | None
    namespace: str | None
    time: datetime
    event: object


def to_fields(envelope: Envelope) -> dict[str, object]:
    name = type(envelope.event).__name__
    return {"event": name, **dataclasses.asdict(envelope.event)}  # type: ignore[call-overload]


def status_type(envelope: Envelope) -> str | None:
    # Only readiness is a phase transition here; progress is not.
    return "object.ready" if isinstance(envelope.event, ObjectReady) else None


def envelope(event: object, operation_id: str = "op-1") -> Envelope:
    return Envelope(operation_id, "up", "shop", "envspec-shop", datetime(2026, 1, 2, 3, 4, 5, 678000, UTC), event)


def ready(index: int) -> Envelope:
    return envelope(ObjectReady(f"deployment/d{index}", index / 10))


def make_sink(url: str, warnings: list[str], **options: Any) -> RedisStreamSink[Envelope]:
    return RedisStreamSink(
        url,
        status_type=status_type,
        to_fields=to_fields,
        stream_prefix=PREFIX,
        on_warning=warnings.append,
        **options,
    )


def run(function: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(function())  # type: ignore[arg-type]


async def wait_for(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached")
        await asyncio.sleep(0.02)


def test_status_entries_are_flat_with_nested_values_json_and_only_phase_transitions(redis_url: str) -> None:
    warnings: list[str] = []

    async def scenario() -> None:
        sink = make_sink(redis_url, warnings)
        await sink.start()
        sink.emit(envelope(ObjectProgress("deployment/api", "0/1 ready")))
        sink.emit(envelope(ObjectReady("deployment/api", 2.5, ("Available", "Progressing"))))
        sink.emit(Envelope("op-2", "gc", None, None, datetime(2026, 1, 2, tzinfo=UTC), ObjectReady("namespace/x", 0.0)))
        await sink.close()

    run(scenario)
    entries = stream_entries(redis_url, STATUS)
    assert entries == [
        {
            "type": "object.ready",
            "event": "ObjectReady",
            "time": "2026-01-02T03:04:05.678Z",
            "operation_id": "op-1",
            "operation": "up",
            "environment": "shop",
            "namespace": "envspec-shop",
            "ref": "deployment/api",
            "seconds": "2.5",
            "conditions": '["Available","Progressing"]',
        },
        {
            # environment and namespace are null: left out
            "type": "object.ready",
            "event": "ObjectReady",
            "time": "2026-01-02T00:00:00.000Z",
            "operation_id": "op-2",
            "operation": "gc",
            "ref": "namespace/x",
            "seconds": "0.0",
            "conditions": "[]",
        },
    ]
    assert redis.Redis.from_url(redis_url).exists(RESULTS) == 0
    assert warnings == []


def test_result_entry_has_the_original_fields_flat_and_as_json_data(redis_url: str) -> None:
    warnings: list[str] = []
    result = OperationResult(
        job_id="job-1",
        operation="create",
        ok=False,
        execution_id="test-001",
        environment="test-001",
        namespace="quality-fabric-test-001",
        resources_created=("namespace", "postgres"),
        duration_ms=1234,
        error="deployment/app: ImagePullBackOff",
        time=datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
    )

    async def scenario() -> None:
        sink = make_sink(redis_url, warnings)
        await sink.start()
        sink.publish_result(result)
        await sink.close()

    run(scenario)
    [fields] = stream_entries(redis_url, RESULTS)
    record = json.loads(fields.pop("data"))
    assert record == {
        "job_id": "job-1",
        "status": "error",
        "namespace": "quality-fabric-test-001",
        "resources_created": ["namespace", "postgres"],
        "duration_ms": 1234,
        "execution_id": "test-001",
        "operation": "create",
        "environment": "test-001",
        "time": "2026-01-01T12:00:00.000Z",
        "error": "deployment/app: ImagePullBackOff",
    }
    assert fields == {
        key: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for key, value in record.items()
    }


def test_result_of_turns_the_last_envelope_into_a_result(redis_url: str) -> None:
    def result_of(item: Envelope) -> OperationResult | None:
        if isinstance(item.event, ObjectReady) and item.event.ref == "summary":
            return OperationResult(job_id=item.operation_id, operation=item.operation, ok=True)
        return None

    async def scenario() -> None:
        sink = make_sink(redis_url, [], result_of=result_of)
        await sink.start()
        sink.emit(ready(1))
        sink.emit(envelope(ObjectReady("summary", 1.0)))
        await sink.close()

    run(scenario)
    assert len(stream_entries(redis_url, STATUS)) == 2
    [fields] = stream_entries(redis_url, RESULTS)
    assert (fields["job_id"], fields["status"], fields["operation"]) == ("op-1", "success", "up")


def test_every_xadd_caps_its_stream(redis_url: str) -> None:
    total, cap = 1000, 50

    async def scenario() -> None:
        sink = make_sink(redis_url, [], maxlen=cap)
        await sink.start()
        for index in range(total):
            sink.emit(ready(index))
        await sink.close()
        assert sink.stats.sent == total

    run(scenario)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    length = client.xlen(STATUS)
    # `MAXLEN ~` trims whole macro nodes (100 entries by default), so it keeps at least `cap`.
    assert cap <= length <= cap + 100
    # The newest are kept.
    assert stream_entries(redis_url, STATUS, newest_first=True, count=1)[0]["ref"] == f"deployment/d{total - 1}"


def test_a_full_buffer_drops_the_oldest_and_counts_them(redis_url: str) -> None:
    async def scenario() -> None:
        sink = make_sink(redis_url, [], buffer_size=10)
        for index in range(25):  # before start: nothing is flushed yet
            sink.emit(ready(index))
        await sink.start()
        await sink.close()
        assert (sink.stats.sent, sink.stats.dropped) == (10, 15)

    run(scenario)
    assert [fields["ref"] for fields in stream_entries(redis_url, STATUS)] == [
        f"deployment/d{i}" for i in range(15, 25)
    ]


def test_unreachable_at_start_the_job_goes_on_with_one_masked_warning(redis_factory: RedisFactory) -> None:
    server = redis_factory(password="hunter2-secret")
    server.stop()  # nothing listens on the port any more
    warnings: list[str] = []
    timings: dict[str, float] = {}

    async def scenario() -> None:
        sink = make_sink(server.url, warnings)
        began = time.perf_counter()
        await sink.start()
        timings["start_ms"] = (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        for index in range(200):
            sink.emit(ready(index))
            await asyncio.sleep(0)  # let the flusher try (and fail) in between
        timings["emit_ms_per_200"] = (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        await sink.close()
        timings["close_ms"] = (time.perf_counter() - began) * 1000
        assert (sink.stats.sent, sink.stats.dropped) == (0, 200)

    run(scenario)
    print(f"\nredis down at start: {timings}")
    assert len(warnings) == 1
    assert f"127.0.0.1:{server.port}" in warnings[0]
    assert "redis://:****@" in warnings[0]
    assert "hunter2" not in warnings[0]


def test_redis_failing_mid_way_one_warning_and_entries_delivered_after_it_returns(
    redis_factory: RedisFactory,
) -> None:
    server = redis_factory(password="s3cret-pw")
    warnings: list[str] = []

    async def scenario() -> None:
        sink = make_sink(server.url, warnings)
        await sink.start()
        for index in range(10):
            sink.emit(ready(index))
        await wait_for(lambda: sink.stats.sent == 10)
        server.stop()
        for index in range(10, 20):
            sink.emit(ready(index))
        await wait_for(lambda: sink.stats.failures >= 2)  # retried, still one warning
        server.start()  # same port: the sink reconnects on its next attempt
        await wait_for(lambda: sink.stats.sent == 20)
        await sink.close()

    run(scenario)
    assert len(warnings) == 1, warnings
    assert "s3cret" not in warnings[0]
    assert "unreachable" in warnings[0]
    # The server restarted empty (no persistence): the 10 entries sent after it came back are there.
    with server.client() as client:
        assert [fields["ref"] for _, fields in client.xrange(STATUS)] == [f"deployment/d{i}" for i in range(10, 20)]


def test_a_slow_redis_never_blocks_emit_and_close_is_bounded(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    warnings: list[str] = []
    timings: dict[str, float] = {}

    async def scenario() -> None:
        sink = make_sink(server.url, warnings, flush_timeout=1.0, socket_timeout=0.5)
        await sink.start()
        sink.emit(ready(0))
        await wait_for(lambda: sink.stats.sent == 1)
        with server.client() as client:
            client.client_pause(10_000, all=False)  # writes hang for 10 s
        began = time.perf_counter()
        for index in range(1, 1001):
            sink.emit(ready(index))
        timings["emit_ms_per_1000"] = (time.perf_counter() - began) * 1000
        # emit returned with everything still buffered: it did not wait for Redis.
        assert sink.stats.pending == 1000
        began = time.perf_counter()
        await sink.close()
        timings["close_ms"] = (time.perf_counter() - began) * 1000
        assert sink.stats.sent + sink.stats.dropped == 1001

    run(scenario)
    with server.client() as client:
        client.execute_command("CLIENT", "UNPAUSE")
    print(f"\nredis paused: {timings}")
    assert len(warnings) == 1


def test_a_wrong_password_is_one_warning_without_the_password(redis_factory: RedisFactory) -> None:
    server = redis_factory(password="right-password")
    url = f"redis://:wrong-p%40ssword@127.0.0.1:{server.port}/0"
    warnings: list[str] = []

    async def scenario() -> None:
        sink = make_sink(url, warnings)
        await sink.start()
        sink.emit(ready(1))
        sink.publish_result(OperationResult(job_id="j", operation="up", ok=True))
        await sink.close()

    run(scenario)
    assert len(warnings) == 1
    assert "wrong-p" not in warnings[0] and "p@ssword" not in warnings[0]
    assert f"redis://:****@127.0.0.1:{server.port}/0" in warnings[0]


def test_entries_refused_by_redis_are_dropped_with_one_warning(redis_url: str) -> None:
    redis.Redis.from_url(redis_url).set(STATUS, "not a stream")
    warnings: list[str] = []

    async def scenario() -> None:
        sink = make_sink(redis_url, warnings)
        await sink.start()
        for index in range(3):
            sink.emit(ready(index))
        await sink.close()
        assert sink.stats.dropped == 3

    run(scenario)
    assert len(warnings) == 1 and "WRONGTYPE" in warnings[0]


def test_an_invalid_url_is_one_warning_and_no_failure() -> None:
    warnings: list[str] = []

    async def scenario() -> None:
        sink = make_sink("http://:pw@example", warnings)
        await sink.start()
        sink.emit(ready(1))
        await sink.close()

    run(scenario)
    assert len(warnings) == 1 and "not usable" in warnings[0] and ":pw@" not in warnings[0]


def test_a_failing_mapping_function_never_reaches_the_operation(redis_url: str) -> None:
    warnings: list[str] = []

    def broken(item: Envelope) -> str | None:
        if isinstance(item.event, ObjectProgress):
            raise KeyError("no type for this")
        return "object.ready"

    def broken_fields(item: Envelope) -> dict[str, object]:
        if item.event == ObjectReady("deployment/bad", 0.0):
            raise ValueError("cannot format")
        return to_fields(item)

    async def scenario() -> None:
        sink = RedisStreamSink(
            redis_url, status_type=broken, to_fields=broken_fields, stream_prefix=PREFIX, on_warning=warnings.append
        )
        await sink.start()
        sink.emit(envelope(ObjectProgress("deployment/api", "0/1")))
        sink.emit(envelope(ObjectReady("deployment/bad", 0.0)))
        sink.emit(ready(1))
        await sink.close()
        assert (sink.stats.sent, sink.stats.dropped) == (1, 2)

    run(scenario)
    assert len(warnings) == 1 and "KeyError" in warnings[0]
    assert [fields["ref"] for fields in stream_entries(redis_url, STATUS)] == ["deployment/d1"]
