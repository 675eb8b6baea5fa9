"""Benchmark `envspec worker` on the local cluster: throughput with 1 and 2 workers, latency, overhead.

    KUBECONFIG=... python bench/worker.py [--requests 50] [--concurrency 4]

Starts its own redis-server (free loopback port, no persistence) and real `envspec worker`
processes. For 1 and then 2 workers (`--concurrency` each), it writes `--requests` create
requests (the original format: an app and a PostgreSQL database) at once, waits for every
result, then as many deletes, and reports jobs per minute and the p50 / p95 latency from
the request's stream entry to its result (each figure also the median of the creates and of the deletes: they differ by
far). Then the per-job overhead of the stream against running the same operations
in-process directly: `--sequential` create + delete pairs served in this process by
`envspec.service.operations.serve` (the function the worker calls: `up` / `down`), then
as many sent one at a time through the stream to one worker; the overhead is the median
request-to-result latency minus the median in-process time, per operation, and also
latency minus the job's own `duration_ms` (what serving took inside the worker). The
load average is printed beside each figure: the machine is shared. Beside each batch, where
the CPU went (bench/machine_cpu.py): when the machine is already full with one worker, a
second cannot add throughput, and the figures show it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from typing import Any

import anyio
import redis
from local_redis import local_redis
from machine_cpu import cpu_meter

from envspec.events import Envelope
from envspec.kube.client import ClusterTarget
from envspec.operations.run import run_operation
from envspec.service.operations import Service, serve
from envspec.service.requests import parse_entry
from envspec.service.settings import load_settings

PREFIX = "bench:worker"
JOBS, RESULTS = f"{PREFIX}:jobs", f"{PREFIX}:results"
WORKER = [sys.executable, "-m", "envspec", "worker", "--stream-prefix", PREFIX]
CONFIG = {"app_image": "myapp:latest", "app_port": 8000, "database": "postgresql", "ttl_minutes": 30}


def start_workers(url: str, count: int, concurrency: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "REDIS_URL": url, "K8S_NAMESPACE_PREFIX": "bench"}
    env.pop("K8S_IN_CLUSTER", None)
    return [
        subprocess.Popen(
            [*WORKER, "--consumer", f"w{index}", "--concurrency", str(concurrency)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for index in range(count)
    ]


def wait_ready(client: redis.Redis, count: int) -> None:
    """Until `count` consumers have read from the group: a worker's start-up is not a job's latency."""
    while True:
        try:
            consumers: Any = client.xinfo_consumers(JOBS, "envspec")
            if len(consumers) >= count:
                return
        except redis.ResponseError:
            pass  # no stream or group yet
        time.sleep(0.05)


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for process in workers:
        process.send_signal(signal.SIGTERM)
    for process in workers:
        process.wait(120)


def entry_ms(entry_id: str) -> int:
    return int(entry_id.split("-", maxsplit=1)[0])


def result_ms(fields: dict[str, str]) -> int:
    return round(datetime.fromisoformat(fields["time"].replace("Z", "+00:00")).timestamp() * 1000)


def send(client: redis.Redis, requests: list[dict[str, Any]]) -> dict[str, int]:
    """XADD each request (one field `data`); job_id -> the entry's time (ms, the Redis clock)."""
    pipe = client.pipeline(transaction=False)
    for request in requests:
        pipe.xadd(JOBS, {"data": json.dumps(request)})
    ids = pipe.execute()
    return {request["job_id"]: entry_ms(str(entry_id)) for request, entry_id in zip(requests, ids, strict=True)}


def wait_results(client: redis.Redis, sent: dict[str, int], after: str) -> tuple[dict[str, dict[str, str]], str]:
    found: dict[str, dict[str, str]] = {}
    cursor = after
    deadline = time.monotonic() + 1800
    while len(found) < len(sent):
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(found)} of {len(sent)} results after 30 minutes")
        reply: Any = client.xread({RESULTS: cursor}, block=1000, count=500)
        for _stream, items in reply or []:
            for entry_id, fields in items:
                cursor = entry_id
                if fields.get("job_id") in sent:
                    found[fields["job_id"]] = fields
    return found, cursor


class _Discard:
    """A sink that drops every event: the in-process baseline reports nowhere, as `up` without Redis."""

    async def start(self) -> None:
        pass

    def emit(self, envelope: Envelope) -> None:
        pass

    async def close(self) -> None:
        pass


def in_process(request: dict[str, Any]) -> float:
    """Seconds the same request takes served directly in this process: parse, `serve` (`up`/`down`), result."""
    environ = {**os.environ, "K8S_NAMESPACE_PREFIX": "bench"}
    environ.pop("K8S_IN_CLUSTER", None)
    service = Service(ClusterTarget.from_options(None, None, environ), load_settings(environ))
    parsed = parse_entry({"data": json.dumps(request)}, service.settings)

    async def body() -> None:
        result = await run_operation(
            parsed.operation,
            lambda events: serve(parsed, service, events=events),
            sink=_Discard(),
            operation_id=parsed.job_id,
        )
        if not result.ok:
            raise SystemExit(f"in-process {parsed.operation} failed: {result.error}")

    started = time.monotonic()
    anyio.run(body)
    return time.monotonic() - started


def load() -> str:
    one, five, _fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def pair(execution_id: str) -> list[dict[str, Any]]:
    return [
        {"job_id": f"{operation}-{execution_id}", "execution_id": execution_id, "operation": operation}
        | ({"config": CONFIG} if operation == "create" else {})
        for operation in ("create", "delete")
    ]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def batch(
    client: redis.Redis, operation: str, ids: list[str], cursor: str, workers: list[subprocess.Popen[bytes]]
) -> tuple[float, list[float], str]:
    requests: list[dict[str, Any]] = [
        {"job_id": f"{operation}-{execution_id}", "execution_id": execution_id, "operation": operation}
        | ({"config": CONFIG} if operation == "create" else {})
        for execution_id in ids
    ]
    with cpu_meter([worker.pid for worker in workers]) as meter:
        started = time.monotonic()
        sent = send(client, requests)
        results, cursor = wait_results(client, sent, cursor)
        seconds = time.monotonic() - started
    print(f"  {len(ids)} {operation}s with {len(workers)} worker(s): {meter.describe()}")
    failed = [r for r in results.values() if r["status"] != "success"]
    if failed:
        raise SystemExit(f"{len(failed)} {operation} requests failed, e.g. {failed[0].get('error')}")
    latencies = [(result_ms(results[job]) - sent[job]) / 1000 for job in sent]
    return seconds, latencies, cursor


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--sequential", type=int, default=5, help="requests sent one at a time, for the overhead")
    options = parser.parse_args()
    if not os.environ.get("KUBECONFIG"):
        raise SystemExit("needs KUBECONFIG (the local cluster)")
    with local_redis() as url:
        client = redis.Redis.from_url(url, decode_responses=True)
        cursor = "0"
        throughput: dict[int, float] = {}
        for workers_count in (1, 2):
            client.delete(JOBS)  # a fresh group: the consumers counted are this run's
            workers = start_workers(url, workers_count, options.concurrency)
            wait_ready(client, workers_count)
            try:
                ids = [f"b{workers_count}-{uuid.uuid4().hex[:6]}" for _ in range(options.requests)]
                created, create_latency, cursor = batch(client, "create", ids, cursor, workers)
                deleted, delete_latency, cursor = batch(client, "delete", ids, cursor, workers)
            finally:
                stop_workers(workers)
            jobs_per_minute = 2 * options.requests / (created + deleted) * 60
            throughput[workers_count] = jobs_per_minute
            latency = create_latency + delete_latency
            print(
                f"{workers_count} worker(s) x concurrency {options.concurrency}: {options.requests} creates in "
                f"{created:.1f}s, {options.requests} deletes in {deleted:.1f}s: {jobs_per_minute:.0f} jobs/min; "
                f"request-to-result p50 {percentile(latency, 0.5):.2f}s, p95 {percentile(latency, 0.95):.2f}s "
                f"(median create {statistics.median(create_latency):.2f}s, delete "
                f"{statistics.median(delete_latency):.2f}s; {load()})"
            )
        print(f"2 workers / 1 worker throughput: {throughput[2] / throughput[1]:.2f}x")

        direct: dict[str, list[float]] = {"create": [], "delete": []}
        for _ in range(options.sequential):
            for request in pair(f"inp-{uuid.uuid4().hex[:6]}"):
                direct[request["operation"]].append(in_process(request))

        client.delete(JOBS)
        workers = start_workers(url, 1, 1)
        wait_ready(client, 1)
        streamed: dict[str, list[float]] = {"create": [], "delete": []}
        beyond_duration: list[float] = []
        try:
            for _ in range(options.sequential):
                for request in pair(f"seq-{uuid.uuid4().hex[:6]}"):
                    sent = send(client, [request])
                    results, cursor = wait_results(client, sent, cursor)
                    result = results[request["job_id"]]
                    latency_ms = result_ms(result) - sent[request["job_id"]]
                    streamed[request["operation"]].append(latency_ms / 1000)
                    beyond_duration.append(latency_ms - int(result["duration_ms"]))
        finally:
            stop_workers(workers)
        for operation in ("create", "delete"):
            through, inside = statistics.median(streamed[operation]), statistics.median(direct[operation])
            print(
                f"{operation}, one at a time ({options.sequential} each): through the stream median "
                f"{through * 1000:.0f} ms, in-process median {inside * 1000:.0f} ms: overhead "
                f"{(through - inside) * 1000:.0f} ms per job ({load()})"
            )
        print(
            f"per-job overhead (latency - the job's own duration_ms, {len(beyond_duration)} jobs): median "
            f"{statistics.median(beyond_duration):.0f} ms, max {max(beyond_duration):.0f} ms"
        )


if __name__ == "__main__":
    main()
