"""Benchmark `envspec gc`: one sweep over 300 environments of which 100 have expired.

Run against a local cluster (`make bench` sets KUBECONFIG):

    KUBECONFIG=... python bench/gc_sweep.py [--environments 300 --expired 100]

Reports the sweep's wall time and its API requests, counted twice: by envspec itself
(every request through a counting wrapper) and by the API server
(`apiserver_request_total` for namespaces, before and after). Targets: one paginated
list + one DELETE per expired environment; the sweep under 5 s.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from apiserver_metrics import request_totals

from envspec.events import Emitter
from envspec.kube import kinds
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.ssa import delete_object, list_objects, server_side_apply
from envspec.meta import format_instant
from envspec.operations.gc import GcOptions, sweep
from envspec.plan import ENVIRONMENT_LABEL, EXPIRES_AT_ANNOTATION, JANITOR_EXPIRES_ANNOTATION, MANAGED_BY_LABEL
from envspec.sinks import Recorder as EventLog

SETUP_CONCURRENCY = 16


class CountingApi:
    """kr8s's Api with every `call_api` counted by (method, path)."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.requests: Counter[tuple[str, str]] = Counter()

    def call_api(self, method: str, **kwargs: Any) -> Any:
        url = str(kwargs.get("url", ""))
        self.requests[(method, url.split("/", maxsplit=1)[0])] += 1
        return self.api.call_api(method, **kwargs)


def namespace_requests() -> Counter[str]:
    """The API server's own count of requests on namespaces, by verb (all clients)."""
    counts: Counter[str] = Counter()
    for labels, value in request_totals():
        if labels.get("resource") == "namespaces" and not labels.get("subresource"):
            counts[labels["verb"]] += value
    return counts


async def create_environments(api: Any, prefix: str, total: int, expired: int) -> None:
    now = datetime.now(UTC)
    past, future = format_instant(now - timedelta(minutes=10)), format_instant(now + timedelta(hours=2))
    limiter = anyio.CapacityLimiter(SETUP_CONCURRENCY)
    deadline = Deadline(300)

    async def create(index: int) -> None:
        expires = past if index < expired else future
        name = f"{prefix}-{index:03d}"
        manifest = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {MANAGED_BY_LABEL: "envspec", ENVIRONMENT_LABEL: name},
                "annotations": {
                    EXPIRES_AT_ANNOTATION: expires,
                    JANITOR_EXPIRES_ANNOTATION: expires,
                    "envspec.dev/ttl": "2h",
                },
            },
        }
        async with limiter:
            await server_side_apply(api, kinds.NAMESPACE, manifest, deadline=deadline)

    async with anyio.create_task_group() as group:
        for index in range(total):
            group.start_soon(create, index)


async def delete_leftovers(api: Any, prefix: str) -> int:
    listing = await list_objects(api, kinds.NAMESPACE, None, deadline=Deadline(120), label_selector=MANAGED_BY_LABEL)
    names = [item["metadata"]["name"] for item in listing.items if item["metadata"]["name"].startswith(prefix)]
    limiter = anyio.CapacityLimiter(SETUP_CONCURRENCY)

    async def delete(name: str) -> None:
        async with limiter:
            await delete_object(api, kinds.NAMESPACE, name, None, deadline=Deadline(120))

    async with anyio.create_task_group() as group:
        for name in names:
            group.start_soon(delete, name)
    return len(names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--environments", type=int, default=300)
    parser.add_argument("--expired", type=int, default=100)
    args = parser.parse_args()
    target = ClusterTarget.from_options(None, None, os.environ)
    prefix = f"bench-gc-{secrets.token_hex(3)}"

    async def run() -> dict[str, Any]:
        async with connect(target) as api:
            started = time.monotonic()
            await create_environments(api, prefix, args.environments, args.expired)
            setup_seconds = time.monotonic() - started
            before = namespace_requests()
            counting = CountingApi(api)
            log = EventLog()
            sweep_started = time.monotonic()
            report = await sweep(
                counting, clock=lambda: datetime.now(UTC), events=Emitter(log, operation="gc"), options=GcOptions()
            )
            sweep_seconds = time.monotonic() - sweep_started
            after = namespace_requests()
            ours = [n for n in report.deleted if n.startswith(prefix)]
            # The CLI end to end (process start, connect, sweep) over what is left, as a dry run.
            cli_started = time.monotonic()
            subprocess.run([sys.executable, "-m", "envspec", "gc", "--dry-run"], check=True, capture_output=True)
            cli_seconds = time.monotonic() - cli_started
            leftovers = await delete_leftovers(api, prefix)
            return {
                "setup_seconds": setup_seconds,
                "examined": len(report.verdicts),
                "deleted": len(report.deleted),
                "deleted_ours": len(ours),
                "sweep_seconds": sweep_seconds,
                "client_requests": dict(counting.requests),
                "server_delta": {
                    verb: after[verb] - before[verb] for verb in sorted(after) if after[verb] != before[verb]
                },
                "cli_dry_run_seconds": cli_seconds,
                "leftovers_deleted": leftovers,
            }

    figures = anyio.run(run)
    client = figures["client_requests"]
    lists, deletes = client.get(("GET", "namespaces"), 0), client.get(("DELETE", "namespaces"), 0)
    print(
        f"gc sweep: {figures['examined']} managed environments ({args.environments} made here, {args.expired} expired)"
    )
    print(f"  wall time            {figures['sweep_seconds']:.3f} s   (target < 5 s)")
    made = f"{figures['deleted_ours']} of the {args.expired} expired made here"
    print(f"  deleted              {figures['deleted']} ({made})")
    print(f"  requests (envspec)   {sum(client.values())}: {lists} list, {deletes} delete")
    print(f"  requests (server)    namespaces by verb during the sweep: {figures['server_delta']}")
    print(f"  CLI dry run          {figures['cli_dry_run_seconds']:.3f} s end to end (process start included)")
    print(f"  (setup: {args.environments} namespaces created in {figures['setup_seconds']:.1f} s)")
    ok = figures["sweep_seconds"] < 5 and lists == 1 and deletes == figures["deleted"]
    print(f"  {'OK' if ok else 'MISSED TARGET'}: one list + one delete per expired environment, sweep < 5 s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
