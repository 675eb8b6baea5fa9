"""Helm 4, the benchmarks' second peer: built from the Go module proxy once, then cached.

    python bench/helm.py          # build if missing; print the binary's path

The binary is cached like the control plane (`envspec.cluster.build`): one entry
`<cache>/bin/helm-v4.3.1/` with the binary and a marker written last, built in a
temporary directory under a file lock and renamed into place, so concurrent callers
build it once and a killed build leaves nothing half-made. Only `make bench` (and
`make helm`) build it: about five minutes on two cores, too slow for `make test`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from envspec.cluster.build import MARKER, BuildError, Component, find_go, go_env, install_entry
from envspec.cluster.paths import Layout
from envspec.cluster.progress import Progress

HELM_VERSION = "v4.3.1"
HELM = Component("helm", HELM_VERSION, ("helm",))
BUILD_TIMEOUT_SECONDS = 3600.0  # a cold module cache on two busy cores


def ensure_helm(progress: Progress | None = None) -> Path:
    """The path of the cached helm binary, building it first if the cache has none."""
    layout = Layout.from_env()
    steps = progress if progress is not None else Progress()
    log_path = layout.build_log(HELM.key)

    def build(workdir: Path, out: Path) -> None:
        go = find_go()
        layout.logs_dir.mkdir(parents=True, exist_ok=True)
        steps.step(f"{HELM.label}: building with {go.version} (first use, a few minutes; log: {log_path})")
        started = time.monotonic()
        command = [
            go.go,
            "install",
            "-v",
            "-trimpath",
            "-ldflags=-s -w",
            f"helm.sh/helm/v4/cmd/helm@{HELM_VERSION}",
        ]
        with log_path.open("w") as log:
            log.write(f"$ GOBIN={out} {' '.join(command)}\n")
            log.flush()
            done = subprocess.run(
                command,
                cwd=workdir,
                env=go_env({"GOBIN": str(out)}),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=BUILD_TIMEOUT_SECONDS,
                check=False,
            )
        if done.returncode != 0:
            raise BuildError(f"building {HELM.label} failed (exit {done.returncode}); full log: {log_path}")
        version = subprocess.run(
            [str(out / "helm"), "version", "--short"], capture_output=True, text=True, timeout=60, check=False
        )
        marker = {
            "component": HELM.name,
            "version": HELM_VERSION,
            "go": go.version,
            "seconds": round(time.monotonic() - started, 1),
            "reported_versions": {"helm": version.stdout.strip()},
        }
        (out / MARKER).write_text(json.dumps(marker, indent=2) + "\n")

    entry, built = install_entry(layout, HELM, steps, build)
    steps.step(f"{HELM.label}: {'built' if built else 'cached'} ({entry / 'helm'})")
    return entry / "helm"


if __name__ == "__main__":
    print(ensure_helm(Progress(sys.stderr)))
