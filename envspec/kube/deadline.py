"""One deadline for a whole operation, shared by retries and waits."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Deadline:
    """An instant on the monotonic clock; `None` seconds means no deadline."""

    seconds: float | None
    started: float = field(default_factory=time.monotonic)

    @property
    def at(self) -> float:
        return float("inf") if self.seconds is None else self.started + self.seconds

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def describe(self) -> str:
        return "no deadline" if self.seconds is None else f"{self.seconds:g}s"
