"""Benchmark `envspec up` against kubectl and Helm 4 bringing up the same objects.

Run against a local cluster (`make bench` starts one and sets KUBECONFIG):

    KUBECONFIG=... python bench/up.py [--runs 5] [--examples fullstack,large] [--no-helm]

For each example, rotating the three in one run, at least five times each:

- envspec:  `envspec up -f maestro-env.yaml --id ...` (waves, readiness, prune);
- kubectl:  `kubectl apply --server-side -f <rendered dir>` then
            `kubectl rollout status` of every Deployment and StatefulSet (and
            `kubectl wait --for=condition=complete` of every Job), the usual CI
            sequence for the same objects, with no ordering between them;
- helm:     `helm install --wait=watcher` of a chart whose `templates/` are the same
            rendered objects (Helm 4, built once by bench/helm.py and cached), which
            orders by kind and then waits for everything with kstatus watches.

Each is timed from process start to ready, in a fresh namespace; the namespace is
deleted (and waited for) between runs, untimed. The figures are medians and their
ratios, also printed as `FIGURE <name> <value>` lines for scripts. Then the write
requests of an unchanged re-apply are counted from the API server's
`apiserver_request_total`. Targets (issue 8): envspec's median <= 1.0x kubectl's and
helm's; an unchanged `up` writes 1 (the lease).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from apiserver_metrics import request_totals
from helm import ensure_helm

from envspec.pipeline import identity, load_spec

REPO = Path(__file__).resolve().parent.parent
ENVSPEC = [str(Path(sys.executable).parent / "envspec")]  # the console script, as users run it
WRITE_VERBS = {"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"}  # APPLY: server-side apply
WAITED_KINDS = {"deployment", "statefulset"}
HELM_RELEASE_NAMESPACE = "default"  # the chart creates the environment's namespace itself
TOOLS = ("envspec", "kubectl", "helm")


@dataclass
class Example:
    name: str
    spec: Path
    objects: int = 0
    envspec_seconds: list[float] = field(default_factory=list)
    # From process start to envspec's first event (interpreter, imports, reading the spec),
    # and from its first to its last event (the operation itself).
    envspec_startup_seconds: list[float] = field(default_factory=list)
    envspec_operation_seconds: list[float] = field(default_factory=list)
    kubectl_seconds: list[float] = field(default_factory=list)
    helm_seconds: list[float] = field(default_factory=list)
    # CPU time (user + system) of each tool's processes while timed: unlike wall time it
    # hardly moves with the load of a shared machine.
    cpu_seconds: dict[str, list[float]] = field(default_factory=lambda: {tool: [] for tool in TOOLS})
    envspec_noop_writes: int = -1
    kubectl_noop_writes: int = -1


@dataclass
class Timed:
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every child waited for so far
    return usage.ru_utime + usage.ru_stime


@contextmanager
def timed() -> Iterator[Timed]:
    """Wall time and the CPU time of the processes run (and waited for) inside the block."""
    result = Timed()
    cpu, wall = children_cpu_seconds(), time.monotonic()
    yield result
    result.seconds = time.monotonic() - wall
    result.cpu_seconds = children_cpu_seconds() - cpu


def kubectl(*args: str, timeout: float = 600) -> str:
    done = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def envspec(*args: str, timeout: float = 900) -> str:
    done = subprocess.run([*ENVSPEC, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"envspec {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def namespace_of(spec: Path, env_id: str) -> str:
    return identity(load_spec(str(spec), os.environ), env_id).namespace


def render(spec: Path, env_id: str, directory: Path) -> None:
    envspec("render", "-f", str(spec), "--id", env_id, "--show-secrets", "--out-dir", str(directory))


def delete_namespace(namespace: str) -> None:
    kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=true", "--timeout=600s")


def time_envspec(example: Example, env_id: str, scratch: Path) -> tuple[Timed, str, float, float]:
    """Process start to ready, the namespace, seconds to the first event, the operation's seconds."""
    namespace = namespace_of(example.spec, env_id)
    started_at = datetime.now(UTC)
    with timed() as run:
        output = envspec("up", "-f", str(example.spec), "--id", env_id, "-o", "json")
    # The summary is the last event but one: `operation_finished` closes every operation.
    events = [json.loads(line) for line in output.splitlines() if line.strip()]
    summary = next(event for event in reversed(events) if event["event"] == "summary")
    assert summary["ok"], summary
    example.objects = summary["created"] + summary["configured"] + summary["unchanged"]
    finished = next(event for event in reversed(events) if event["event"] == "operation_finished")
    first_event_at = datetime.fromisoformat(events[0]["time"].replace("Z", "+00:00"))
    return run, namespace, (first_event_at - started_at).total_seconds(), float(finished["seconds"])


def time_kubectl(example: Example, env_id: str, scratch: Path) -> tuple[Timed, str, Path]:
    rendered = scratch / f"rendered-{env_id}"
    render(example.spec, env_id, rendered)  # not timed
    namespace = namespace_of(example.spec, env_id)
    files = sorted(rendered.iterdir())
    workloads = [f for f in files if f.name.split("-", 2)[1] in WAITED_KINDS]
    jobs = [f for f in files if f.name.split("-", 2)[1] == "job"]
    with timed() as run:
        kubectl("apply", "--server-side", "-f", str(rendered))
        if workloads:
            kubectl("rollout", "status", "--timeout=600s", *[arg for f in workloads for arg in ("-f", str(f))])
        if jobs:
            waited = [arg for f in jobs for arg in ("-f", str(f))]
            kubectl("wait", "--for=condition=complete", "--timeout=600s", *waited)
    return run, namespace, rendered


def make_chart(rendered: Path, chart: Path) -> None:
    """A chart whose templates are the rendered objects, as they are (they hold no `{{`)."""
    templates = chart / "templates"
    templates.mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: envspec-bench\nversion: 0.1.0\n")
    for manifest in sorted(rendered.iterdir()):
        text = manifest.read_text()
        if "{{" in text:
            raise SystemExit(f"{manifest} holds '{{{{': Helm would read it as a template")
        (templates / manifest.name).write_text(text)


def time_helm(example: Example, env_id: str, scratch: Path, helm: Path) -> tuple[Timed, str]:
    rendered = scratch / f"rendered-{env_id}"
    render(example.spec, env_id, rendered)  # not timed
    chart = scratch / f"chart-{env_id}"
    make_chart(rendered, chart)
    namespace = namespace_of(example.spec, env_id)
    release = f"bench-{env_id}"
    jobs = any(f.name.split("-", 2)[1] == "job" for f in rendered.iterdir())
    command = [str(helm), "install", release, str(chart), "--namespace", HELM_RELEASE_NAMESPACE]
    command += ["--wait=watcher", "--timeout", "10m", *(["--wait-for-jobs"] if jobs else [])]
    with timed() as run:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise SystemExit(f"helm install {release} failed: {done.stderr.strip()}")
    # The release record (a Secret in the release namespace) goes too, untimed; the objects
    # go with their namespace.
    kubectl("delete", "secret", "-n", HELM_RELEASE_NAMESPACE, "-l", f"owner=helm,name={release}")
    return run, namespace


def write_requests() -> Counter[str]:
    """Write requests the API server has answered so far, by resource (every client)."""
    counts: Counter[str] = Counter()
    for labels, value in request_totals():
        if labels.get("verb") in WRITE_VERBS and not labels.get("dry_run") and not labels.get("subresource"):
            counts[labels.get("resource", "")] += value
    return counts


def plan_writes(before: Counter[str], after: Counter[str]) -> int:
    # Controllers keep writing leases, events and node heartbeats meanwhile, and give a new
    # namespace its default service account and root CA config map: none of it ours.
    ignored = {"leases", "events", "nodes", "serviceaccounts", "configmaps"}
    return sum(count for resource, count in (after - before).items() if resource not in ignored)


def wait_no_namespace_terminating(timeout: float = 300) -> None:
    """The namespace controller's deletes (of earlier runs' namespaces) would count as writes."""
    ends = time.monotonic() + timeout
    query = '{.items[?(@.status.phase=="Terminating")].metadata.name}'
    while kubectl("get", "namespaces", "-o", f"jsonpath={query}").strip() and time.monotonic() < ends:
        time.sleep(1)


def count_noop_writes(example: Example, scratch: Path) -> None:
    env_id = "noop" + secrets.token_hex(3)
    _, namespace, _, _ = time_envspec(example, env_id, scratch)
    wait_no_namespace_terminating()
    before = write_requests()
    envspec("up", "-f", str(example.spec), "--id", env_id, "-o", "json")
    example.envspec_noop_writes = plan_writes(before, write_requests())
    delete_namespace(namespace)

    env_id = "noop" + secrets.token_hex(3)
    _, namespace, rendered = time_kubectl(example, env_id, scratch)
    wait_no_namespace_terminating()
    before = write_requests()
    kubectl("apply", "--server-side", "-f", str(rendered))
    example.kubectl_noop_writes = plan_writes(before, write_requests())
    delete_namespace(namespace)


def bench(example: Example, runs: int, scratch: Path, helm: Path | None) -> None:
    tools = [tool for tool in TOOLS if tool != "helm" or helm is not None]
    for run in range(runs):
        # Rotate who goes first, so none always meets a cluster still busy with another.
        order = tools[run % len(tools) :] + tools[: run % len(tools)]
        for tool in order:
            env_id = f"b{tool[0]}{run}{secrets.token_hex(2)}"
            if tool == "envspec":
                result, namespace, startup_seconds, operation_seconds = time_envspec(example, env_id, scratch)
                example.envspec_seconds.append(result.seconds)
                example.envspec_startup_seconds.append(startup_seconds)
                example.envspec_operation_seconds.append(operation_seconds)
            elif tool == "kubectl":
                result, namespace, _ = time_kubectl(example, env_id, scratch)
                example.kubectl_seconds.append(result.seconds)
            else:
                assert helm is not None
                result, namespace = time_helm(example, env_id, scratch, helm)
                example.helm_seconds.append(result.seconds)
            example.cpu_seconds[tool].append(result.cpu_seconds)
            print(
                f"  {example.name:<10} run {run + 1}/{runs}  {tool:<8} {result.seconds:6.2f}s "
                f"(cpu {result.cpu_seconds:.2f}s)",
                flush=True,
            )
            delete_namespace(namespace)
    count_noop_writes(example, scratch)


def median_or_nan(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def report(examples: list[Example], runs: int) -> str:
    lines = [
        "envspec up vs kubectl apply --server-side + rollout status, and vs helm install --wait=watcher",
        f"(median of {runs} runs each, rotated; ratio = envspec / peer)",
        f"{'example':<10} {'objects':>7} {'envspec':>9} {'kubectl':>9} {'ratio':>7} {'helm':>9} {'ratio':>7}"
        "   unchanged re-up writes",
    ]
    figures: list[str] = []
    for example in examples:
        mine = statistics.median(example.envspec_seconds)
        startup = statistics.median(example.envspec_startup_seconds)
        operation = statistics.median(example.envspec_operation_seconds)
        kubectl_median = median_or_nan(example.kubectl_seconds)
        helm_median = median_or_nan(example.helm_seconds)
        lines.append(
            f"{example.name:<10} {example.objects:>7} {mine:>8.2f}s {kubectl_median:>8.2f}s "
            f"{mine / kubectl_median:>6.2f}x {helm_median:>8.2f}s {mine / helm_median:>6.2f}x   "
            f"envspec {example.envspec_noop_writes} (the lease), kubectl {example.kubectl_noop_writes}"
        )
        figures += [
            f"FIGURE up.{example.name}.envspec_seconds {mine:.3f}",
            f"FIGURE up.{example.name}.kubectl_seconds {kubectl_median:.3f}",
            f"FIGURE up.{example.name}.helm_seconds {helm_median:.3f}",
            f"FIGURE up.{example.name}.ratio_vs_kubectl {mine / kubectl_median:.3f}",
            f"FIGURE up.{example.name}.ratio_vs_helm {mine / helm_median:.3f}",
            f"FIGURE up.{example.name}.noop_writes {example.envspec_noop_writes}",
            f"FIGURE up.{example.name}.envspec_startup_seconds {startup:.3f}",
            f"FIGURE up.{example.name}.envspec_operation_seconds {operation:.3f}",
            *(
                f"FIGURE up.{example.name}.{tool}_cpu_seconds {statistics.median(samples):.3f}"
                for tool, samples in example.cpu_seconds.items()
                if samples
            ),
        ]
    for example in examples:
        lines.append(
            f"  {example.name}: envspec {' '.join(f'{s:.2f}' for s in example.envspec_seconds)}; "
            f"kubectl {' '.join(f'{s:.2f}' for s in example.kubectl_seconds)}; "
            f"helm {' '.join(f'{s:.2f}' for s in example.helm_seconds)}"
        )
        lines.append(
            f"  {example.name}: envspec start-up (process start to first event: interpreter, imports, "
            f"spec) {' '.join(f'{s:.2f}' for s in example.envspec_startup_seconds)}; "
            f"operation (first to last event) {' '.join(f'{s:.2f}' for s in example.envspec_operation_seconds)}"
        )
        lines.append(
            f"  {example.name}: CPU seconds (user + system, median) "
            + ", ".join(
                f"{tool} {statistics.median(samples):.2f}" for tool, samples in example.cpu_seconds.items() if samples
            )
        )
    return "\n".join(lines + figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per tool and example (default 5)")
    parser.add_argument("--examples", default="fullstack,large", help="comma-separated examples/ names")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--no-helm", action="store_true", help="leave Helm out (no build on first use)")
    arguments = parser.parse_args()
    if not os.environ.get("KUBECONFIG"):
        raise SystemExit("set KUBECONFIG to the local cluster (make bench does)")
    helm = None if arguments.no_helm else ensure_helm()
    # An installed envspec has compiled bytecode; a source checkout may not (PYTHONDONTWRITEBYTECODE).
    compileall.compile_dir(str(REPO / "envspec"), quiet=1)
    examples = [Example(name, REPO / "examples" / name / "maestro-env.yaml") for name in arguments.examples.split(",")]
    with tempfile.TemporaryDirectory(prefix="envspec-bench-") as scratch:
        for example in examples:
            print(f"{example.name}: {arguments.runs} runs each", flush=True)
            bench(example, arguments.runs, Path(scratch), helm)
    text = report(examples, arguments.runs)
    print(text)
    if arguments.json:
        arguments.json.write_text(
            json.dumps(
                [
                    {
                        "example": e.name,
                        "objects": e.objects,
                        "envspec_seconds": e.envspec_seconds,
                        "envspec_startup_seconds": e.envspec_startup_seconds,
                        "envspec_operation_seconds": e.envspec_operation_seconds,
                        "cpu_seconds": e.cpu_seconds,
                        "kubectl_seconds": e.kubectl_seconds,
                        "helm_seconds": e.helm_seconds,
                        "envspec_median": statistics.median(e.envspec_seconds),
                        "kubectl_median": statistics.median(e.kubectl_seconds),
                        "helm_median": statistics.median(e.helm_seconds) if e.helm_seconds else None,
                        "envspec_noop_writes": e.envspec_noop_writes,
                        "kubectl_noop_writes": e.kubectl_noop_writes,
                    }
                    for e in examples
                ],
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
