"""`envspec test`: run the spec's tests as Jobs inside a ready environment.

One command is one run with a short run id. Each selected test becomes the Job the
compiler makes of it (`render --tests`), named `<test>-<run id>` and labelled with
the environment, the test and the run id (`testrun.naming`). The run:

1. checks every selected test can fit in the namespace's quota beside the
   environment's workloads (before anything is created; with `--up`, before `up`);
2. with `--up`, brings the environment up through the `up` operation itself; else
   requires every planned object to be live and ready (exit 4 naming what is not);
3. creates the Jobs, greedily in the spec's order while their limits fit in the
   room the quota leaves (a test that must wait is announced: `test_queued`); a
   running test's room is free again once its pod has succeeded (`has_room`);
4. follows them through the shared `ClusterView` informers (Jobs, pods, events of
   the namespace) and `testrun.outcome.outcome_of`, streams each pod's log
   (`kube.logs.stream_log`), and fails a test at once when its pod cannot start
   (its Job is then deleted: it would only hold quota);
5. writes the JUnit report, prunes runs older than the last `KEEP_RUNS` per test,
   deletes this run's Jobs with `--cleanup`, and with `--down` takes the
   environment down whatever happened.

SIGINT/SIGTERM (when `handle_signals`): the report is written with what finished,
this run's Jobs are deleted unless `keep`, and the run ends with exit code 130.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup

from envspec.errors import ClusterError, EnvspecError, ExitCode, NotReadyError
from envspec.events import (
    Emitter,
    TestFinished,
    TestJobsDeleted,
    TestLog,
    TestProgress,
    TestQueued,
    TestRunStarted,
    TestStarted,
    TestSummary,
)
from envspec.inventory import Inventory
from envspec.kube import kinds
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.logs import LogsUnavailable, stream_log
from envspec.kube.readiness import assess
from envspec.kube.ssa import api_request, delete_object, delete_options, list_objects
from envspec.kube.wait import ClusterView, Target, cluster_view, task_group
from envspec.lifecycle.signals import GracefulStop, graceful_stop
from envspec.meta import TEST_LABEL, TEST_RUN_LABEL, key_of, labels_of, metadata_of, name_of
from envspec.operations.down import down
from envspec.operations.environments import EnvironmentRef
from envspec.operations.live import read_inventory
from envspec.operations.spec import TestPlans
from envspec.operations.up import prepare, up
from envspec.plan import Plan
from envspec.runner import ApplyOptions
from envspec.testrun.junit import CaseReport, SuiteReport, write_junit
from envspec.testrun.naming import (
    is_run_id,
    job_for_run,
    new_run_id,
    run_selector,
    runs_to_prune,
    test_jobs_selector,
)
from envspec.testrun.outcome import Outcome, Result, outcome_of, pod_succeeded
from envspec.units import format_cpu, format_duration, format_memory, parse_quantity

Json = dict[str, Any]
JOB = kinds.MANAGED_KINDS[("batch/v1", "Job")]
QUOTA = kinds.MANAGED_KINDS[("v1", "ResourceQuota")]

LOG_LINES_KEPT = 10_000  # per test, for the report's <system-out>
LOG_DRAIN_SECONDS = 5.0  # after a test ends, its log streams get at most this long to reach their end
# ...and are closed sooner once quiet this long: a kubelet sends a finished container's last
# lines at once, and some (kwok's) never close a follow stream by themselves.
LOG_QUIET_SECONDS = 1.0
CLEANUP_SECONDS = 5.0  # after a signal: CI runners kill soon after (GitHub Actions: ~7.5 s)
TIMEOUT_MARGIN_SECONDS = 60.0  # the default overall limit: the tests' own timeouts plus this
LOG_ATTEMPTS_PER_POD = 3  # a container without a log yet is asked again on its next change
HEARTBEAT_SECONDS = 5.0  # re-assess even without a change (a quota refusal's event may be missed)

_AMOUNTS = (("limits.cpu", "cpu", format_cpu), ("limits.memory", "memory", format_memory))


@dataclass(frozen=True)
class TestOptions:
    __test__ = False  # not a pytest test class, whatever its name

    names: tuple[str, ...] = ()  # the tests to run; empty: every test of the spec
    up: bool = False  # bring the environment up first (the `up` operation)
    down: bool = False  # take it down afterwards, whatever the result
    timeout_seconds: float | None = None  # the tests' overall limit; None: their timeouts + a margin
    junit: Path | None = None
    cleanup: bool = False  # delete this run's Jobs at the end
    keep: bool = False  # keep this run's Jobs even when interrupted
    log_events: bool = True  # emit `test_log` events (JSON: only with --logs)
    apply: ApplyOptions = field(default_factory=ApplyOptions)  # for --up
    handle_signals: bool = False  # SIGINT/SIGTERM end the run cleanly (the CLI; main thread only)


@dataclass(frozen=True)
class Need:
    """What a workload counts against the quota: limits and pods."""

    cpu: Fraction = Fraction(0)
    memory: Fraction = Fraction(0)
    pods: int = 0

    def __add__(self, other: Need) -> Need:
        return Need(self.cpu + other.cpu, self.memory + other.memory, self.pods + other.pods)

    def __sub__(self, other: Need) -> Need:
        return Need(self.cpu - other.cpu, self.memory - other.memory, self.pods - other.pods)

    def amount(self, key: str) -> Fraction:
        return Fraction(self.pods) if key == "pods" else getattr(self, key.removeprefix("limits."))


@dataclass
class Room:
    """What the quota leaves for tests beside the environment; None: no limit on that resource."""

    cpu: Fraction | None
    memory: Fraction | None
    pods: int | None

    def fits(self, need: Need) -> bool:
        return not self.shortfall(need)

    def shortfall(self, need: Need) -> list[str]:
        """`limits.cpu 500m but the quota leaves 0`, one per resource that does not fit."""
        short = []
        for key, attribute, formatter in _AMOUNTS:
            left = getattr(self, attribute)
            wanted = getattr(need, attribute)
            if left is not None and wanted > left:
                short.append(f"{key} {formatter(wanted)} but the quota leaves {formatter(max(left, Fraction(0)))}")
        if self.pods is not None and need.pods > self.pods:
            short.append(f"{need.pods} pod but the quota leaves {max(self.pods, 0)}")
        return short

    def take(self, need: Need) -> None:
        self.cpu = None if self.cpu is None else self.cpu - need.cpu
        self.memory = None if self.memory is None else self.memory - need.memory
        self.pods = None if self.pods is None else self.pods - need.pods

    def give_back(self, need: Need) -> None:
        self.cpu = None if self.cpu is None else self.cpu + need.cpu
        self.memory = None if self.memory is None else self.memory + need.memory
        self.pods = None if self.pods is None else self.pods + need.pods

    def with_back(self, need: Need) -> Room:
        """This room with `need` given back, as a new value."""
        room = Room(self.cpu, self.memory, self.pods)
        room.give_back(need)
        return room


def _containers(manifest: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    spec = manifest.get("spec") or {}
    pod = ((spec.get("template") or {}).get("spec")) or {}
    containers: list[Mapping[str, Any]] = pod.get("containers") or []
    return containers


def pod_need(manifest: Mapping[str, Any]) -> Need:
    """The limits of one pod of a workload (its containers' limits summed)."""
    cpu = memory = Fraction(0)
    for container in _containers(manifest):
        limits = (container.get("resources") or {}).get("limits") or {}
        cpu += parse_quantity(str(limits.get("cpu", "0")))
        memory += parse_quantity(str(limits.get("memory", "0")))
    return Need(cpu, memory, 1)


def environment_need(plan: Plan) -> Need:
    """What the environment's own workloads count against the quota (replicas x pod limits)."""
    total = Need()
    for obj in plan.objects:
        if obj.kind in ("Deployment", "StatefulSet"):
            replicas = int((obj.manifest.get("spec") or {}).get("replicas", 1) or 0)
            one = pod_need(obj.manifest)
            total += Need(one.cpu * replicas, one.memory * replicas, replicas)
    return total


def room_left(quota: Mapping[str, Any] | None, environment: Need) -> Room:
    """The room a ResourceQuota's `hard` leaves beside the environment."""
    hard: Mapping[str, Any] = ((quota or {}).get("spec") or {}).get("hard") or {}

    def left(key: str) -> Fraction | None:
        return None if key not in hard else parse_quantity(str(hard[key])) - environment.amount(key)

    pods = left("pods")
    return Room(left("limits.cpu"), left("limits.memory"), None if pods is None else int(pods))


_COUNTED = ("limits.cpu", "limits.memory", "pods")  # what `Need` counts


def _hard_and_used(quota: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """A live quota's limits and what the quota controller last counted against them."""
    status = quota.get("status") or {}
    return status.get("hard") or (quota.get("spec") or {}).get("hard") or {}, status.get("used") or {}


def quotas_not_counted(quotas: Iterable[Mapping[str, Any]]) -> list[str]:
    """The quotas whose use the quota controller has not computed yet (for what envspec counts).

    Admission refuses every pod while a quota of the namespace is in that state (`status
    unknown for quota`), and the Job controller then backs off for seconds: a new quota
    (`envspec up` a moment ago) is counted within milliseconds, so a test waits for that.
    """
    names = []
    for quota in quotas:
        hard, used = _hard_and_used(quota)
        if any(key in hard and key not in used for key in _COUNTED):
            names.append(name_of(quota))
    return names


def quota_admits(quotas: Iterable[Mapping[str, Any]], need: Need) -> bool:
    """Whether the namespace's ResourceQuotas, as the API server counts their use now, admit `need` more.

    What admission checks for a pod: each quota's `status.used` plus the pod within its
    `hard`; a quota whose use the quota controller has not computed yet admits nothing
    (`status unknown for quota`).
    """
    for quota in quotas:
        hard, used = _hard_and_used(quota)
        for key in _COUNTED:
            if key not in hard:
                continue
            if key not in used:
                return False
            if parse_quantity(str(used[key])) + need.amount(key) > parse_quantity(str(hard[key])):
                return False
    return True


def check_fit(tests: Sequence[TestCase], room: Room, *, where: str) -> None:
    """A test that can never fit, even alone, is an error before anything is created."""
    problems = []
    for case in tests:
        short = room.shortfall(case.need)
        if short:
            problems.append(f"test {case.name} needs {'; '.join(short)} beside the environment's workloads")
    if problems:
        raise EnvspecError(
            f"{'; '.join(problems)} ({where}): raise resources.quota in the spec, or give the test smaller "
            "resources.limits (then `envspec up`, or pass --up)"
        )


def _quota_of(plan: Plan) -> Mapping[str, Any] | None:
    for obj in plan.objects:
        if obj.kind == "ResourceQuota":
            return obj.manifest
    return None


@dataclass
class TestCase:
    """One test of the run and what is known of it."""

    __test__ = False  # not a pytest test class, whatever its name

    name: str
    compiled: Json  # the compiler's Job (render --tests)
    need: Need
    manifest: Json = field(default_factory=dict)  # the Job of this run
    job: str | None = None  # its name, once created
    uid: str | None = None
    outcome: Outcome | None = None
    last_reason: str | None = None
    queued: bool = False
    created_at: float | None = None  # monotonic
    finished_at: float | None = None
    reported: bool = False  # test_finished emitted
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES_KEPT))
    log_total: int = 0
    last_line_at: float = 0.0  # monotonic time of the newest log line
    log_attempts: dict[str, int] = field(default_factory=dict)  # pod -> streams started
    log_streams: dict[str, anyio.Event] = field(default_factory=dict)  # pod -> set when its stream ended

    @property
    def timeout_seconds(self) -> int | None:
        value = (self.compiled.get("spec") or {}).get("activeDeadlineSeconds")
        return None if value is None else int(value)

    @property
    def retries(self) -> int:
        return int((self.compiled.get("spec") or {}).get("backoffLimit") or 0)

    @property
    def image(self) -> str:
        containers = _containers(self.compiled)
        return str(containers[0].get("image", "")) if containers else ""

    @property
    def container(self) -> str | None:
        containers = _containers(self.compiled)
        return str(containers[0].get("name")) if containers else None

    @property
    def seconds(self) -> float:
        if self.outcome is not None and self.outcome.duration_seconds is not None:
            return self.outcome.duration_seconds
        if self.created_at is None:
            return 0.0
        return (self.finished_at or time.monotonic()) - self.created_at

    def result(self) -> Result:
        if self.outcome is None:
            return Result.SKIPPED
        return self.outcome.result

    def report(self) -> CaseReport:
        outcome = self.outcome
        reason = outcome.reason if outcome is not None else None
        if outcome is None:
            reason = reason or "not run"
        return CaseReport(
            name=self.name,
            result=self.result(),
            seconds=self.seconds,
            reason=reason,
            cause=outcome.cause if outcome is not None else None,
            attempts=outcome.attempts if outcome is not None else 0,
            log=tuple(self.log),
            log_lines_total=self.log_total,
        )


@dataclass
class TestRunResult:
    """What a run did, for the CLI, the worker and the REST API."""

    __test__ = False  # not a pytest test class, whatever its name

    run_id: str
    environment: str
    namespace: str
    cases: list[CaseReport]
    jobs: list[str]
    exit_code: int
    seconds: float
    junit: str | None = None

    def resources(self) -> tuple[str, ...]:
        return tuple(f"job/{job}" for job in self.jobs)

    def count(self, *results: Result) -> int:
        return sum(1 for case in self.cases if case.result in results)


class TestsFailed(EnvspecError):
    """At least one test failed, could not run, or timed out: the exit code says which."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, message: str, result: TestRunResult) -> None:
        super().__init__(message, exit_code=result.exit_code)
        self.result = result


def exit_code_of(results: Sequence[Result]) -> int:
    """5 when a test failed or could not run; else 6 when one timed out; else 0."""
    if any(r in (Result.FAILED, Result.ERROR) for r in results):
        return int(ExitCode.TESTS_FAILED)
    if any(r is Result.TIMED_OUT for r in results):
        return int(ExitCode.TESTS_TIMED_OUT)
    return int(ExitCode.OK)


def select_tests(plan: Plan, names: Sequence[str], all_tests: Sequence[str]) -> list[TestCase]:
    """The compiled Jobs of the selected tests, in the spec's order; unknown names are an error."""
    if not all_tests:
        raise EnvspecError("the spec has no tests: add some under `tests`, or run one with --image IMG --command CMD")
    unknown = [name for name in names if name not in all_tests]
    if unknown:
        raise EnvspecError(
            f"no test named {', '.join(repr(n) for n in unknown)} in the spec; its tests: {', '.join(all_tests)}"
        )
    chosen = [name for name in all_tests if not names or name in names]
    cases = []
    for name in chosen:
        planned = plan.find("Job", name)
        assert planned is not None, f"the compiler made no Job of test {name}"
        cases.append(TestCase(name, dict(planned.manifest), pod_need(planned.manifest)))
    return cases


def not_ready(plan: Plan, live: Mapping[tuple[str, str, str | None, str], Json], namespace: Json | None) -> list[str]:
    """What of the environment is missing or not ready: `deployment/api: 1/2 ready`."""
    problems = []
    for obj in plan.objects:
        if obj.kind == "Job":
            continue  # the tests themselves
        current = namespace if obj.kind == "Namespace" else live.get(key_of(obj.manifest))
        if current is None:
            problems.append(f"{obj.ref}: missing")
            continue
        state = assess(current)
        if not (state.done and state.ok):
            problems.append(f"{obj.ref}: {state.message}")
    return problems


def readiness_types(plan: Plan) -> list[kinds.ResourceType]:
    """The kinds the readiness check and the quota's room read: the plan's own (not its Jobs,
    the tests, which `not_ready` skips) and ResourceQuota; not every kind envspec manages."""
    wanted = {QUOTA}
    for obj in plan.objects:
        rtype = kinds.MANAGED_KINDS.get((obj.api_version, obj.kind))
        if rtype is not None and obj.kind not in ("Job", "Namespace"):  # the namespace is read by its name
            wanted.add(rtype)
    return sorted(wanted, key=lambda t: t.plural)


def _log_time(nanos: int | None) -> str | None:
    if nanos is None:
        return None
    seconds, rest = divmod(nanos, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:09d}Z"


async def run_tests(target: ClusterTarget, plans: TestPlans, *, events: Emitter, options: TestOptions) -> TestRunResult:
    """`envspec test`; raises TestsFailed (exit 5/6) when a test did not pass, NotReadyError (4), ClusterError (3)."""
    if options.handle_signals:
        # From the start: a CI runner may cancel while `--up` still runs.
        async with graceful_stop() as stop:
            return await _run_tests(target, plans, events=events, options=options, stop=stop)
    return await _run_tests(target, plans, events=events, options=options, stop=None)


async def _interruptible(stop: GracefulStop | None, body: Callable[[], Awaitable[Any]]) -> str | None:
    """Run `body`, cancelled by the first SIGINT/SIGTERM; the signal's name if it came, else None."""
    if stop is None:
        await body()
        return None
    if stop.requested.is_set():
        return stop.signal_name or "signal"
    scope = anyio.CancelScope()
    async with task_group() as group:

        async def on_signal() -> None:
            await stop.requested.wait()
            scope.cancel()

        group.start_soon(on_signal)
        with scope:
            await body()
        group.cancel_scope.cancel()
    return (stop.signal_name or "signal") if scope.cancelled_caught else None


async def _run_tests(
    target: ClusterTarget, plans: TestPlans, *, events: Emitter, options: TestOptions, stop: GracefulStop | None
) -> TestRunResult:
    draft = plans.with_tests(None)
    cases = select_tests(draft, options.names, plans.tests)
    if options.junit is not None and not options.junit.parent.is_dir():
        raise EnvspecError(f"--junit {options.junit}: directory {options.junit.parent} does not exist")
    ref = EnvironmentRef(draft.environment, draft.namespace)
    if options.up:
        # Nothing is created for a test that can never fit in the quota `up` would apply.
        check_fit(cases, room_left(_quota_of(draft), environment_need(draft)), where="the spec's quota")
    run = _Run(target, plans, cases, events, options, stop)
    run.environment, run.namespace = draft.environment, draft.namespace
    run.draft = draft
    failure: BaseException | None = None
    try:
        if options.up:

            async def bring_up() -> None:
                await up(target, plans.environment, events=events, options=options.apply)

            interrupted = await _interruptible(stop, bring_up)
            if interrupted:
                run.write_report()  # every test `skipped`: not run
                raise EnvspecError(
                    f"interrupted by {interrupted} while bringing the environment up; no test ran",
                    exit_code=ExitCode.INTERRUPTED,
                )
        return await run.run()
    except BaseException as exc:
        failure = exc
        if isinstance(exc, NotReadyError | ClusterError) and run.junit_written is None:
            # CI reads the report whatever happened: say why no test ran.
            cause = "EnvironmentNotReady" if isinstance(exc, NotReadyError) else "ClusterError"
            for case in run.cases:
                case.outcome = Outcome(Result.ERROR, exc.message, cause, None, 0, case.retries, None, None)
            with contextlib.suppress(EnvspecError):
                run.write_report()
        raise
    finally:
        if options.down:
            await _down_afterwards(target, ref, events, interrupted=_is_interrupt(failure), failed=failure)


def _is_interrupt(exc: BaseException | None) -> bool:
    if exc is None:
        return False
    if isinstance(exc, EnvspecError):
        return exc.exit_code == ExitCode.INTERRUPTED
    return isinstance(exc, KeyboardInterrupt | anyio.get_cancelled_exc_class())


async def _down_afterwards(
    target: ClusterTarget, ref: EnvironmentRef, events: Emitter, *, interrupted: bool, failed: BaseException | None
) -> None:
    """`--down`: whatever the result. After a signal, the deletion is sent without waiting for it."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_SECONDS if interrupted else None):
        try:
            await down(
                target, ref, events=events, wait=not interrupted, deadline=Deadline(ApplyOptions().timeout_seconds)
            )
        except EnvspecError:
            if failed is None:
                raise  # the tests passed: a failed teardown is the run's error


class _Run:
    def __init__(
        self,
        target: ClusterTarget,
        plans: TestPlans,
        cases: list[TestCase],
        events: Emitter,
        options: TestOptions,
        stop: GracefulStop | None = None,
    ) -> None:
        self.stop = stop
        self.target = target
        self.plans = plans
        self.cases = cases
        self.events = events
        self.options = options
        self.run_id = new_run_id()
        self.started = datetime.now(UTC)
        self.clock = time.monotonic()
        self.environment = ""
        self.namespace = ""
        self.room = Room(None, None, None)
        self.junit_written: str | None = None
        self.interrupted: str | None = None  # the signal's name
        self.api: Any = None
        self.limit: float | None = None  # the tests' overall limit, in seconds
        self.cut_short: list[TestCase] = []  # still running when the overall limit passed
        self.reported = anyio.Event()  # set when a test_finished is emitted (what `drain` waits for)
        self.draft: Plan | None = None  # the plan with tests, without the live secrets (compiled once)
        self.earlier_jobs: list[Json] = []  # the test Jobs of earlier runs, listed at the start
        self.following = False  # the tests' Jobs are being created and followed

    # ---------------------------------------------------------------- the run

    async def run(self) -> TestRunResult:
        async with connect(self.target) as api:
            self.api = api
            deadline = Deadline(self.options.apply.timeout_seconds)
            try:
                async with cluster_view(api) as view:
                    # Started before the readiness check: their first lists overlap its reads.
                    self.start_informers(view)
                    await self.check_ready(deadline)
                    self.events.emit(TestRunStarted(self.run_id, tuple(c.name for c in self.cases)))
                    self.interrupted = await _interruptible(self.stop, partial(self.run_cases, view))
            except ClusterError:
                if self.following:
                    self.write_report()  # what is known, before the error ends the command
                raise
            return await self.finish()

    async def check_ready(self, deadline: Deadline) -> None:
        """The environment is live and ready, and each test fits its quota; the run id is picked."""
        inventory = await self.read_live(deadline)
        prepared = await prepare(self.api, self.plans.with_tests, deadline=deadline, inventory=inventory)
        plan = prepared.plan
        self.environment, self.namespace = plan.environment, plan.namespace
        self.events = self.events.about(plan.environment, plan.namespace).with_secrets(prepared.secrets.values())
        inventory = prepared.inventory
        if inventory.namespace is None:
            raise NotReadyError(
                f"environment {plan.environment} is not on the cluster (no namespace {plan.namespace}): "
                "run `envspec up` first, or pass --up"
            )
        problems = not_ready(plan, inventory.objects, inventory.namespace)
        if problems:
            raise NotReadyError(
                f"environment {plan.environment} is not ready: {'; '.join(problems)} (run `envspec up`, or pass --up)"
            )
        live_quota = next((o for k, o in inventory.objects.items() if k[1] == "ResourceQuota"), None)
        self.room = room_left(live_quota, environment_need(plan))
        check_fit(self.cases, self.room, where=f"the quota of namespace {plan.namespace}")
        for case in self.cases:
            planned = plan.find("Job", case.name)
            assert planned is not None
            case.compiled = dict(planned.manifest)  # with the real secrets' plan (env values are refs anyway)
        self.pick_run_id({labels_of(job).get(TEST_RUN_LABEL) for job in self.earlier_jobs})

    def start_informers(self, view: ClusterView) -> None:
        """The Jobs, pods and events of the namespace, which `follow` reads."""
        view.start(JOB, self.namespace)
        view.start(kinds.POD, self.namespace)
        view.start(kinds.EVENT, self.namespace, only_new=True)
        view.start(QUOTA, self.namespace)

    async def read_live(self, deadline: Deadline) -> Inventory:
        """The environment's inventory (only what the readiness check needs); the earlier runs' Jobs.

        Concurrently: the reads are independent, and each is one round trip.
        """
        draft = self.draft or self.plans.with_tests(None)
        inventories: list[Inventory] = []

        async def read_environment() -> None:
            inventories.append(
                await read_inventory(
                    self.api,
                    draft.environment,
                    draft.namespace,
                    deadline=deadline,
                    only_types=readiness_types(draft),
                    expect_namespace=True,
                )
            )

        async def read_earlier_jobs() -> None:
            listing = await list_objects(
                self.api, JOB, draft.namespace, deadline=deadline, label_selector=test_jobs_selector(draft.environment)
            )
            self.earlier_jobs = list(listing.items)

        async with task_group() as group:
            group.start_soon(read_environment)
            group.start_soon(read_earlier_jobs)
        return inventories[0]

    def pick_run_id(self, taken: set[str | None]) -> None:
        """A run id no Job of this environment carries (a clash is one in a billion, but never adopt a Job)."""
        while self.run_id in taken or not is_run_id(self.run_id):
            self.run_id = new_run_id()

    async def run_cases(self, view: ClusterView) -> None:
        timeout = self.options.timeout_seconds
        if timeout is None:
            timeout = sum((c.timeout_seconds or 0) for c in self.cases) + TIMEOUT_MARGIN_SECONDS
        self.limit = timeout
        self.following = True
        async with task_group() as streams:
            with anyio.move_on_after(timeout) as timer:
                await self.follow(view, streams)
                await self.drain()
            streams.cancel_scope.cancel()
        if timer.cancelled_caught:
            self.out_of_time(timeout)

    async def follow(self, view: ClusterView, streams: TaskGroup) -> None:
        jobs = view.start(JOB, self.namespace)  # started already (`start_informers`): found again
        pods = view.start(kinds.POD, self.namespace)
        events = view.start(kinds.EVENT, self.namespace, only_new=True)
        quotas = view.start(QUOTA, self.namespace)
        for informer in (jobs, pods, events, quotas):
            await informer.synced.wait()
        pending = list(self.cases)
        running: list[TestCase] = []
        while pending or running:
            freed = False  # a test ended: a queued one may fit now, without waiting for the next change
            pods_of = {case.name: self.pods_of(case, pods.objects.values()) for case in running}
            # Tests whose pod has succeeded while their Job is not marked complete yet.
            settled = [
                case
                for case in running
                if (job := jobs.get(str(case.job), self.namespace)) is not None
                and pod_succeeded(job, pods_of[case.name])
            ]
            not_counted = quotas_not_counted(quotas.objects.values())
            for case in list(pending):
                if not not_counted and self.has_room(case, running, settled, pods_of, quotas.objects.values()):
                    self.room.take(case.need)
                    await self.create(view, case)
                    pending.remove(case)
                    running.append(case)
                elif not case.queued:
                    case.queued = True
                    self.events.emit(TestQueued(case.name, self.why_queued(case, not_counted)))
            for case in list(running):
                assert case.job is not None
                job = jobs.get(case.job, self.namespace)
                if job is None:
                    continue
                mine = self.pods_of(case, pods.objects.values())
                self.start_logs(case, mine, streams)
                outcome = outcome_of(job, mine, list(events.objects.values()))
                case.outcome = outcome
                if not outcome.terminal:
                    if outcome.reason and outcome.reason != case.last_reason:
                        self.events.emit(TestProgress(case.name, case.job, outcome.attempts, outcome.reason))
                    case.last_reason = outcome.reason
                    continue
                running.remove(case)
                case.finished_at = time.monotonic()
                self.room.give_back(case.need)
                freed = True
                if outcome.result is Result.ERROR and not _finished(job):
                    # It would only keep trying (and hold its quota); its reason is in the report.
                    await self.delete_jobs([job], reason="not started")
                streams.start_soon(self.report_when_drained, case)
            if (pending or running) and not (freed and pending):
                with anyio.move_on_after(HEARTBEAT_SECONDS):
                    await view.changed.wait()

    def why_queued(self, case: TestCase, not_counted: Sequence[str]) -> str:
        if not_counted:
            quotas = ", ".join(f"resourcequota/{name}" for name in not_counted)
            return f"waiting for the quota controller to count what {self.namespace} uses ({quotas})"
        return f"waiting for room in the quota: needs {'; '.join(self.room.shortfall(case.need))}"

    def pods_of(self, case: TestCase, pods: Iterable[Json]) -> list[Json]:
        return [
            pod
            for pod in pods
            if labels_of(pod).get(TEST_RUN_LABEL) == self.run_id and labels_of(pod).get(TEST_LABEL) == case.name
        ]

    def has_room(
        self,
        case: TestCase,
        running: Sequence[TestCase],
        settled: Sequence[TestCase],
        pods_of: Mapping[str, Sequence[Json]],
        quotas: Iterable[Json],
    ) -> bool:
        """Whether `case` can start now within the quota.

        The room of the tests still running is held until they end, but a test whose pod
        has succeeded counts no more against the quota, though its Job is only marked
        complete up to a second later (the Job controller batches): a queued test may take
        that room at once, when the quota as the API server counts it (`status.used`,
        which the quota controller updates when a pod ends) agrees. Tests created but
        whose pod is not seen yet count as using their room there.
        """
        if self.room.fits(case.need):
            return True
        if not settled:
            return False
        released = sum((done.need for done in settled), Need())
        if not self.room.with_back(released).fits(case.need):
            return False
        uncounted = sum((other.need for other in running if not pods_of.get(other.name)), Need())
        return quota_admits(quotas, case.need + uncounted)

    async def create(self, view: ClusterView, case: TestCase) -> None:
        case.manifest = job_for_run(case.compiled, environment=self.environment, test=case.name, run_id=self.run_id)
        name = name_of(case.manifest)
        created = await api_request(
            self.api,
            "POST",
            JOB.location(None, self.namespace),
            doing=f"creating job/{name} in {self.namespace}",
            deadline=Deadline(self.options.apply.timeout_seconds),
            content=json.dumps(case.manifest, separators=(",", ":")),
            headers={"Content-Type": "application/json"},
        )
        assert created is not None
        created.setdefault("apiVersion", JOB.api_version)
        created.setdefault("kind", JOB.kind)
        await view.observe(Target(JOB, name, self.namespace), created)
        case.job, case.uid = name, metadata_of(created).get("uid")
        case.created_at = time.monotonic()
        self.events.emit(TestStarted(case.name, name, self.run_id, case.image, case.timeout_seconds, case.retries))

    # ---------------------------------------------------------------- logs

    def start_logs(self, case: TestCase, pods: Sequence[Json], streams: TaskGroup) -> None:
        """One follow stream per pod whose test container has started (running or terminated)."""
        for pod in pods:
            name = name_of(pod)
            if name in case.log_streams and not case.log_streams[name].is_set():
                continue  # streaming
            if case.log_attempts.get(name, 0) >= LOG_ATTEMPTS_PER_POD or name in case.log_streams:
                continue  # done, or no log to be had
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            state = next((s.get("state") or {} for s in statuses if s.get("name") == case.container), {})
            if "running" not in state and "terminated" not in state:
                continue
            case.log_attempts[name] = case.log_attempts.get(name, 0) + 1
            done = anyio.Event()
            case.log_streams[name] = done
            streams.start_soon(self.stream, case, name, "running" in state, done)

    async def stream(self, case: TestCase, pod: str, running: bool, done: anyio.Event) -> None:
        try:
            lines = stream_log(
                self.api, pod, self.namespace, deadline=Deadline(self.limit), container=case.container, follow=True
            )
            async with contextlib.aclosing(lines):
                async for line in lines:
                    text = self.events.redact(line.text)
                    case.log.append(text)
                    case.log_total += 1
                    case.last_line_at = time.monotonic()
                    if self.options.log_events:
                        self.events.emit(TestLog(case.name, pod, _log_time(line.nanos), text))
        except LogsUnavailable:
            if running:
                del case.log_streams[pod]  # not started yet after all: asked again on its next change
        except ClusterError:
            pass  # a log that cannot be read does not decide the test; its outcome does
        finally:
            done.set()

    async def drain(self) -> None:
        """Wait (a little) for every test's last log lines and its test_finished."""
        with anyio.move_on_after(LOG_DRAIN_SECONDS + 1):
            while any(case.outcome is not None and case.outcome.terminal and not case.reported for case in self.cases):
                await self.reported.wait()
                self.reported = anyio.Event()

    async def report_when_drained(self, case: TestCase) -> None:
        ended = time.monotonic()
        with anyio.move_on_after(LOG_DRAIN_SECONDS):
            while streaming := [done for done in case.log_streams.values() if not done.is_set()]:
                quiet_left = LOG_QUIET_SECONDS - (time.monotonic() - max(ended, case.last_line_at))
                if quiet_left <= 0:
                    break
                # Woken by the stream's end, or when the quiet period would be over (a newer line restarts it).
                with anyio.move_on_after(quiet_left):
                    await streaming[0].wait()
        self.report_finished(case)

    def report_finished(self, case: TestCase) -> None:
        if case.reported:
            return
        case.reported = True
        self.reported.set()
        outcome = case.outcome
        self.events.emit(
            TestFinished(
                test=case.name,
                job=case.job,
                result=case.result().value,
                duration_seconds=case.seconds,
                attempts=outcome.attempts if outcome else 0,
                retries=case.retries,
                reason=outcome.reason if outcome else "not run",
                cause=outcome.cause if outcome else None,
                exit_code=outcome.exit_code if outcome else None,
                run_id=self.run_id,
            )
        )

    # ---------------------------------------------------------------- the end

    def out_of_time(self, timeout: float) -> None:
        reason = f"envspec --timeout {format_duration(int(timeout))} passed"
        for case in self.cases:
            if case.outcome is not None and case.outcome.terminal:
                continue
            if case.job is None:
                case.outcome = None
                continue
            case.finished_at = time.monotonic()
            self.cut_short.append(case)
            attempts = case.outcome.attempts if case.outcome else 0
            case.outcome = Outcome(Result.TIMED_OUT, reason, "EnvspecTimeout", None, attempts, case.retries, None, None)

    def write_report(self) -> None:
        if self.options.junit is None:
            return
        suite = SuiteReport(
            environment=self.environment,
            started=self.started,
            seconds=time.monotonic() - self.clock,
            cases=[case.report() for case in self.cases],
            properties=(("namespace", self.namespace), ("run_id", self.run_id)),
            hostname=socket.gethostname(),
        )
        write_junit(self.options.junit, suite)
        self.junit_written = str(self.options.junit)

    async def finish(self) -> TestRunResult:
        for case in self.cases:
            if case.outcome is not None and case.outcome.terminal:
                self.report_finished(case)
        self.write_report()
        deadline = Deadline(CLEANUP_SECONDS if self.interrupted else self.options.apply.timeout_seconds)
        if self.interrupted:
            if not self.options.keep:
                with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_SECONDS):
                    await self.delete_run(reason="interrupted", deadline=deadline)
        else:
            if self.cut_short and not self.options.keep and not self.options.cleanup:
                # Given up on: left running, they would hold the quota until their own timeout.
                stale = [
                    {"metadata": {"name": c.job, "uid": c.uid, "labels": {TEST_RUN_LABEL: self.run_id}}}
                    for c in self.cut_short
                ]
                await self.delete_jobs(stale, reason="timed out", deadline=deadline)
            await self.prune_old_runs(deadline)
            if self.options.cleanup:
                await self.delete_run(reason="cleanup", deadline=deadline)
        reports = [case.report() for case in self.cases]
        code = int(ExitCode.INTERRUPTED) if self.interrupted else exit_code_of([r.result for r in reports])
        result = TestRunResult(
            run_id=self.run_id,
            environment=self.environment,
            namespace=self.namespace,
            cases=reports,
            jobs=[case.job for case in self.cases if case.job],
            exit_code=code,
            seconds=time.monotonic() - self.clock,
            junit=self.junit_written,
        )
        self.events.emit(
            TestSummary(
                run_id=self.run_id,
                passed=result.count(Result.PASSED),
                failed=result.count(Result.FAILED),
                timed_out=result.count(Result.TIMED_OUT),
                errors=result.count(Result.ERROR),
                skipped=result.count(Result.SKIPPED, Result.RUNNING),
                duration_seconds=result.seconds,
                junit=self.junit_written,
                exit_code=code,
            )
        )
        if self.interrupted:
            kept = (
                f"; its Jobs are kept (kubectl delete jobs -l {TEST_RUN_LABEL}={self.run_id} -n {self.namespace})"
                if self.options.keep
                else ""
            )
            raise EnvspecError(
                f"interrupted by {self.interrupted}: run {self.run_id} stopped{kept}", exit_code=ExitCode.INTERRUPTED
            )
        if code != ExitCode.OK:
            raise TestsFailed(_failure_message(reports), result)
        return result

    async def delete_run(self, *, reason: str, deadline: Deadline) -> None:
        """Every Job of this run, in one request (pods go with them: background propagation)."""
        jobs = [case.job for case in self.cases if case.job]
        if not jobs:
            return
        await api_request(
            self.api,
            "DELETE",
            JOB.location(None, self.namespace),
            doing=f"deleting the test Jobs of run {self.run_id} in {self.namespace}",
            deadline=deadline,
            params={"labelSelector": run_selector(self.environment, self.run_id)},
            content=json.dumps(delete_options()),
            headers={"Content-Type": "application/json"},
        )
        self.events.emit(TestJobsDeleted(self.run_id, tuple(jobs), reason))

    async def prune_old_runs(self, deadline: Deadline) -> None:
        # From the Jobs listed at the start (no second list on the way out) and this run's own.
        # A run that began meanwhile is missing from them: it can only make this prune keep
        # more (never delete a newer run), and the next run's prune counts it.
        jobs = [*self.earlier_jobs, *(case.manifest for case in self.cases if case.job)]
        doomed = runs_to_prune(jobs, environment=self.environment, current_run=self.run_id)
        if doomed:
            await self.delete_jobs(doomed, reason="pruned", deadline=deadline)

    async def delete_jobs(
        self, jobs: Sequence[Mapping[str, Any]], *, reason: str, deadline: Deadline | None = None
    ) -> None:
        deadline = deadline or Deadline(self.options.apply.timeout_seconds)
        # Concurrently: one round trip for all of them rather than one each.
        async with task_group() as group:
            for job in jobs:
                group.start_soon(self.delete_job, job, deadline)
        run_ids = {labels_of(job).get(TEST_RUN_LABEL) for job in jobs}
        run_id = run_ids.pop() if len(run_ids) == 1 else None
        self.events.emit(TestJobsDeleted(run_id, tuple(name_of(job) for job in jobs), reason))

    async def delete_job(self, job: Mapping[str, Any], deadline: Deadline) -> None:
        await delete_object(
            self.api, JOB, name_of(job), self.namespace, deadline=deadline, uid=metadata_of(job).get("uid")
        )


def _finished(job: Json) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(
        c.get("type") in ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget") and c.get("status") == "True"
        for c in conditions
    )


def _failure_message(reports: Sequence[CaseReport]) -> str:
    bad = [r for r in reports if r.result not in (Result.PASSED,)]
    names = ", ".join(f"{r.name} ({r.result.label}{': ' + r.reason if r.reason else ''})" for r in bad)
    return f"{len(bad)} of {len(reports)} tests did not pass: {names}"


__all__ = [
    "TestCase",
    "TestOptions",
    "TestRunResult",
    "TestsFailed",
    "exit_code_of",
    "run_tests",
]
