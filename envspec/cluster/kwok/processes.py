"""Process handling of the kwok provider: which control-plane processes are ours, stopping them,
and running kwokctl with a log of every call.

kwokctl trusts its pid files blindly: after a crash or reboot a recorded pid may be dead,
a zombie, or reused by an unrelated process, and `kwokctl start` then skips the component
while `kwokctl delete` would kill a stranger. So before every kwokctl call the provider
removes pid files that do not name a live process started from this cluster's own bin/
directory (`ClusterProcesses.remove_stale_pid_files`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from envspec.cluster.info import ComponentState
from envspec.cluster.proc import pid_alive, process_argv0, read_pid_file, rss_bytes, run

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")


class ClusterProcesses:
    """The processes kwokctl started for one cluster directory, as far as they are really ours."""

    def __init__(self, cluster_dir: Path) -> None:
        self.cluster_dir = cluster_dir

    def our_pid(self, component: str) -> int | None:
        """The pid of `component` if it is alive and really ours, else None."""
        pid = read_pid_file(self.cluster_dir / "pids" / f"{component}.pid")
        if pid is None or not pid_alive(pid):
            return None
        # kwokctl execs <cluster dir>/bin/<component> (a symlink into the binary cache);
        # a pid running anything else was reused by another process after we died.
        if process_argv0(pid) != str(self.cluster_dir / "bin" / component):
            return None
        return pid

    def components(self) -> tuple[ComponentState, ...]:
        states = []
        for name in COMPONENTS:
            pid = self.our_pid(name)
            states.append(ComponentState(name, pid, rss_bytes(pid) if pid else None))
        return tuple(states)

    def remove_stale_pid_files(self) -> list[str]:
        removed = []
        pids_dir = self.cluster_dir / "pids"
        for pid_file in sorted(pids_dir.glob("*.pid")) if pids_dir.is_dir() else []:
            if self.our_pid(pid_file.stem) is None:
                pid_file.unlink(missing_ok=True)
                removed.append(pid_file.stem)
        return removed

    def stop_all(self) -> None:
        stop_processes([c.pid for c in self.components() if c.pid is not None])


def stop_processes(pids: list[int], grace: float = 10.0) -> None:
    """SIGTERM all at once, SIGKILL whatever is left after `grace` seconds."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def run_logged(
    cmd: Sequence[str], *, env: Mapping[str, str], timeout: float, log_path: Path
) -> subprocess.CompletedProcess[str]:
    """Run a kwokctl command and append its command line, exit code and output to `log_path`."""
    result = run(cmd, env=env, timeout=timeout)
    with log_path.open("a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n# exit {result.returncode}\n{result.stdout}{result.stderr}")
    return result
