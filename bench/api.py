"""Benchmark the REST API of `envspec serve` on a local cluster (`make bench` sets KUBECONFIG).

    KUBECONFIG=... python bench/api.py [--environments 50] [--requests 400] [--concurrency 8]

1. Listing: with N environments on the cluster (created through the API, `config`
   shorthand without a database), `GET /environments` is sent `--requests` times by
   `--concurrency` concurrent clients (httpx, one connection each): p50/p95 latency
   and requests per second.
2. Create overhead: the same environment (one app, one PostgreSQL) created `--runs`
   times through `POST /environments` + `GET /environments/{id}?wait=` against
   `envspec up -f` on the same document; medians and the difference.

The server runs with its own namespace prefix, and every environment made here is
deleted afterwards. Figures go to standard output as a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import anyio
import httpx

ENVSPEC = [sys.executable, "-m", "envspec"]
TOKEN = "bench-token-0123456789abcdef"
PREFIX = "/api/v1/k8s-execution"
SMALL = {"app_image": "bench:1", "app_port": 8000}
WITH_DB = {"app_image": "bench:1", "app_port": 8000, "database": "postgresql"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def start_server(prefix: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = dict(os.environ, ENVSPEC_API_TOKENS=TOKEN, K8S_NAMESPACE_PREFIX=prefix)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*ENVSPEC, "serve", "--port", str(port), "--max-operations", "4"], env=env, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}{PREFIX}"
    for _ in range(600):
        try:
            httpx.get(f"{base}/health", timeout=5)
            return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"envspec serve did not start; see {log}")


def create_all(client: httpx.Client, ids: list[str], config: dict[str, object]) -> None:
    for execution_id in ids:
        for attempt in range(5):  # a shared test cluster may be briefly unreachable (503): try again
            answer = client.post("/environments", json={"execution_id": execution_id, "config": config})
            if answer.status_code != 503:
                break
            time.sleep(1 + attempt)
        answer.raise_for_status()
    for execution_id in ids:
        answer = client.get(f"/environments/{execution_id}", params={"wait": 300}).json()
        if answer.get("status") != "ready":
            raise SystemExit(f"{execution_id} did not become ready: {answer.get('operation')}")


def delete_all(client: httpx.Client, ids: list[str]) -> None:
    for execution_id in ids:
        client.delete(f"/environments/{execution_id}")
    for execution_id in ids:
        client.get(f"/environments/{execution_id}", params={"wait": 300})


async def load(base: str, requests: int, concurrency: int, expected: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    remaining = requests

    async def client_loop() -> None:
        nonlocal remaining
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                answer = await client.get("/environments")
                latencies.append(time.perf_counter() - started)
                answer.raise_for_status()
                if len(answer.json()) < expected:
                    raise SystemExit(f"GET /environments listed {len(answer.json())} < {expected}")

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(client_loop)
    return latencies, time.perf_counter() - started


def envspec_up_seconds(document: dict[str, object], directory: Path) -> float:
    spec = directory / f"{document['name']}.yaml"
    spec.write_text(json.dumps(document))
    started = time.perf_counter()
    subprocess.run([*ENVSPEC, "up", "-f", str(spec)], check=True, capture_output=True, timeout=600)
    elapsed = time.perf_counter() - started
    subprocess.run([*ENVSPEC, "down", "-f", str(spec)], check=True, capture_output=True, timeout=600)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--environments", type=int, default=50)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    prefix = f"bench-{uuid.uuid4().hex[:4]}"
    directory = Path(tempfile.mkdtemp(prefix="envspec-bench-api-"))
    process, base = start_server(prefix, directory / "server.log")
    ids = [f"list-{n:03d}" for n in range(options.environments)]
    figures: dict[str, object] = {"environments": options.environments, "concurrency": options.concurrency}
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=600) as client:
            create_all(client, ids, SMALL)
            latencies, wall = anyio.run(load, base, options.requests, options.concurrency, options.environments)
            figures.update(
                list_p50_ms=round(percentile(latencies, 0.50) * 1000, 1),
                list_p95_ms=round(percentile(latencies, 0.95) * 1000, 1),
                list_requests_per_second=round(len(latencies) / wall, 1),
            )
            delete_all(client, ids)

            api_seconds: list[float] = []
            up_seconds: list[float] = []
            for run in range(options.runs):
                execution_id = f"create-{run}"
                started = time.perf_counter()
                create_all(client, [execution_id], WITH_DB)
                api_seconds.append(time.perf_counter() - started)
                delete_all(client, [execution_id])
                document: dict[str, object] = {
                    "apiVersion": "envspec/v1",
                    "name": f"up-{run}",
                    "namespacePrefix": prefix,
                    "databases": {"postgres": {"engine": "postgresql"}},
                    "services": {"app": {"image": "bench:1", "port": 8000, "env": {"DATABASE_URL": "${postgres.url}"}}},
                }
                up_seconds.append(envspec_up_seconds(document, directory))
            figures.update(
                create_api_median_s=round(statistics.median(api_seconds), 3),
                create_up_median_s=round(statistics.median(up_seconds), 3),
                create_overhead_s=round(statistics.median(api_seconds) - statistics.median(up_seconds), 3),
            )
    finally:
        process.terminate()
        process.wait(30)
    print(f"GET /environments with {options.environments} environments, concurrency {options.concurrency}:")
    rate = figures["list_requests_per_second"]
    print(f"  p50 {figures['list_p50_ms']} ms, p95 {figures['list_p95_ms']} ms, {rate} req/s")
    print(
        f"create via API (202 + wait) median {figures['create_api_median_s']} s vs envspec up "
        f"{figures['create_up_median_s']} s (overhead {figures['create_overhead_s']} s; up includes process start)"
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
