"""Progress lines with elapsed time, for steps that may take seconds or many minutes.

Why this is not an event sink: `envspec cluster` manages the developer's local control
plane (Go builds, processes, kubeconfig files), not an environment. Its steps have no
environment, namespace or operation id to put in an envelope, nobody consumes them but the
person at the terminal, and they run before any Kubernetes client exists. Routing them
through `envspec.events` would give every consumer of that stream (JSON lines, Redis) a
second vocabulary that describes the tool rather than environments. So they stay plain
stderr lines, and the environment operations never write here.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_elapsed(seconds: float) -> str:
    """`4.2s` under a minute, `3m07s` above: short enough for a line prefix."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


class Progress:
    """Writes `[elapsed] message` lines; elapsed counts from the creation of the object."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def step(self, message: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        stream.write(f"[{format_elapsed(self.elapsed()):>7}] {message}\n")
        stream.flush()


class Quiet(Progress):
    """A Progress that prints nothing (status queries, unit tests)."""

    def step(self, message: str) -> None:
        return None
