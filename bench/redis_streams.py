"""Benchmark the Redis parts alone (no cluster): the sink's emit cost and the consumer's per-job overhead.

    python bench/redis_streams.py [--jobs 1000]

Starts its own redis-server on a free loopback port (no persistence) and reports:
- the sink: microseconds per `emit` (what a command pays), and the time to flush;
- the consumer: jobs per second through `<prefix>:jobs` with a handler that does
  nothing, for 1 and 2 consumers at concurrency 4, and so the per-job overhead (read,
  result XADD, XACK) that the stream adds to a real job's own work. Both consumers run
  in this one process and event loop: the 2-consumer figure shows they share the work
  correctly, not how separate worker processes scale.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from local_redis import local_redis

from envspec.report.redis_sink import RedisStreamSink
from envspec.worker.streams import ConsumerConfig, Result, StreamConsumer, StreamMessage

PREFIX = "bench:k8s"


@dataclass(frozen=True)
class Event:
    ref: str
    seconds: float


@dataclass(frozen=True)
class Envelope:
    operation_id: str
    operation: str
    environment: str | None
    namespace: str | None
    time: datetime
    event: Event


async def bench_sink(url: str, count: int) -> None:
    sink: RedisStreamSink[Envelope] = RedisStreamSink(
        url,
        status_type=lambda envelope: "object.ready",
        to_fields=lambda envelope: {"event": "object_ready", "ref": envelope.event.ref, "seconds": 1.5},
        stream_prefix=PREFIX,
        on_warning=print,
    )
    await sink.start()
    now = datetime.now(UTC)
    began = time.perf_counter()
    for index in range(count):
        sink.emit(Envelope("op", "up", "env", "ns", now, Event(f"deployment/d{index}", 1.5)))
    emit_seconds = time.perf_counter() - began
    began = time.perf_counter()
    await sink.close()
    close_seconds = time.perf_counter() - began
    print(
        f"sink: {count} emits in {emit_seconds * 1000:.1f} ms ({emit_seconds / count * 1e6:.1f} us each); "
        f"flushed on close in {close_seconds * 1000:.0f} ms; sent {sink.stats.sent}, dropped {sink.stats.dropped}"
    )


async def bench_consumers(url: str, jobs: int, workers: int) -> float:
    client = redis.Redis.from_url(url)
    client.delete(f"{PREFIX}:jobs", f"{PREFIX}:results")
    done = 0

    async def handler(message: StreamMessage) -> Result:
        nonlocal done
        done += 1
        return Result(fields={"job_id": message.fields["job_id"], "status": "success"})

    consumers = [
        StreamConsumer(
            ConsumerConfig(url=url, stream_prefix=PREFIX, consumer=f"w{i}", concurrency=4, block=0.5), handler
        )
        for i in range(workers)
    ]
    tasks = [asyncio.create_task(consumer.run()) for consumer in consumers]
    while not client.exists(f"{PREFIX}:jobs"):
        await asyncio.sleep(0.01)
    pipe = client.pipeline(transaction=False)
    for index in range(jobs):
        pipe.xadd(f"{PREFIX}:jobs", {"job_id": f"job-{index}"})
    began = time.perf_counter()
    pipe.execute()
    while done < jobs:
        await asyncio.sleep(0.005)
    seconds = time.perf_counter() - began
    for consumer in consumers:
        consumer.stop()
    await asyncio.gather(*tasks)
    assert client.xlen(f"{PREFIX}:results") == jobs
    rate = jobs / seconds
    print(
        f"consumer: {workers} worker(s) x concurrency 4, {jobs} no-op jobs in {seconds:.2f} s: "
        f"{rate:.0f} jobs/s, {seconds / jobs * 1000:.2f} ms of worker time per job"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with local_redis() as url:
        asyncio.run(bench_sink(url, 10_000))
        for workers in (1, 2):
            rates = [asyncio.run(bench_consumers(url, args.jobs, workers)) for _ in range(args.repeat)]
            print(f"  median {statistics.median(rates):.0f} jobs/s with {workers} worker(s)")


if __name__ == "__main__":
    main()
