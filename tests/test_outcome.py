"""Test outcomes: a pure function of a Job, its pods and its events, on recorded 1.34 status shapes.

Each fixture in tests/fixtures/outcome holds a Job, its pods and events as the API
server returns them, and the outcome expected from them, field by field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from envspec.testrun.outcome import Result, describe_exit, outcome_of, parse_time, pod_succeeded, refusal_kind

FIXTURES = Path(__file__).parent / "fixtures" / "outcome"
FIELDS = ("result", "reason", "cause", "exit_code", "attempts", "retries")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe", pure=True).load(path.read_text())
    return data


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.yaml")), ids=lambda p: p.stem)
def test_fixture(fixture: Path) -> None:
    case = load(fixture)
    outcome = outcome_of(case["job"], case.get("pods") or [], case.get("events") or [])
    expected = case["expect"]
    got = {name: getattr(outcome, name) for name in FIELDS}
    assert got == {name: expected[name] for name in FIELDS}, case["description"]
    assert outcome.terminal == (expected["result"] != "running")
    if "duration" in expected:
        assert outcome.duration_seconds == expected["duration"]
    if "pod" in expected:
        assert outcome.pod == expected["pod"]


def test_every_result_a_job_can_have_has_a_fixture() -> None:
    results = {load(path)["expect"]["result"] for path in FIXTURES.glob("*.yaml")}
    assert results == {r.value for r in Result} - {Result.SKIPPED.value}


def test_every_start_failure_fails_at_once() -> None:
    """The fast-failure reasons named by the issue each have a fixture that is terminal without a Job condition."""
    fast = {
        load(path)["expect"]["cause"]
        for path in FIXTURES.glob("error-*.yaml")
        if not (load(path)["job"].get("status") or {}).get("conditions")
    }
    assert {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "Unschedulable", "FailedCreate"} <= fast


def test_the_fixtures_look_like_the_api_server_wrote_them() -> None:
    for path in FIXTURES.glob("*.yaml"):
        case = load(path)
        job = case["job"]
        assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job"), path.name
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never", path.name
        for pod in case.get("pods") or []:
            owners = pod["metadata"]["ownerReferences"]
            assert [owner["kind"] for owner in owners] == ["Job"], path.name


def job(*conditions: dict[str, str], backoff_limit: int | None = 0, **status: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"spec": {"containers": [{"name": "t", "image": "i"}]}}}
    if backoff_limit is not None:
        spec["backoffLimit"] = backoff_limit
    job_status = {"conditions": list(conditions), **status}
    return {"kind": "Job", "metadata": {"name": "t-abc"}, "spec": spec, "status": job_status}


def failed_pod(name: str, code: int, container: str = "t", created: str = "2026-03-01T09:30:00Z") -> dict[str, Any]:
    state = {"terminated": {"exitCode": code, "reason": "Error"}}
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {"phase": "Failed", "containerStatuses": [{"name": container, "state": state}]},
    }


def pod_in(phase: str, name: str = "t-abc-1") -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"phase": phase}}


def test_a_succeeded_pod_frees_the_room_before_the_job_is_marked_complete() -> None:
    running = job()  # no condition yet: the Job controller has not synced
    assert pod_succeeded(running, [pod_in("Succeeded")])
    assert pod_succeeded(running, [pod_in("Failed", "t-abc-1"), pod_in("Succeeded", "t-abc-2")])  # a retry passed
    assert not pod_succeeded(running, [])
    assert not pod_succeeded(running, [pod_in("Running")])
    assert not pod_succeeded(running, [pod_in("Failed")])  # a retry may follow: it needs the room again
    assert not pod_succeeded(running, [pod_in("Succeeded", "t-abc-1"), pod_in("Pending", "t-abc-2")])


def test_a_job_of_several_completions_or_pods_holds_its_room_until_it_ends() -> None:
    for key in ("completions", "parallelism"):
        several = job()
        several["spec"][key] = 2
        assert not pod_succeeded(several, [pod_in("Succeeded")]), key


def test_the_pods_of_another_job_do_not_free_this_ones_room() -> None:
    mine = job()
    mine["metadata"]["uid"] = "uid-mine"
    other = pod_in("Succeeded")
    other["metadata"]["ownerReferences"] = [{"kind": "Job", "uid": "uid-other"}]
    assert not pod_succeeded(mine, [other])
    other["metadata"]["ownerReferences"] = [{"kind": "Job", "uid": "uid-mine"}]
    assert pod_succeeded(mine, [other])


def test_a_condition_that_is_not_true_decides_nothing() -> None:
    outcome = outcome_of(job({"type": "Failed", "status": "False"}, {"type": "Complete", "status": "Unknown"}))
    assert outcome.result is Result.RUNNING


def test_without_a_backoff_limit_the_default_of_six_applies() -> None:
    assert outcome_of(job(backoff_limit=None)).retries == 6


def test_the_exit_code_is_read_from_the_test_container_not_a_sidecar() -> None:
    pod = failed_pod("t-abc-1", 3)
    pod["status"]["containerStatuses"].insert(0, {"name": "proxy", "state": {"terminated": {"exitCode": 137}}})
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
    assert outcome_of(job(failed), [pod]).reason == "exit code 3"


def test_the_newest_pod_gives_the_exit_code_whatever_order_the_pods_come_in() -> None:
    pods = [failed_pod("t-abc-b", 2, created="2026-03-01T09:31:00Z"), failed_pod("t-abc-a", 1)]
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
    outcome = outcome_of(job(failed, backoff_limit=1), pods)
    assert (outcome.exit_code, outcome.pod, outcome.attempts) == (2, "t-abc-b", 2)


def test_pods_that_are_gone_still_count_as_attempts() -> None:
    outcome = outcome_of(job(backoff_limit=3, failed=2, active=1), [])
    assert (outcome.attempts, outcome.retries) == (3, 3)


def test_a_failed_job_without_any_pod_left_gives_the_job_reason() -> None:
    failed = {
        "type": "Failed",
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
    }
    outcome = outcome_of(job(failed, failed=1))
    assert (outcome.result, outcome.reason, outcome.exit_code) == (
        Result.FAILED,
        "BackoffLimitExceeded: Job has reached the specified backoff limit",
        None,
    )


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ('pods "x" is forbidden: exceeded quota: q, requested: pods=1, used: pods=10, limited: pods=10', "quota"),
        ('pods "x" is forbidden: violates PodSecurity "baseline:latest": privileged', "Pod Security"),
        ('pods "x" is forbidden: maximum memory usage per Pod is 1Gi, but limit is 2Gi', "LimitRange"),
        ('pods "x" is forbidden: cpu max limit to request ratio per Container is 2, but ratio is 4', "LimitRange"),
        ('admission webhook "policy.example.com" denied the request: no', "admission"),
    ],
)
def test_refusal_kind(message: str, kind: str) -> None:
    assert refusal_kind(message) == kind


def test_result_labels_and_terminality() -> None:
    assert [r.label for r in Result] == ["running", "passed", "failed", "timed out", "error", "skipped"]
    assert [r for r in Result if not r.terminal] == [Result.RUNNING]


def test_describe_exit() -> None:
    assert describe_exit(3, None) == "exit code 3"
    assert describe_exit(137, "OOMKilled") == "exit code 137 (OOMKilled)"


def test_parse_time() -> None:
    assert parse_time("2026-03-01T09:30:00Z") is not None
    assert parse_time("not a time") is None
    assert parse_time(None) is None
