"""Where gc, extend and watch report to: their events (appended to `envspec.events`) as
human lines or JSON lines.

These sinks take both kinds of events: the lifecycle ones they format themselves, and
the events of `up` (which `watch` runs), which they pass to the sink of `envspec.events`
made for them. So a command has one sink, whatever stage speaks.
"""

from __future__ import annotations

import sys
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from envspec.events import (
    Event,
    GcDeleted,
    GcDeleteFailed,
    GcSkipped,
    GcStuck,
    GcSweepFailed,
    GcSweepFinished,
    LeaseRenewed,
    LifecycleEvent,
    Recorder,
    Sink,
    WatchCycle,
    WatchSpecInvalid,
    WatchStarted,
    WatchStopped,
    WatchWarning,
    format_expiry,
    format_seconds,
    format_span,
)

LIFECYCLE_EVENTS: tuple[type, ...] = typing.get_args(LifecycleEvent)
AnyEvent = Event  # every event, lifecycle ones included, is an `events.Event`
LifecycleSink = Sink  # the one sink protocol of envspec.events
EventLog = Recorder  # keeps every event in memory (tests, benchmarks)


def utc_stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class LifecycleTerminalSink:
    """Lines for people. `up`'s events go to `inner` (its live progress), or nowhere without one.

    gc's per-namespace events are collected and printed as one aligned table when the
    sweep finishes, followed by a summary line; with `timestamps` (the `--loop` log)
    every line starts with the UTC time.
    """

    stream: TextIO = field(default_factory=lambda: sys.stdout)
    inner: Sink | None = None
    timestamps: bool = False
    _rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def emit(self, event: AnyEvent) -> None:
        if not isinstance(event, LIFECYCLE_EVENTS):
            if self.inner is not None:
                self.inner.emit(event)
            elif isinstance(event, LeaseRenewed):  # extend and keep-alive, without up's progress
                self._write(lease_text(event))
            return
        match event:
            case GcDeleted():
                verb = "would delete" if event.dry_run else "deleted"
                self._rows.append((verb, event.namespace, event.environment or "-", deletion_reason(event)))
            case GcSkipped():
                self._rows.append(("skipped", event.namespace, event.environment or "-", event.reason))
            case GcStuck():
                reason = f"Terminating for {format_span(event.terminating_seconds)}: " + (
                    "; ".join(event.blockers) or "no condition says why"
                )
                self._rows.append(("stuck", event.namespace, event.environment or "-", reason))
            case GcDeleteFailed():
                self._rows.append(("FAILED", event.namespace, event.environment or "-", event.message))
            case GcSweepFinished():
                self._flush_table()
                self._write(sweep_summary(event))
            case GcSweepFailed():
                self._flush_table()
                retry = f"; trying again in {format_seconds(event.retry_in_seconds)}" if event.retry_in_seconds else ""
                self._write(f"gc: sweep failed: {event.message}{retry}")
            case WatchStarted():
                self._write(
                    f"watching {event.file} (environment {event.environment}, namespace {event.namespace}); "
                    "Ctrl-C to stop"
                )
            case WatchSpecInvalid():
                lines = [f"invalid edit of {event.file}: environment left as it was"]
                lines += [f"  {problem}" for problem in event.problems]
                self._write("\n".join(lines))
            case WatchCycle():
                self._write(cycle_text(event))
            case WatchWarning():
                self._write(f"warning: {event.message}")
            case WatchStopped():
                if event.taken_down:
                    self._write(f"stopped watching; environment {event.environment} taken down")
                else:
                    self._write(
                        f"stopped watching; environment {event.environment} left running in namespace "
                        f"{event.namespace} (envspec down --name {event.environment} deletes it)"
                    )

    def _flush_table(self) -> None:
        if not self._rows:
            return
        header = ("ACTION", "NAMESPACE", "ENVIRONMENT", "REASON")
        rows = [header, *self._rows]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            self._write(
                "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
            )
        self._rows = []

    def _write(self, text: str) -> None:
        if self.timestamps:
            stamp = utc_stamp()
            text = "\n".join(f"{stamp} {line}" for line in text.split("\n"))
        self.stream.write(text + "\n")
        self.stream.flush()


def deletion_reason(event: GcDeleted) -> str:
    text = f"expired at {event.expired_at} ({format_span(event.expired_seconds_ago)} ago)"
    if event.age_seconds is not None:
        text += f", age {format_span(event.age_seconds)}"
    return text


def sweep_summary(event: GcSweepFinished) -> str:
    deleted = f"{event.deleted} would be deleted" if event.dry_run else f"{event.deleted} deleted"
    parts = [deleted, f"{event.kept} not expired", f"{event.never} never expire"]
    for count, label in (
        (event.skipped, "skipped"),
        (event.terminating, "terminating"),
        (event.stuck, "stuck"),
        (event.failed, "failed"),
    ):
        if count:
            parts.append(f"{count} {label}")
    noun = "environment" if event.examined == 1 else "environments"
    dry = " (dry run: nothing deleted)" if event.dry_run else ""
    return f"gc: {event.examined} {noun} in {format_seconds(event.seconds)}: {', '.join(parts)}{dry}"


def lease_text(event: LeaseRenewed) -> str:
    return f"lease     namespace/{event.namespace}: {format_expiry(event.expires_at)}"


def cycle_text(event: WatchCycle) -> str:
    """`cycle 3  +deployment/cache ~deployment/api -service/old  3 writes  ready in 0.8s`."""
    changes = [f"+{ref}" for ref in event.created]
    changes += [f"~{ref}" for ref in event.configured]
    changes += [f"-{ref}" for ref in event.pruned]
    what = " ".join(changes) or "no change"
    if not event.ok:
        return f"cycle {event.cycle}  {what}  FAILED after {format_seconds(event.seconds)}: {event.message}"
    if not changes:
        return f"cycle {event.cycle}  no change  ({format_seconds(event.seconds)})"
    writes = f"{event.writes} write{'s' if event.writes != 1 else ''}"
    return f"cycle {event.cycle}  {what}  {writes}  ready in {format_seconds(event.seconds)}"
