"""The one stream of typed events every operation reports through.

Operations emit events through an `Emitter` and never know where they go. The
emitter wraps each event in an `Envelope` (operation id, operation, environment,
namespace, time) and hands it to a sink (`envspec.sinks`): the terminal, JSON
lines, a recorder, Redis Streams. Sinks never know which command speaks.

Events carry names, states and durations, never manifest contents: a secret value
can reach an event only through an API server message, and an emitter made with
`with_secrets` masks the known values in every text field before any sink sees it.

The JSON form of every event (`envelope_to_dict`) uses snake_case keys: the event's
name in `event`, the envelope's fields, then the event's own fields.
"""

from __future__ import annotations

import dataclasses
import secrets as random_secrets
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from envspec.meta import format_instant_ms

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
    previous: str | None = None  # `extend`: the expiry before, as it was written


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


# ---------------------------------------------------------------- every operation


@dataclass(frozen=True)
class OperationStarted:
    """The first event of every operation."""

    detail: str = ""  # e.g. the spec file


@dataclass(frozen=True)
class OperationFinished:
    """The last event of every operation: how it ended.

    `resources` names what the operation created or applied (`namespace/x`,
    `deployment/api`, ...), for reports such as the results stream.
    """

    ok: bool
    exit_code: int
    seconds: float
    message: str = ""  # why it failed, when it did
    resources: tuple[str, ...] = ()


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


# ---------------------------------------------------------------- `envspec test`


@dataclass(frozen=True)
class TestRunStarted:
    """A run of tests begins: its id and the tests it will run, in order."""

    __test__ = False  # not a pytest test class, whatever its name

    run_id: str
    tests: tuple[str, ...]


@dataclass(frozen=True)
class TestQueued:
    """A test waits for room in the namespace's quota before its Job is created."""

    __test__ = False  # not a pytest test class, whatever its name

    test: str
    reason: str


@dataclass(frozen=True)
class TestStarted:
    """A test's Job was created."""

    __test__ = False  # not a pytest test class, whatever its name

    test: str
    job: str
    run_id: str
    image: str
    timeout_seconds: int | None  # the Job's activeDeadlineSeconds
    retries: int  # the Job's backoffLimit


@dataclass(frozen=True)
class TestProgress:
    """A running test's state changed: retrying after a failed attempt, waiting for room in the quota."""

    __test__ = False  # not a pytest test class, whatever its name

    test: str
    job: str
    attempts: int
    reason: str


@dataclass(frozen=True)
class TestLog:
    """One line a test's container wrote (in JSON only with `--logs`)."""

    __test__ = False  # not a pytest test class, whatever its name

    test: str
    pod: str
    log_time: str | None  # the kubelet's timestamp, RFC 3339 with nanoseconds
    line: str


@dataclass(frozen=True)
class TestFinished:
    """A test reached its outcome (or was cut short: `skipped`)."""

    __test__ = False  # not a pytest test class, whatever its name

    test: str
    job: str | None  # None: its Job was never created
    result: str  # passed, failed, timed_out, error, skipped
    duration_seconds: float
    attempts: int
    retries: int
    reason: str | None
    cause: str | None  # machine-readable: BackoffLimitExceeded, DeadlineExceeded, ErrImagePull, Unschedulable...
    exit_code: int | None
    run_id: str  # the run it belongs to (as in test_started), so a consumer of this event alone can name the Job's run


@dataclass(frozen=True)
class TestJobsDeleted:
    """Test Jobs deleted: `cleanup` (--cleanup), `interrupted` (a signal), `pruned` (older runs),
    `not started` (could not start), `timed out` (still running when --timeout passed)."""

    __test__ = False  # not a pytest test class, whatever its name

    run_id: str | None
    jobs: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class TestSummary:
    """The last event of a test run."""

    __test__ = False  # not a pytest test class, whatever its name

    run_id: str
    passed: int
    failed: int
    timed_out: int
    errors: int
    skipped: int
    duration_seconds: float
    junit: str | None  # the report's path, when one was written
    exit_code: int


TestEvent = (
    TestRunStarted | TestQueued | TestStarted | TestProgress | TestLog | TestFinished | TestJobsDeleted | TestSummary
)

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

# Every event envspec emits.
Event = (
    OperationStarted
    | OperationFinished
    | WaveStarted
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
    | TestEvent
)


# ---------------------------------------------------------------- the envelope


@dataclass(frozen=True)
class Envelope:
    """An event and where it comes from: what a sink receives."""

    operation_id: str  # one id per command run (or worker job)
    operation: str  # "up", "down", "gc", "watch", ...
    environment: str | None
    namespace: str | None
    time: datetime  # aware, UTC
    event: Event

    @property
    def name(self) -> str:
        return event_name(self.event)


def event_name(event: Event) -> str:
    """`ObjectApplied` -> `object_applied`: the `event` field of the JSON form."""
    name = type(event).__name__
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def event_fields(event: Event) -> dict[str, Any]:
    """The event's own fields, JSON-ready: floats rounded to milliseconds, tuples as lists."""
    fields = dataclasses.asdict(event)
    for key, value in fields.items():
        if isinstance(value, float):
            fields[key] = round(value, 3)
        elif isinstance(value, tuple):
            fields[key] = [round(v, 3) if isinstance(v, float) else v for v in value]
    return fields


def envelope_to_dict(envelope: Envelope) -> dict[str, Any]:
    """The JSON form: `event`, `time`, the envelope's fields, then the event's (which win on a clash)."""
    return {
        "event": envelope.name,
        "time": format_instant_ms(envelope.time),
        "operation_id": envelope.operation_id,
        "operation": envelope.operation,
        "environment": envelope.environment,
        "namespace": envelope.namespace,
        **event_fields(envelope.event),
    }


def new_operation_id() -> str:
    """Short, unique enough to tell runs apart in a stream: 12 hex digits."""
    return random_secrets.token_hex(6)


MASK = "******"


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value masked (longest first, so a value containing another is masked whole)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class Sink(Protocol):
    """Where events go (implementations: `envspec.sinks`, `envspec.report`)."""

    async def start(self) -> None: ...

    def emit(self, envelope: Envelope) -> None: ...  # must be quick: it runs on the event loop

    async def close(self) -> None: ...  # flushes what it buffered


@asynccontextmanager
async def open_sink(sink: Sink) -> AsyncIterator[Sink]:
    """Start `sink` for the duration of the block, and close it however the block ends."""
    await sink.start()
    try:
        yield sink
    finally:
        await sink.close()


class _Silent:
    async def start(self) -> None:
        pass

    def emit(self, envelope: Envelope) -> None:
        pass

    async def close(self) -> None:
        pass


class Emitter:
    """What operations emit through: stamps the envelope, masks secrets, passes to the sink."""

    def __init__(
        self,
        sink: Sink,
        *,
        operation: str,
        operation_id: str | None = None,
        environment: str | None = None,
        namespace: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        secrets: Iterable[str] = (),
    ) -> None:
        self.sink = sink
        self.operation = operation
        self.operation_id = operation_id or new_operation_id()
        self.environment = environment
        self.namespace = namespace
        self.clock = clock
        self.secrets: tuple[str, ...] = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def emit(self, event: Event) -> None:
        if self.secrets:
            event = self._redacted(event)
        envelope = Envelope(self.operation_id, self.operation, self.environment, self.namespace, self.clock(), event)
        self.sink.emit(envelope)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def about(self, environment: str | None, namespace: str | None) -> Emitter:
        """This emitter, for events about one environment (same operation, same sink)."""
        return self._copy(environment=environment, namespace=namespace)

    def silenced(self) -> Emitter:
        """This emitter, dropping every event (watch's per-object events when only its cycle lines are wanted)."""
        return Emitter(
            _Silent(),
            operation=self.operation,
            operation_id=self.operation_id,
            environment=self.environment,
            namespace=self.namespace,
            clock=self.clock,
            secrets=self.secrets,
        )

    def with_secrets(self, secrets: Iterable[str]) -> Emitter:
        """This emitter, also masking `secrets` in every text field."""
        return self._copy(secrets=(*self.secrets, *secrets))

    def _copy(self, **changes: Any) -> Emitter:
        fields: dict[str, Any] = {
            "operation": self.operation,
            "operation_id": self.operation_id,
            "environment": self.environment,
            "namespace": self.namespace,
            "clock": self.clock,
            "secrets": self.secrets,
        }
        fields.update(changes)
        return Emitter(self.sink, **fields)

    def _redacted(self, event: Event) -> Event:
        changes: dict[str, Any] = {}
        for item in dataclasses.fields(event):
            value = getattr(event, item.name)
            if isinstance(value, str):
                changes[item.name] = self.redact(value)
            elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
                changes[item.name] = tuple(self.redact(v) for v in value)
        return dataclasses.replace(event, **changes)
