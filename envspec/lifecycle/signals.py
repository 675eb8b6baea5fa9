"""Stopping long-running commands (`gc --loop`, `watch`) cleanly on SIGINT / SIGTERM.

The first signal asks the command to stop at its next safe point (between two
sweeps, between two watch cycles); the command decides when. A second signal means
"now": the block is cancelled and `GracefulStop.forced` is set, which the command
turns into exit code 130.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio import CancelScope

from envspec.kube.wait import task_group

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class GracefulStop:
    requested: anyio.Event = field(default_factory=anyio.Event)
    signal_name: str | None = None  # the first signal received
    forced: bool = False  # a second signal cancelled the block


@asynccontextmanager
async def graceful_stop() -> AsyncIterator[GracefulStop]:
    """Listen for SIGINT/SIGTERM for the duration of the block (main thread only)."""
    stop = GracefulStop()
    async with task_group() as group:
        group.start_soon(_listen, stop, group.cancel_scope)
        try:
            yield stop
        finally:
            group.cancel_scope.cancel()


async def _listen(stop: GracefulStop, scope: CancelScope) -> None:
    with anyio.open_signal_receiver(*STOP_SIGNALS) as received:
        async for signum in received:
            if stop.requested.is_set():
                stop.forced = True
                scope.cancel()
                return
            stop.signal_name = signal.Signals(signum).name
            stop.requested.set()
