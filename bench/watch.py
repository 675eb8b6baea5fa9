"""Benchmark `envspec watch`: edit-to-applied-and-ready latency, and writes per single-field edit.

Run against a local cluster (`make bench` sets KUBECONFIG):

    KUBECONFIG=... python bench/watch.py [--edits 25]

An environment (two services and a database) is brought up by `watch`, then the spec
file is edited --edits times, each time one field: an environment variable of one
service, which changes that Deployment alone (a rollout: new ReplicaSet, new pod).
For each edit: the time from writing the file to watch reporting the cycle applied
and ready (debounce included), and the write requests sent, counted by envspec and
cross-checked with the API server's `apiserver_request_total` (APPLY, PATCH, POST,
PUT and DELETE of single objects of the kinds envspec writes, status excluded). Target: p50 < 1 s; only the
changed objects written.
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from apiserver_metrics import request_totals

from envspec.events import Emitter, WatchCycle, WatchStarted
from envspec.kube.client import ClusterTarget
from envspec.operations.watch import WatchOptions, WatchRequest, watch
from envspec.sinks import Recorder as EventLog

SPEC = """\
apiVersion: envspec/v1
kind: Environment
name: {name}
ttl: 30m
# Room for one pod more than the environment runs: with an exact quota (`auto`) a
# rollout's new pod can be refused while the old one still counts.
resources:
  quota: {{cpu: "4", memory: 4Gi, pods: 5}}
databases:
  cache:
    engine: redis
services:
  web:
    image: registry.example.com/web:1
    port: 8080
    env:
      REVISION: "{revision}"
      CACHE_URL: ${{cache.url}}
  api:
    image: registry.example.com/api:1
    port: 9000
"""
WRITE_VERBS = {"APPLY", "PATCH", "POST", "PUT", "DELETE"}  # server-side apply counts as APPLY
# What envspec writes; controllers write pods, replicasets, events, leases and statuses.
ENVSPEC_RESOURCES = {
    "namespaces",
    "deployments",
    "statefulsets",
    "services",
    "secrets",
    "resourcequotas",
    "limitranges",
    "networkpolicies",
}


def server_writes() -> Counter[str]:
    counts: Counter[str] = Counter()
    for labels, value in request_totals():
        if (
            labels.get("verb") in WRITE_VERBS
            and labels.get("resource") in ENVSPEC_RESOURCES
            and not labels.get("subresource")
            and labels.get("scope") == "resource"  # one object; a namespace's deletion sweeps whole collections
        ):
            counts[f"{labels['verb']} {labels['resource']}"] += value
    return counts


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


async def wait_for(log: EventLog, kind: type[Any], after: int, timeout: float = 120) -> tuple[Any, int]:
    with anyio.fail_after(timeout):
        while True:
            for index in range(after, len(log.events)):
                if isinstance(log.events[index], kind):
                    return log.events[index], index + 1
            await anyio.sleep(0.005)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=25)
    args = parser.parse_args()
    name = f"bench-watch-{secrets.token_hex(3)}"
    target = ClusterTarget.from_options(None, None, os.environ)
    directory = Path(tempfile.mkdtemp(prefix="envspec-bench-watch-"))
    path = directory / "maestro-env.yaml"
    path.write_text(SPEC.format(name=name, revision=0))

    latencies: list[float] = []
    cycle_seconds: list[float] = []
    client_writes: list[int] = []
    server_deltas: list[Counter[str]] = []
    changed: Counter[str] = Counter()

    async def run() -> float:
        log = EventLog()
        stop = anyio.Event()
        request = WatchRequest(str(path), None, target, {}, WatchOptions())
        async with anyio.create_task_group() as group:
            started = time.monotonic()
            group.start_soon(
                lambda: watch(
                    request, events=Emitter(log, operation="watch"), clock=lambda: datetime.now(UTC), stop=stop
                )
            )
            _, seen = await wait_for(log, WatchStarted, 0)
            first_up = time.monotonic() - started
            await anyio.sleep(1.0)  # let the first rollout's controllers settle before counting
            for revision in range(1, args.edits + 1):
                before = server_writes()
                written = time.monotonic()
                path.write_text(SPEC.format(name=name, revision=revision))
                cycle, seen = await wait_for(log, WatchCycle, seen)
                latencies.append(time.monotonic() - written)
                if not cycle.ok:
                    raise SystemExit(f"edit {revision} failed: {cycle.message}")
                cycle_seconds.append(cycle.seconds)
                client_writes.append(cycle.writes)
                changed.update([*cycle.created, *cycle.configured, *cycle.pruned])
                await anyio.sleep(0.3)  # let controller writes of this rollout land outside the next window
                server_deltas.append(server_writes() - before)
            stop.set()
        return first_up

    try:
        first_up = anyio.run(run)
    finally:
        subprocess.run(
            ["kubectl", "delete", "namespace", f"envspec-{name}", "--wait=false", "--ignore-not-found"],
            capture_output=True,
            check=False,
        )
    server_total: Counter[str] = Counter()
    for delta in server_deltas:
        server_total.update(delta)
    p50, p95 = percentile(latencies, 0.50), percentile(latencies, 0.95)
    print(f"watch: {args.edits} single-field edits (an env var of deployment/web); first up {first_up:.2f} s")
    print(f"  edit -> applied and ready   p50 {p50:.3f} s   p95 {p95:.3f} s   (target p50 < 1 s)")
    print(f"                              min {min(latencies):.3f} s   max {max(latencies):.3f} s")
    cycle_p50, cycle_p95 = percentile(cycle_seconds, 0.5), percentile(cycle_seconds, 0.95)
    print(f"  cycle (after debounce)      p50 {cycle_p50:.3f} s   p95 {cycle_p95:.3f} s")
    print(f"  objects changed per edit    {dict(changed)} over {args.edits} edits")
    print(f"  write requests per edit     envspec: {Counter(client_writes)} (count: edits)")
    per_edit = {key: value / args.edits for key, value in sorted(server_total.items())}
    print(f"  server-side writes per edit {per_edit}")
    ok = p50 < 1.0
    print(f"  {'OK' if ok else 'MISSED TARGET'}: p50 < 1 s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
