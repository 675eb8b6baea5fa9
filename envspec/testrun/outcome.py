"""The outcome of a test: a pure function of its live Job, the Job's pods and its events.

`outcome_of(job, pods, events)` says whether the test passed, failed, timed out or
could not run (error), or is still running; how many attempts it took of how many
allowed (`retries` is the Job's backoffLimit); and why, in words a user acts on:
`exit code 3`, `DeadlineExceeded: ...`, `cannot pull image ...`, `unschedulable:
...`, `refused by quota: ...`.

A test whose pod cannot start at all fails at once with the reason, rather than at
its timeout: the image cannot be pulled or is not a valid name, the container
cannot be created from its configuration, no node can take the pod, or admission
(quota, LimitRange, Pod Security) refuses the pod for good. A quota refusal that
only lacks room for now (other pods still use it) keeps the test running: the Job
controller retries, and the caller decides how long to allow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from envspec.kube.readiness import is_permanent_rejection
from envspec.units import format_duration

Json = Mapping[str, Any]

# Container waiting reasons of a pod that will not start without someone fixing something.
START_FAILURES = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"}
)
IMAGE_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
# Container termination reasons that say nothing beyond the exit code.
PLAIN_TERMINATIONS = frozenset({"Error", "Completed"})
DEFAULT_BACKOFF_LIMIT = 6  # the API server's default for a Job without one


class Result(StrEnum):
    """A test's result; `label` is the form of the summary table."""

    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"  # the test ran and failed (its container exited non-zero, retries used up)
    TIMED_OUT = "timed_out"  # the Job passed its activeDeadlineSeconds (the test's timeout)
    ERROR = "error"  # the test could not run: its pod could not be created, scheduled or started
    SKIPPED = "skipped"  # never from a Job: a test the run did not get to (interrupted first)

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")

    @property
    def terminal(self) -> bool:
        return self is not Result.RUNNING


@dataclass(frozen=True)
class Outcome:
    result: Result
    reason: str | None  # why it did not pass, or what a running test waits for; None when there is nothing to say
    cause: (
        str | None
    )  # the machine-readable cause: a Job condition or container reason, `Unschedulable`, `FailedCreate`
    exit_code: int | None  # the failed test's (or, while retrying, the last attempt's) exit code
    attempts: int  # pods created for the Job so far
    retries: int  # attempts allowed after the first (the Job's backoffLimit)
    started: datetime | None  # the Job's startTime
    finished: datetime | None  # when the Job completed or was marked failed
    pod: str | None = None  # the pod the reason was read from

    @property
    def terminal(self) -> bool:
        return self.result.terminal

    @property
    def duration_seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return max(0.0, (self.finished - self.started).total_seconds())


def parse_time(value: Any) -> datetime | None:
    """An API server timestamp (`2026-03-01T09:30:00Z`) as an aware datetime, or None."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _status(obj: Json) -> Json:
    status: Json = obj.get("status") or {}
    return status


def _metadata(obj: Json) -> Json:
    metadata: Json = obj.get("metadata") or {}
    return metadata


def _true_condition(obj: Json, kind: str) -> Json | None:
    for condition in _status(obj).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            found: Json = condition
            return found
    return None


def _owned(pods: Sequence[Json], job: Json) -> list[Json]:
    """The Job's pods, oldest first; all of them when the Job has no uid (not from the API server)."""
    uid = _metadata(job).get("uid")
    if uid:
        pods = [
            pod for pod in pods if any(ref.get("uid") == uid for ref in _metadata(pod).get("ownerReferences") or [])
        ]
    return sorted(pods, key=lambda pod: (str(_metadata(pod).get("creationTimestamp", "")), _metadata(pod).get("name")))


def _main_container(job: Json) -> str | None:
    containers = ((((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []
    return str(containers[0].get("name")) if containers else None


def _attempts(job: Json, pods: Sequence[Json]) -> int:
    # Pods may already be gone (deleted, garbage-collected); the Job's counters remain.
    status = _status(job)
    counted = sum(int(status.get(key) or 0) for key in ("succeeded", "failed", "active"))
    return max(len(pods), counted)


@dataclass(frozen=True)
class _Exit:
    code: int
    reason: str | None
    pod: str


def _latest_failure(pods: Sequence[Json], container: str | None) -> _Exit | None:
    """The exit of the newest pod whose test container exited non-zero."""
    for pod in reversed(pods):
        statuses = _status(pod).get("containerStatuses") or []
        chosen = [s for s in statuses if s.get("name") == container] or list(statuses)
        for status in chosen:
            terminated = (status.get("state") or {}).get("terminated") or {}
            code = terminated.get("exitCode")
            if code is not None and int(code) != 0:
                reason = terminated.get("reason")
                return _Exit(
                    int(code), None if reason in PLAIN_TERMINATIONS else reason, str(_metadata(pod).get("name"))
                )
    return None


def describe_exit(code: int, reason: str | None) -> str:
    """`exit code 3`, or `exit code 137 (OOMKilled)`."""
    return f"exit code {code} ({reason})" if reason else f"exit code {code}"


@dataclass(frozen=True)
class _Problem:
    cause: str
    reason: str
    pod: str | None
    permanent: bool = True


def _start_problem(pods: Sequence[Json]) -> _Problem | None:
    """Why the newest pod that has not run cannot start, if it cannot."""
    for pod in reversed(pods):
        name = str(_metadata(pod).get("name"))
        status = _status(pod)
        if status.get("phase") in ("Succeeded", "Failed"):
            continue
        for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in START_FAILURES:
                message = str(waiting.get("message") or "").strip()
                if reason in IMAGE_FAILURES:
                    text = f"cannot pull image {container.get('image')}: {reason}"
                else:
                    text = f"cannot create container {container.get('name')}: {reason}"
                return _Problem(reason, f"{text}: {message}" if message else text, name)
        for condition in status.get("conditions") or []:
            if (
                condition.get("type") == "PodScheduled"
                and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"
            ):
                message = str(condition.get("message") or "no node can take the pod").strip()
                return _Problem("Unschedulable", f"unschedulable: {message}", name)
    return None


def refusal_kind(message: str) -> str:
    """Who refused to create the pod, from the admission message."""
    lowered = message.lower()
    if "exceeded quota" in lowered or "failed quota" in lowered:
        return "quota"
    if "violates podsecurity" in lowered:
        return "Pod Security"
    if "usage per" in lowered or "limit to request ratio" in lowered:
        return "LimitRange"
    return "admission"


def _creation_refusal(job: Json, events: Sequence[Json]) -> _Problem | None:
    """The Job controller's newest FailedCreate event about this Job, as a problem."""
    uid, name = _metadata(job).get("uid"), _metadata(job).get("name")
    refusals = [
        event
        for event in events
        if event.get("reason") == "FailedCreate"
        and (
            (event.get("involvedObject") or {}).get("uid") == uid
            if uid
            else (event.get("involvedObject") or {}).get("name") == name
        )
    ]
    if not refusals:
        return None
    newest = max(refusals, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
    message = str(newest.get("message", "")).strip()
    detail = message.split("is forbidden: ", 1)[-1]
    kind = refusal_kind(message)
    if is_permanent_rejection(message):
        return _Problem("FailedCreate", f"refused by {kind}: {detail}", None)
    if kind == "quota":
        return _Problem("FailedCreate", f"waiting for room in the quota: {detail}", None, permanent=False)
    return None  # e.g. the namespace's service account not there yet: the controller retries


def pod_succeeded(job: Json, pods: Sequence[Json]) -> bool:
    """Whether the Job's pod has succeeded and none of its pods still runs.

    A Job of one completion at a time (as the compiler writes test Jobs) then creates no
    more pods, so what its pod counted against the quota is free, though the Job is not
    marked complete yet: the Job controller batches a Job's pod updates for a second.
    """
    spec = job.get("spec") or {}
    if int(spec.get("completions") or 1) != 1 or int(spec.get("parallelism") or 1) != 1:
        return False
    phases = [_status(pod).get("phase") for pod in _owned(pods, job)]
    return "Succeeded" in phases and all(phase in ("Succeeded", "Failed") for phase in phases)


def outcome_of(job: Json, pods: Sequence[Json] = (), events: Sequence[Json] = ()) -> Outcome:
    """The test's outcome from its Job, the Job's pods and the events about the Job.

    `events` should hold only events of this Job (they are matched by its uid); stale
    events of an earlier Job do not apply to a Job of another run, whose name differs.
    """
    pods = _owned(pods, job)
    status = _status(job)
    spec = job.get("spec") or {}
    backoff_limit = spec.get("backoffLimit")
    retries = DEFAULT_BACKOFF_LIMIT if backoff_limit is None else int(backoff_limit)
    attempts = _attempts(job, pods)
    started = parse_time(status.get("startTime"))
    failure = _latest_failure(pods, _main_container(job))

    def outcome(
        result: Result,
        reason: str | None,
        cause: str | None,
        *,
        finished: datetime | None = None,
        pod: str | None = None,
        exit_code: int | None = None,
    ) -> Outcome:
        return Outcome(
            result=result,
            reason=reason,
            cause=cause,
            exit_code=exit_code,
            attempts=attempts,
            retries=retries,
            started=started,
            finished=finished,
            pod=pod,
        )

    success = _true_condition(job, "Complete") or _true_condition(job, "SuccessCriteriaMet")
    if success is not None:
        finished = parse_time(status.get("completionTime")) or parse_time(success.get("lastTransitionTime"))
        return outcome(Result.PASSED, None, None, finished=finished)

    start_problem = _start_problem(pods)
    refusal = _creation_refusal(job, events)
    ended = _true_condition(job, "Failed") or _true_condition(job, "FailureTarget")
    if ended is not None:
        finished = parse_time(ended.get("lastTransitionTime"))
        cause = str(ended.get("reason") or "Failed")
        message = str(ended.get("message") or "").strip()
        # A pod that never started explains a Job that ran out of time better than the deadline does.
        for problem in (start_problem, refusal):
            if problem is not None and problem.permanent:
                return outcome(Result.ERROR, problem.reason, problem.cause, finished=finished, pod=problem.pod)
        if cause == "DeadlineExceeded":
            deadline = spec.get("activeDeadlineSeconds")
            limit = f" after {format_duration(int(deadline))}" if deadline else ""
            text = f"DeadlineExceeded: the test did not finish{limit} (its timeout)"
            if refusal is not None and not pods:
                text = f"{text}; its pod was never created: {refusal.reason}"
            return outcome(Result.TIMED_OUT, text, cause, finished=finished)
        if failure is not None and cause == "BackoffLimitExceeded":
            text = describe_exit(failure.code, failure.reason)
            return outcome(Result.FAILED, text, cause, finished=finished, pod=failure.pod, exit_code=failure.code)
        text = f"{cause}: {message}" if message else cause
        if failure is not None:
            return outcome(Result.FAILED, text, cause, finished=finished, pod=failure.pod, exit_code=failure.code)
        return outcome(Result.FAILED, text, cause, finished=finished)

    for problem in (start_problem, refusal):
        if problem is not None and problem.permanent:
            return outcome(Result.ERROR, problem.reason, problem.cause, pod=problem.pod)
    if refusal is not None:  # waiting for room in the quota
        return outcome(Result.RUNNING, refusal.reason, refusal.cause)
    if failure is not None:
        text = f"retrying: the last attempt ended with {describe_exit(failure.code, failure.reason)}"
        return outcome(Result.RUNNING, text, None, pod=failure.pod, exit_code=failure.code)
    return outcome(Result.RUNNING, None, None)
