"""What envspec's events mean on the Redis streams: status `type`s, results, and the sink that writes them.

The Redis sink (`redis_sink.RedisStreamSink`) knows no event; this module tells it
which envelopes are phase transitions and with which `type` (`StatusTypes`), which
envelope ends an operation and what its result record is (`Results`), and builds it
(`reporting_sink`). Types use the CDEvents vocabulary where it has a name for the
phase (`environment.created`, `environment.modified`, `environment.deleted`), so
CDEvents consumers can read the stream, and `envspec.*` names otherwise:

    environment ready, its namespace created by this run   environment.created
    environment ready, it existed before (a watch cycle)   environment.modified
    namespace deleted (down, gc)                           environment.deleted
    an up begins / fails                                   envspec.environment.applying / .failed
    a down begins                                          envspec.environment.deleting
    object applied / ready / failed / pruned               envspec.object.applied / .ready / .failed / .pruned
    gc would delete (dry run) / skipped / stuck / failed   envspec.gc.would_delete / .skipped / .stuck / .failed
    one gc sweep finished                                  envspec.gc.swept
    a watch edit that does not validate                    envspec.environment.invalid
    a test run begins / ends (`envspec test`, worker test)  testsuiterun.started / testsuiterun.finished
    a test waits for room in the quota                      testcaserun.queued
    a test's Job is created                                 testcaserun.started
    a running test retries after a failed attempt, or waits  envspec.testcaserun.progress
    a test reached its outcome                              testcaserun.finished
    a test the run never got to (never queued or started)   testcaserun.skipped
    test Jobs deleted (cleanup, interrupted, pruned, ...)   envspec.testsuiterun.jobs_deleted

`testcaserun.finished` and `testsuiterun.finished` entries carry CDEvents' `outcome`
(`success`, `failure`, `cancel`, `error`: see `results.CDEVENTS_OUTCOMES`) beside
envspec's own `result`. The results record of a test operation lists every test
(`results.case_record`), its `run_id`, and the test Jobs in `resources_created`.

A test's `test_progress` is a phase transition of its own (a retry begins, or it
waits again): CDEvents has no name for it. Object progress lines, log lines, waves and
lease renewals are not phase transitions: they stay on the terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from envspec.errors import ExitCode
from envspec.events import (
    Envelope,
    EnvironmentReady,
    GcDeleted,
    GcDeleteFailed,
    GcSkipped,
    GcStuck,
    GcSweepFinished,
    NamespaceDeleted,
    NamespaceDeleting,
    ObjectApplied,
    ObjectFailed,
    ObjectReady,
    OperationFinished,
    OperationStarted,
    Pruned,
    Summary,
    TestFinished,
    TestJobsDeleted,
    TestProgress,
    TestQueued,
    TestRunStarted,
    TestStarted,
    TestSummary,
    WatchCycle,
    WatchSpecInvalid,
    envelope_to_dict,
)
from envspec.report.redis_sink import DEFAULT_MAXLEN, DEFAULT_STREAM_PREFIX, RedisStreamSink
from envspec.report.results import OperationResult, case_record, cdevents_outcome, run_outcome

ENVIRONMENT_CREATED = "environment.created"
ENVIRONMENT_MODIFIED = "environment.modified"
ENVIRONMENT_DELETED = "environment.deleted"
# Operations that bring an environment up: their start is "applying", their failure "failed".
APPLYING_OPERATIONS = frozenset({"up", "create"})
DELETING_OPERATIONS = frozenset({"down", "delete"})
TESTCASERUN_QUEUED = "testcaserun.queued"
TESTCASERUN_STARTED = "testcaserun.started"
TESTCASERUN_FINISHED = "testcaserun.finished"
TESTCASERUN_SKIPPED = "testcaserun.skipped"
TESTSUITERUN_STARTED = "testsuiterun.started"
# CDEvents has no event for a retry or for deleting a run's Jobs: envspec's own names, beside CDEvents'.
TESTCASERUN_PROGRESS = "envspec.testcaserun.progress"
TESTSUITERUN_JOBS_DELETED = "envspec.testsuiterun.jobs_deleted"
TESTSUITERUN_FINISHED = "testsuiterun.finished"


class StatusTypes:
    """`envelope -> type | None`; remembers, per operation, whether it created the namespace.

    `environment.created` versus `environment.modified` depends on an earlier event of
    the same operation (the namespace's `object_applied` with action `created`), hence
    the state. It is called in emit order, as the sink calls it.
    """

    def __init__(self) -> None:
        self._created_namespace: set[str] = set()  # operation ids whose run created the namespace
        # (operation id, test) of tests queued or started: CDEvents' `skipped` is only for the others.
        self._begun: set[tuple[str, str]] = set()

    def __call__(self, envelope: Envelope) -> str | None:
        event = envelope.event
        match event:
            case OperationStarted():
                if envelope.operation in APPLYING_OPERATIONS:
                    return "envspec.environment.applying"
                if envelope.operation in DELETING_OPERATIONS:
                    return "envspec.environment.deleting"
                return None
            case ObjectApplied():
                if event.ref.startswith("namespace/") and event.action == "created":
                    self._created_namespace.add(envelope.operation_id)
                return "envspec.object.applied"
            case ObjectReady():
                return "envspec.object.ready"
            case ObjectFailed():
                return "envspec.object.failed"
            case Pruned():
                return "envspec.object.pruned"
            case EnvironmentReady():
                created = envelope.operation_id in self._created_namespace
                self._created_namespace.discard(envelope.operation_id)
                return ENVIRONMENT_CREATED if created else ENVIRONMENT_MODIFIED
            case Summary(ok=False):
                return "envspec.environment.failed"
            case NamespaceDeleting():
                return None  # the operation's start already said "deleting"
            case NamespaceDeleted():
                return ENVIRONMENT_DELETED
            case GcDeleted():
                return "envspec.gc.would_delete" if event.dry_run else ENVIRONMENT_DELETED
            case GcSkipped():
                return "envspec.gc.skipped"
            case GcStuck():
                return "envspec.gc.stuck"
            case GcDeleteFailed():
                return "envspec.gc.failed"
            case GcSweepFinished():
                return "envspec.gc.swept"
            case WatchCycle():
                return ENVIRONMENT_MODIFIED if event.ok else "envspec.environment.failed"
            case WatchSpecInvalid():
                return "envspec.environment.invalid"
            case TestRunStarted():
                return TESTSUITERUN_STARTED
            case TestQueued():
                self._begun.add((envelope.operation_id, event.test))
                return TESTCASERUN_QUEUED
            case TestStarted():
                self._begun.add((envelope.operation_id, event.test))
                return TESTCASERUN_STARTED
            case TestProgress():
                return TESTCASERUN_PROGRESS
            case TestJobsDeleted():
                return TESTSUITERUN_JOBS_DELETED
            case TestFinished():
                begun = (envelope.operation_id, event.test) in self._begun
                self._begun.discard((envelope.operation_id, event.test))
                return TESTCASERUN_FINISHED if begun or event.job is not None else TESTCASERUN_SKIPPED
            case TestSummary():
                return TESTSUITERUN_FINISHED
            case OperationFinished():
                # Its result says how it ended; forget it (a worker's sink lives for many operations).
                self._created_namespace.discard(envelope.operation_id)
                self._begun = {key for key in self._begun if key[0] != envelope.operation_id}
        return None


class Results:
    """`envelope -> OperationResult | None`: the `<prefix>:results` record of an operation's last event
    (and of each watch cycle).

    A test operation's record also lists its tests, as their `test_finished` events said,
    its `run_id`, and its test Jobs in `resources_created` (also when tests failed and the
    operation ended with an error): it remembers them per operation until its end.
    Called in emit order, as the sink calls it.
    """

    def __init__(self) -> None:
        self._runs: dict[str, _TestRun] = {}  # operation id -> what its test run said so far

    def __call__(self, envelope: Envelope) -> OperationResult | None:
        event = envelope.event
        match event:
            case TestRunStarted():
                self._runs[envelope.operation_id] = _TestRun(event.run_id)
            case TestStarted():
                self._run(envelope).jobs.append(f"job/{event.job}")
            case TestFinished():
                self._run(envelope).tests.append(
                    case_record(
                        event.test,
                        event.result,
                        duration_seconds=event.duration_seconds,
                        attempts=event.attempts,
                        reason=event.reason,
                        cause=event.cause,
                    )
                )
            case OperationFinished():
                return self._finished(envelope, event)
            case WatchCycle():
                return OperationResult(
                    job_id=envelope.operation_id,
                    operation=envelope.operation,
                    ok=event.ok,
                    execution_id=envelope.environment,
                    environment=envelope.environment,
                    namespace=envelope.namespace,
                    resources_created=(*event.created, *event.configured),
                    duration_ms=round(event.seconds * 1000),
                    error=None if event.ok else event.message,
                    time=envelope.time,
                    extra={"cycle": event.cycle, "pruned": list(event.pruned)},
                )
        return None

    def _run(self, envelope: Envelope) -> _TestRun:
        return self._runs.setdefault(envelope.operation_id, _TestRun(None))

    def _finished(self, envelope: Envelope, event: OperationFinished) -> OperationResult:
        extra: dict[str, object] = {"exit_code": event.exit_code}
        resources = event.resources
        run = self._runs.pop(envelope.operation_id, None)
        if run is not None:
            extra.update(run_id=run.run_id, tests=run.tests)
            # A run whose tests failed ends with an error, which names no resources: its Jobs are still there.
            resources = resources or tuple(run.jobs)
        return OperationResult(
            job_id=envelope.operation_id,
            operation=envelope.operation,
            ok=event.ok,
            execution_id=envelope.environment,
            environment=envelope.environment,
            namespace=envelope.namespace,
            resources_created=resources,
            duration_ms=round(event.seconds * 1000),
            error=None if event.ok else event.message or f"exit code {event.exit_code}",
            time=envelope.time,
            extra=extra,
        )


class _TestRun:
    def __init__(self, run_id: str | None) -> None:
        self.run_id = run_id
        self.jobs: list[str] = []
        self.tests: list[dict[str, object]] = []


def reporting_sink(
    url: str,
    *,
    stream_prefix: str = DEFAULT_STREAM_PREFIX,
    maxlen: int = DEFAULT_MAXLEN,
    results: bool = True,
    on_warning: Callable[[str], None] | None = None,
) -> RedisStreamSink[Envelope]:
    """The Redis sink for envspec's events: status entries, and (unless `results` is false) results.

    The worker passes `results=False`: it writes each request's result itself, before
    acknowledging the request, rather than through a best-effort buffer.
    """
    return RedisStreamSink[Envelope](
        url,
        status_type=StatusTypes(),
        to_fields=_fields,
        result_of=Results() if results else None,
        stream_prefix=stream_prefix,
        maxlen=maxlen,
        on_warning=on_warning,
    )


def _fields(envelope: Envelope) -> Mapping[str, object]:
    """The event's JSON form; a finished test or test run adds its CDEvents `outcome`."""
    fields = envelope_to_dict(envelope)
    event = envelope.event
    if isinstance(event, TestFinished):
        fields["outcome"] = cdevents_outcome(event.result)
    elif isinstance(event, TestSummary):
        fields["outcome"] = run_outcome(
            failed=event.failed,
            timed_out=event.timed_out,
            errors=event.errors,
            interrupted=event.exit_code == ExitCode.INTERRUPTED,
        )
    return fields
