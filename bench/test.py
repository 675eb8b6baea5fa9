"""Benchmark `envspec test` against `kubectl create job` + `kubectl wait` of the same Jobs.

Run against a local cluster (`make bench` starts one and sets KUBECONFIG):

    KUBECONFIG=... python bench/test.py [--runs 5]

The `fullstack` example is brought up once (untimed). Then, alternating, at least five
times each:

- envspec:  `envspec test -o json` (both tests, live logs, outcome, summary, pruning);
- kubectl:  for each test Job of `envspec render --tests` (renamed per run):
            `kubectl create -f job.json` then `kubectl wait --for=condition=complete`.
            One after the other: the `auto` quota has room for one test at a time (a
            second Job created at once would be refused and retried by the Job
            controller with backoff). envspec runs them one after the other too, but
            starts the second as soon as the first one's pod has succeeded and the
            quota counts it no more, not when the Job controller marks the Job complete
            (it batches a Job's pod updates for a second).

Both are timed from process start to the end. envspec's own time is its total minus
the time at least one of its Jobs ran (from each `test_started` to its `test_finished`;
the spans overlap). kubectl's Jobs are deleted between runs, untimed. Target: envspec's
median <= 1.2x kubectl's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from envspec.pipeline import build_plan, identity, load_spec
from envspec.plan import WAVE_ANNOTATION

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "examples" / "fullstack" / "maestro-env.yaml"
ENV_ID = "bench-test"
ENVSPEC = [str(Path(sys.executable).parent / "envspec")]


def run(*args: str, timeout: float = 600) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def test_jobs() -> list[dict[str, Any]]:
    plan = build_plan(load_spec(str(SPEC), os.environ), env_id=ENV_ID, include_tests=True)
    jobs = []
    for obj in plan.objects:
        if obj.kind == "Job":
            manifest = json.loads(json.dumps(obj.manifest))
            manifest["metadata"]["annotations"].pop(WAVE_ANNOTATION, None)
            jobs.append(manifest)
    return jobs


def time_envspec() -> tuple[float, float]:
    """(total seconds, seconds outside the Jobs' run time)."""
    started = time.monotonic()
    out = run(*ENVSPEC, "test", "-f", str(SPEC), "--id", ENV_ID, "-o", "json")
    total = time.monotonic() - started
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    began = {e["test"]: datetime.fromisoformat(e["time"]) for e in events if e["event"] == "test_started"}
    spans = sorted(
        (began[e["test"]], datetime.fromisoformat(e["time"])) for e in events if e["event"] == "test_finished"
    )
    return total, total - covered_seconds(spans)


def covered_seconds(spans: list[tuple[datetime, datetime]]) -> float:
    """The time covered by at least one of `spans` (sorted by start): tests may overlap."""
    covered = 0.0
    reach: datetime | None = None
    for start, end in spans:
        if reach is None or start > reach:
            covered += (end - start).total_seconds()
            reach = end
        elif end > reach:
            covered += (end - reach).total_seconds()
            reach = end
    return covered


def time_kubectl(jobs: list[dict[str, Any]], namespace: str, run_number: int, directory: Path) -> float:
    files = []
    for job in jobs:
        manifest = json.loads(json.dumps(job))
        manifest["metadata"]["name"] = f"{job['metadata']['name']}-k{run_number}"
        path = directory / f"{manifest['metadata']['name']}.json"
        path.write_text(json.dumps(manifest))
        files.append((path, manifest["metadata"]["name"]))
    started = time.monotonic()
    for path, name in files:
        run("kubectl", "create", "-f", str(path))
        run("kubectl", "wait", "--for=condition=complete", f"job/{name}", "-n", namespace, "--timeout=300s")
    seconds = time.monotonic() - started
    for _, name in files:
        run("kubectl", "delete", f"job/{name}", "-n", namespace, "--wait=true")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    runs = max(5, parser.parse_args().runs)
    namespace = identity(load_spec(str(SPEC), os.environ), ENV_ID).namespace
    run(*ENVSPEC, "up", "-f", str(SPEC), "--id", ENV_ID)
    jobs = test_jobs()
    envspec_seconds: list[float] = []
    own_seconds: list[float] = []
    kubectl_seconds: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for number in range(runs):
                total, own = time_envspec()
                envspec_seconds.append(total)
                own_seconds.append(own)
                kubectl_seconds.append(time_kubectl(jobs, namespace, number, Path(scratch)))
    finally:
        run(*ENVSPEC, "down", "-f", str(SPEC), "--id", ENV_ID)
    envspec_median = statistics.median(envspec_seconds)
    kubectl_median = statistics.median(kubectl_seconds)
    ratio = envspec_median / kubectl_median
    print(f"envspec test (fullstack, {len(jobs)} tests, {runs} runs each, alternated)")
    print(f"  envspec test:                 median {envspec_median:.2f}s  {[round(s, 2) for s in envspec_seconds]}")
    print(f"  kubectl create + wait:        median {kubectl_median:.2f}s  {[round(s, 2) for s in kubectl_seconds]}")
    print(f"  envspec outside the Jobs:     median {statistics.median(own_seconds):.2f}s")
    print(f"  ratio envspec/kubectl:        {ratio:.2f} (target <= 1.2)")
    if ratio > 1.2:
        sys.exit(1)


if __name__ == "__main__":
    main()
