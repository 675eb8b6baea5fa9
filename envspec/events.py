"""The one stream of typed events that `up`, `down` and later `watch` report through.

Stages emit events and never know where they go; a sink decides: `TerminalSink`
draws a live line per object and a summary, `JsonLinesSink` writes one JSON object
per line for CI (`-o json`). A sink is anything with `emit(event)` (see `Sink`),
so a Redis Streams sink is one small class.

Events carry names, states and durations, never manifest contents: a secret value
can reach an event only through an API server message, and `RedactingSink` masks
the known values in every text field before any sink sees it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TextIO, TypeVar

Action = Literal["created", "configured", "unchanged"]


@dataclass(frozen=True)
class WaveStarted:
    wave: int  # 1-based position among the plan's waves
    wave_count: int
    objects: tuple[str, ...]  # refs, e.g. ("deployment/api", "service/api")


@dataclass(frozen=True)
class ObjectApplied:
    wave: int
    wave_count: int
    ref: str
    namespace: str | None
    action: Action
    seconds: float  # since the wave started


@dataclass(frozen=True)
class ObjectProgress:
    wave: int
    wave_count: int
    ref: str
    namespace: str | None
    message: str  # e.g. "0/1 ready"
    seconds: float


@dataclass(frozen=True)
class ObjectReady:
    wave: int
    wave_count: int
    ref: str
    namespace: str | None
    message: str
    seconds: float


@dataclass(frozen=True)
class ObjectFailed:
    wave: int
    wave_count: int
    ref: str
    namespace: str | None
    message: str
    seconds: float


@dataclass(frozen=True)
class WaveFinished:
    wave: int
    wave_count: int
    seconds: float


@dataclass(frozen=True)
class Pruned:
    ref: str
    namespace: str | None
    wave: int | None  # the wave the object had been applied in


@dataclass(frozen=True)
class LeaseRenewed:
    namespace: str
    expires_at: str | None  # RFC 3339 UTC; None: never expires


@dataclass(frozen=True)
class EnvironmentReady:
    environment: str
    namespace: str
    seconds: float


@dataclass(frozen=True)
class NamespaceDeleting:
    environment: str
    namespace: str


@dataclass(frozen=True)
class NamespaceDeleted:
    environment: str
    namespace: str
    seconds: float


@dataclass(frozen=True)
class Summary:
    """The last event of `up`: what happened, how long each wave took."""

    environment: str
    namespace: str
    ok: bool
    created: int
    configured: int
    unchanged: int
    pruned: int
    wave_seconds: tuple[float, ...]
    seconds: float
    expires_at: str | None
    waited: bool = True
    message: str = ""  # why it failed, when it did


# `Event`, the union of every event type, is defined at the end of this module.


class Sink(Protocol):
    """Where events go. `emit` must be quick: it runs on the event loop."""

    def emit(self, event: Event) -> None: ...


def event_name(event: Event) -> str:
    """`ObjectApplied` -> `object_applied`: the `event` field of the JSON form."""
    name = type(event).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def event_to_dict(event: Event, *, now: datetime | None = None) -> dict[str, Any]:
    stamp = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    fields = dataclasses.asdict(event)
    for key, value in fields.items():
        if isinstance(value, float):
            fields[key] = round(value, 3)
        elif isinstance(value, tuple):
            fields[key] = [round(v, 3) if isinstance(v, float) else v for v in value]
    return {"event": event_name(event), "time": stamp, **fields}


class Fanout:
    """Sends every event to several sinks."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self.sinks = tuple(sinks)

    def emit(self, event: Event) -> None:
        for sink in self.sinks:
            sink.emit(event)


EventT = TypeVar("EventT")


class Recorder:
    """Keeps events in memory (tests, benchmarks)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, kind: type[EventT]) -> list[EventT]:
        return [e for e in self.events if isinstance(e, kind)]


class RedactingSink:
    """Masks secret values in every text of an event before passing it on."""

    MASK = "******"

    def __init__(self, inner: Sink, secrets: Iterable[str]) -> None:
        self.inner = inner
        # Longest first, so a value containing another is masked whole.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, self.MASK)
        return text

    def emit(self, event: Event) -> None:
        changes: dict[str, Any] = {}
        for item in dataclasses.fields(event):
            value = getattr(event, item.name)
            if isinstance(value, str):
                changes[item.name] = self.redact(value)
            elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
                changes[item.name] = tuple(self.redact(v) for v in value)
        self.inner.emit(dataclasses.replace(event, **changes))


class JsonLinesSink:
    """One JSON object per line (`-o json`), flushed at once so CI sees progress live."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def emit(self, event: Event) -> None:
        self.stream.write(json.dumps(event_to_dict(event), separators=(",", ":")) + "\n")
        self.stream.flush()


def format_seconds(seconds: float) -> str:
    """`0.4s`, `12.3s`, `2m05s`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def format_expiry(expires_at: str | None, *, now: datetime | None = None) -> str:
    """`expires in 1h59m (2026-01-01T12:00:00Z)`, `expired 3m ago`, `never expires`."""
    if expires_at is None:
        return "never expires"
    try:
        instant = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return f"expiry unreadable ({expires_at})"
    left = (instant - (now or datetime.now(UTC))).total_seconds()
    if left < 0:
        return f"expired {format_span(-left)} ago ({expires_at})"
    return f"expires in {format_span(left)} ({expires_at})"


def format_span(seconds: float) -> str:
    """Coarse human duration: `45s`, `12m`, `1h59m`, `2d3h`."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        hours, minutes = divmod(whole // 60, 60)
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(whole // 3600, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


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
    """Human output: a line per object (`wave 3/6  statefulset/db  1/1 ready  2.4s`), then a summary.

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

    def __post_init__(self) -> None:
        if self.live is None:
            isatty = getattr(self.stream, "isatty", None)
            self.live = bool(isatty and isatty())

    def emit(self, event: Event) -> None:
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
                self._write(f"lease     namespace/{event.namespace}: {format_expiry(event.expires_at)}")
            case NamespaceDeleting():
                self._write(f"deleting  namespace/{event.namespace} (environment {event.environment})")
            case NamespaceDeleted():
                self._write(f"deleted   namespace/{event.namespace} in {format_seconds(event.seconds)}")
            case EnvironmentReady():
                pass  # the summary says it
            case Summary():
                self._finish_wave()
                self._write(summary_text(event))

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

    def _write(self, text: str) -> None:
        if self._redrawing and self._drawn:
            # Above the live block: clear the block, write, draw the block again below.
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J{text}\n")
            self._drawn = 0
            self._redraw()
            return
        self.stream.write(text + "\n")
        self.stream.flush()


def summary_text(summary: Summary) -> str:
    counts = f"{summary.created} created, {summary.configured} configured, {summary.unchanged} unchanged"
    if summary.pruned:
        counts += f", {summary.pruned} pruned"
    waves = " ".join(f"{i}:{format_seconds(s)}" for i, s in enumerate(summary.wave_seconds, 1))
    where = f"environment {summary.environment} (namespace {summary.namespace})"
    if not summary.ok:
        head = f"FAILED {where} after {format_seconds(summary.seconds)}: {summary.message}"
    elif not summary.waited:
        head = f"applied {where} in {format_seconds(summary.seconds)} (not waiting for readiness)"
    else:
        head = f"ready   {where} in {format_seconds(summary.seconds)}"
    lines = [head, f"        {counts}"]
    if waves:
        lines.append(f"        waves {waves}")
    lines.append(f"        {format_expiry(summary.expires_at)}")
    return "\n".join(lines)


# ---------------------------------------------------------------- lifecycle: gc and watch
# Appended for `envspec gc` and `envspec watch` (envspec/lifecycle/, envspec/watch.py).
# `extend` and the watch keep-alive report through `LeaseRenewed` above.


@dataclass(frozen=True)
class GcDeleted:
    """gc deleted (or, with `dry_run`, would delete) an expired environment's namespace."""

    namespace: str
    environment: str
    expired_at: str  # RFC 3339 UTC, as read from the namespace
    expired_seconds_ago: float
    age_seconds: float | None  # since the namespace was created
    dry_run: bool


@dataclass(frozen=True)
class GcSkipped:
    """gc could not decide about a managed namespace (missing or unreadable expiry) and left it alone."""

    namespace: str
    environment: str
    reason: str


@dataclass(frozen=True)
class GcStuck:
    """A managed namespace has been Terminating for longer than gc's limit."""

    namespace: str
    environment: str
    terminating_seconds: float
    blockers: tuple[str, ...]  # conditions and finalizers that hold the deletion


@dataclass(frozen=True)
class GcDeleteFailed:
    namespace: str
    environment: str
    message: str


@dataclass(frozen=True)
class GcSweepFinished:
    examined: int  # managed namespaces listed
    deleted: int  # or would be, with dry_run
    kept: int  # expiry in the future
    never: int  # ttl never
    skipped: int  # expiry missing or unreadable
    terminating: int  # already being deleted (stuck ones included)
    stuck: int
    failed: int
    dry_run: bool
    seconds: float


@dataclass(frozen=True)
class GcSweepFailed:
    """A whole sweep failed (API down); `--loop` tries again after `retry_in_seconds`."""

    message: str
    retry_in_seconds: float | None


@dataclass(frozen=True)
class WatchStarted:
    file: str
    environment: str
    namespace: str


@dataclass(frozen=True)
class WatchSpecInvalid:
    """An edit made the spec invalid; the environment was left exactly as it was."""

    file: str
    problems: tuple[str, ...]  # `FILE:LINE:COL: path: message`


@dataclass(frozen=True)
class WatchCycle:
    """One reapply after an edit: what changed and how long until applied and ready.

    When the cycle failed (`ok` false), created/configured/pruned say what the edit
    was meant to change, as far as it is known.
    """

    cycle: int
    created: tuple[str, ...]  # refs, e.g. "deployment/cache"
    configured: tuple[str, ...]
    pruned: tuple[str, ...]
    writes: int  # write requests sent (0 when unknown: the cycle failed)
    seconds: float  # from the edit being noticed to everything changed being ready
    ok: bool
    message: str = ""  # why it failed, when it did


@dataclass(frozen=True)
class WatchStopped:
    environment: str
    namespace: str
    taken_down: bool  # --down-on-exit


@dataclass(frozen=True)
class WatchWarning:
    """Something went wrong outside a cycle (the first up, a keep-alive renewal); watch goes on."""

    message: str


# gc's and watch's events.
LifecycleEvent = (
    GcDeleted
    | GcSkipped
    | GcStuck
    | GcDeleteFailed
    | GcSweepFinished
    | GcSweepFailed
    | WatchStarted
    | WatchSpecInvalid
    | WatchCycle
    | WatchStopped
    | WatchWarning
)


# Every event envspec emits: `up`/`down`'s, then gc's and watch's.
Event = (
    WaveStarted
    | ObjectApplied
    | ObjectProgress
    | ObjectReady
    | ObjectFailed
    | WaveFinished
    | Pruned
    | LeaseRenewed
    | EnvironmentReady
    | NamespaceDeleting
    | NamespaceDeleted
    | Summary
    | LifecycleEvent
)
