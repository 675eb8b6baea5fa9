"""Render benchmark (printed figures, not a test).

(a) In-process: load + validate + compile of examples/large, median of many runs.
(b) Whole process: `envspec render -f examples/large/maestro-env.yaml` against
    `kubectl kustomize` over a directory holding the same rendered objects,
    alternated in one run, median of each, and their ratio.
Targets (issue): (a) < 50 ms, (b) ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from envspec.loader import load_text
from envspec.pipeline import build_plan, load_spec
from envspec.render import plan_text, write_directory
from envspec.validation import validate

REPO = Path(__file__).resolve().parent.parent
LARGE = REPO / "examples" / "large" / "maestro-env.yaml"
ENVSPEC = Path(sys.executable).parent / "envspec"


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def in_process(runs: int) -> None:
    text = LARGE.read_text()
    build_plan(validate(load_text(text, str(LARGE)), {}))  # warm caches (templates, pydantic)
    whole, compile_only, serialize = [], [], []
    valid = validate(load_text(text, str(LARGE)), {})
    for _ in range(runs):
        start = time.perf_counter()
        spec = validate(load_text(text, str(LARGE)), {})
        plan = build_plan(spec)
        whole.append(time.perf_counter() - start)
        start = time.perf_counter()
        plan = build_plan(valid)
        compile_only.append(time.perf_counter() - start)
        start = time.perf_counter()
        plan_text(plan, "yaml")
        serialize.append(time.perf_counter() - start)
    print(f"(a) examples/large: {len(plan.objects)} objects, median of {runs} runs")
    print(f"    load + validate + compile : {median_ms(whole):7.1f} ms   (target < 50 ms)")
    print(f"    compile only              : {median_ms(compile_only):7.1f} ms")
    print(f"    YAML serialisation        : {median_ms(serialize):7.1f} ms")


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def against_kubectl(runs: int) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print("(b) skipped: kubectl is not on PATH")
        return
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        plan = build_plan(load_spec(str(LARGE), {}))
        files = write_directory(plan, directory, "yaml").written
        (directory / "kustomization.yaml").write_text(
            "resources:\n" + "".join(f"- {f.name}\n" for f in files), encoding="utf-8"
        )
        ours_cmd = [str(ENVSPEC), "render", "-f", str(LARGE)]
        theirs_cmd = [kubectl, "kustomize", str(directory)]
        timed(ours_cmd)
        timed(theirs_cmd)  # warm both (page cache, Python bytecode)
        ours, theirs = [], []
        for _ in range(runs):
            ours.append(timed(ours_cmd))
            theirs.append(timed(theirs_cmd))
    ratio = statistics.median(ours) / statistics.median(theirs)
    print(f"(b) whole process, alternated, median of {runs} runs each ({len(files)} objects)")
    print(f"    envspec render            : {median_ms(ours):7.1f} ms")
    print(f"    kubectl kustomize         : {median_ms(theirs):7.1f} ms")
    print(f"    ratio envspec / kubectl   : {ratio:7.2f}   (target <= 1.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=30, help="in-process runs")
    parser.add_argument("--process-runs", type=int, default=15, help="whole-process runs of each command")
    args = parser.parse_args()
    in_process(args.runs)
    against_kubectl(args.process_runs)


if __name__ == "__main__":
    main()
