"""What a provider reports about a cluster: shared by the kwok and kind providers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterInfo:
    """What callers need to talk to a running cluster."""

    name: str
    provider: str
    kubeconfig: str
    server: str


@dataclass(frozen=True)
class ComponentState:
    name: str
    pid: int | None  # None when not running
    rss: int | None = None


@dataclass(frozen=True)
class ClusterStatus:
    name: str
    provider: str
    exists: bool
    running: bool
    kubeconfig: str | None = None
    server: str | None = None
    detail: str = ""
    components: tuple[ComponentState, ...] = ()
    nodes_ready: int | None = None
    nodes_total: int | None = None

    @property
    def rss_total(self) -> int | None:
        values = [c.rss for c in self.components if c.rss is not None]
        return sum(values) if values else None
