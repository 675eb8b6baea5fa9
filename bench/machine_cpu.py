"""Where the machine's CPU went during a phase of a benchmark: the whole machine, and by process.

    with cpu_meter(workers=[pid, ...]) as meter:
        ...
    print(meter.describe())

Throughput that does not grow with a second worker is either the worker waiting (on the
cluster) or the machine being full. The local control plane (etcd, kube-apiserver, the
controllers, kwok) runs on the same cores as the workers, so the figures say which one it is:
the machine's busy share of its cores over the phase (/proc/stat), and the CPU seconds of the
workers and of the control plane's processes (/proc/<pid>/stat) over the same interval. Linux only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
TICKS = os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # without guest time, which is counted in user already
    return total - idle, total


def process_seconds(pid: int) -> float | None:
    """CPU seconds of `pid` so far (user + system), or None if it has gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    after_name = text.rsplit(")", 1)[1].split()  # the name may hold spaces; it ends at the last ')'
    utime, stime = int(after_name[11]), int(after_name[12])
    return (utime + stime) / TICKS


def control_plane_pids() -> dict[int, str]:
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if name.startswith(CONTROL_PLANE):
            found[int(entry.name)] = name
    return found


@dataclass
class CpuMeter:
    workers: Sequence[int]
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    busy_share: float = 0.0  # of all cores, 0-1
    worker_seconds: float = 0.0
    control_plane_seconds: float = 0.0
    wall_seconds: float = 0.0

    def describe(self) -> str:
        return (
            f"machine {self.busy_share * 100:.0f}% busy of {self.cores} cores; CPU s: worker(s) "
            f"{self.worker_seconds:.1f}, control plane {self.control_plane_seconds:.1f}, "
            f"of {self.wall_seconds * self.cores:.1f} available"
        )


def _sum(pids: Sequence[int]) -> dict[int, float]:
    return {pid: seconds for pid in pids if (seconds := process_seconds(pid)) is not None}


@contextmanager
def cpu_meter(workers: Sequence[int]) -> Iterator[CpuMeter]:
    meter = CpuMeter(workers)
    plane = list(control_plane_pids())
    busy0, total0 = machine_ticks()
    workers0, plane0 = _sum(workers), _sum(plane)
    try:
        yield meter
    finally:
        busy1, total1 = machine_ticks()
        workers1, plane1 = _sum(workers), _sum(plane)
        meter.busy_share = (busy1 - busy0) / max(1, total1 - total0)
        meter.wall_seconds = (total1 - total0) / TICKS / meter.cores
        meter.worker_seconds = sum(workers1[p] - workers0.get(p, 0.0) for p in workers1)
        meter.control_plane_seconds = sum(plane1[p] - plane0.get(p, 0.0) for p in plane1)
