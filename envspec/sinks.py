"""Where events go: each output is a sink behind one interface.

A sink is started before an operation runs, receives every `Envelope` through
`emit` (which must be quick: it runs on the event loop), and is closed afterwards
(flushing what it buffered). `TerminalSink` draws events for people,
`JsonLinesSink` writes them for machines, `Recorder` keeps them (tests,
benchmarks); the Redis Streams sink (`envspec.report`) is one more. `Fanout` sends
to several. No sink knows which command speaks.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO, TypeVar

from envspec.events import (  # noqa: F401  (Sink and open_sink are re-exported: the interface lives with the events)
    Envelope,
    EnvironmentReady,
    Event,
    GcDeleted,
    GcDeleteFailed,
    GcSkipped,
    GcStuck,
    GcSweepFailed,
    GcSweepFinished,
    LeaseRenewed,
    NamespaceDeleted,
    NamespaceDeleting,
    ObjectApplied,
    ObjectFailed,
    ObjectProgress,
    ObjectReady,
    OperationFinished,
    OperationStarted,
    Pruned,
    Sink,
    Summary,
    TestFinished,
    TestJobsDeleted,
    TestLog,
    TestProgress,
    TestQueued,
    TestRunStarted,
    TestStarted,
    TestSummary,
    WatchCycle,
    WatchSpecInvalid,
    WatchStarted,
    WatchStopped,
    WatchWarning,
    WaveFinished,
    WaveStarted,
    envelope_to_dict,
    open_sink,
)
from envspec.present import (
    columns,
    cycle_text,
    deletion_reason,
    format_seconds,
    lease_text,
    stuck_reason,
    summary_text,
    sweep_summary,
    test_finished_text,
    test_jobs_deleted_text,
    test_started_text,
    test_summary_text,
    watch_stopped_text,
)


class Fanout:
    """Sends every event to several sinks."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.sinks = tuple(sinks)

    async def start(self) -> None:
        for sink in self.sinks:
            await sink.start()

    def emit(self, envelope: Envelope) -> None:
        for sink in self.sinks:
            sink.emit(envelope)

    async def close(self) -> None:
        for sink in reversed(self.sinks):
            await sink.close()


EventT = TypeVar("EventT")


class Recorder:
    """Keeps every envelope in memory (tests, benchmarks, the result of an operation)."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def start(self) -> None:
        pass

    def emit(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    async def close(self) -> None:
        pass

    @property
    def events(self) -> list[Event]:
        return [e.event for e in self.envelopes]

    def of_type(self, kind: type[EventT]) -> list[EventT]:
        return [e.event for e in self.envelopes if isinstance(e.event, kind)]


class JsonLinesSink:
    """One JSON object per line (`-o json`), flushed at once so CI sees progress live."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    async def start(self) -> None:
        pass

    def emit(self, envelope: Envelope) -> None:
        self.stream.write(json.dumps(envelope_to_dict(envelope), separators=(",", ":")) + "\n")
        self.stream.flush()

    async def close(self) -> None:
        pass


def utc_stamp(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class _Line:
    ref: str
    wave: int
    wave_count: int
    action: str = ""
    state: str = "pending"
    seconds: float | None = None
    final: bool = False


@dataclass
class TerminalSink:
    """Human output of every event: a line per object (`wave 3/6  statefulset/db  1/1 ready  2.4s`)
    and a summary for `up`; gc's table; a line per watch cycle.

    On a terminal the lines of the running wave are redrawn in place as objects
    progress; elsewhere (CI logs) each object gets one line when it is done.
    """

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    live: bool | None = None  # None: live when the stream is a terminal
    _lines: list[_Line] = field(default_factory=list)
    _drawn: int = 0
    _width: int = 0
    _last_draw: float = 0.0
    _redrawing: bool = False  # this wave is redrawn in place (it fits on the screen)
    timestamps: bool = False  # start every line with the UTC time (the log of `gc --loop`)
    _rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # gc's table, printed per sweep
    _tests: list[TestFinished] = field(default_factory=list)  # `test`'s summary table
    _several_tests: bool = False  # log lines get a `<test> | ` prefix
    _test_order: tuple[str, ...] = ()  # the summary table lists tests in the run's (the spec's) order

    def __post_init__(self) -> None:
        if self.live is None:
            isatty = getattr(self.stream, "isatty", None)
            self.live = bool(isatty and isatty())

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._finish_wave()
        self._flush_table()

    def emit(self, envelope: Envelope) -> None:
        event = envelope.event
        match event:
            case WaveStarted():
                self._start_wave(event)
            case ObjectApplied():
                line = self._line(event.ref)
                line.action, line.state, line.seconds = event.action, "applied", event.seconds
                self._update(line)
            case ObjectProgress():
                line = self._line(event.ref)
                line.state, line.seconds = event.message, event.seconds
                self._update(line, throttle=True)
            case ObjectReady():
                line = self._line(event.ref)
                line.state, line.seconds, line.final = event.message, event.seconds, True
                self._update(line)
            case ObjectFailed():
                line = self._line(event.ref)
                line.state, line.seconds, line.final = f"FAILED: {event.message}", event.seconds, True
                self._update(line)
            case WaveFinished():
                self._finish_wave()
            case Pruned():
                self._write(f"pruned    {event.ref}" + (f" in {event.namespace}" if event.namespace else ""))
            case LeaseRenewed():
                self._write(lease_text(event, envelope))
            case NamespaceDeleting():
                self._write(f"deleting  namespace/{event.namespace} (environment {event.environment})")
            case NamespaceDeleted():
                self._write(f"deleted   namespace/{event.namespace} in {format_seconds(event.seconds)}")
            case EnvironmentReady():
                pass  # the summary says it
            case Summary():
                self._finish_wave()
                self._write(summary_text(event))
            case GcDeleted():
                verb = "would delete" if event.dry_run else "deleted"
                self._rows.append((verb, event.namespace, event.environment or "-", deletion_reason(event)))
            case GcSkipped():
                self._rows.append(("skipped", event.namespace, event.environment or "-", event.reason))
            case GcStuck():
                self._rows.append(("stuck", event.namespace, event.environment or "-", stuck_reason(event)))
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
                self._write(
                    "\n".join(
                        [f"invalid edit of {event.file}: environment left as it was"]
                        + [f"  {problem}" for problem in event.problems]
                    )
                )
            case WatchCycle():
                self._write(cycle_text(event))
            case WatchWarning():
                self._write(f"warning: {event.message}")
            case WatchStopped():
                self._write(watch_stopped_text(event))
            case TestRunStarted():
                self._several_tests = len(event.tests) > 1
                self._test_order = event.tests
                self._write(
                    f"run {event.run_id}: {len(event.tests)} test{'s' if len(event.tests) != 1 else ''}"
                    f" ({', '.join(event.tests)})"
                )
            case TestQueued():
                self._write(f"queued    {event.test}: {event.reason}")
            case TestStarted():
                self._write(test_started_text(event))
            case TestProgress():
                self._write(f"running   {event.test}: {event.reason}")
            case TestLog():
                self._write(f"{event.test} | {event.line}" if self._several_tests else event.line)
            case TestFinished():
                self._tests.append(event)
                self._write(test_finished_text(event))
            case TestJobsDeleted():
                self._write(test_jobs_deleted_text(event))
            case TestSummary():
                order = {name: index for index, name in enumerate(self._test_order)}
                rows = sorted(self._tests, key=lambda row: order.get(row.test, len(order)))
                self._write(test_summary_text(rows, event))
                self._tests = []
            case OperationStarted() | OperationFinished():
                pass  # the command's own result says how it ended

    def _start_wave(self, event: WaveStarted) -> None:
        self._finish_wave()
        self._lines = [_Line(ref, event.wave, event.wave_count) for ref in event.objects]
        self._width = max((len(ref) for ref in event.objects), default=0)
        self._drawn = 0
        # Redrawing a block taller than the screen would scribble over the scrollback.
        self._redrawing = bool(self.live) and len(self._lines) < shutil.get_terminal_size().lines - 1
        if self._redrawing:
            self._redraw()

    def _line(self, ref: str) -> _Line:
        for line in self._lines:
            if line.ref == ref:
                return line
        line = _Line(ref, 0, 0)
        self._lines.append(line)
        self._width = max(self._width, len(ref))
        return line

    def _update(self, line: _Line, *, throttle: bool = False) -> None:
        if self._redrawing:
            # Progress of many objects can arrive in bursts; ten frames a second is plenty.
            now = time.monotonic()
            if throttle and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            self._redraw()
        elif line.final:
            self._write(self._format(line))

    def _format(self, line: _Line) -> str:
        wave = f"wave {line.wave}/{line.wave_count}" if line.wave_count else "        "
        seconds = f"  {format_seconds(line.seconds)}" if line.seconds is not None else ""
        return f"{wave}  {line.ref:<{self._width}}  {line.action:<10}  {line.state}{seconds}"

    def _redraw(self) -> None:
        # Move up over the block drawn last time and draw it again, clearing each line.
        out = f"\x1b[{self._drawn}F" if self._drawn else ""
        out += "".join(f"\x1b[2K{self._format(line)}\n" for line in self._lines)
        self._drawn = len(self._lines)
        self.stream.write(out)
        self.stream.flush()

    def _finish_wave(self) -> None:
        if self._redrawing and self._lines:
            self._redraw()
        elif not self._redrawing:
            for line in self._lines:
                if not line.final:
                    self._write(self._format(line))
                    line.final = True
        self._lines, self._drawn, self._redrawing = [], 0, False

    def _flush_table(self) -> None:
        if self._rows:
            self._write(columns([("ACTION", "NAMESPACE", "ENVIRONMENT", "REASON"), *self._rows]))
            self._rows = []

    def _write(self, text: str) -> None:
        if self.timestamps:
            stamp = utc_stamp()
            text = "\n".join(f"{stamp} {line}" for line in text.split("\n"))
        if self._redrawing and self._drawn:
            # Above the live block: clear the block, write, draw the block again below.
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J{text}\n")
            self._drawn = 0
            self._redraw()
            return
        self.stream.write(text + "\n")
        self.stream.flush()
