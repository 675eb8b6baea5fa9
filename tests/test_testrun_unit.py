"""The pure parts of `envspec test`: quota room and fit, test selection, readiness, exit codes, rendering."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

import anyio
import pytest

from envspec.errors import EnvspecError, ExitCode
from envspec.events import (
    Emitter,
    Envelope,
    TestFinished,
    TestJobsDeleted,
    TestLog,
    TestQueued,
    TestRunStarted,
    TestStarted,
    TestSummary,
    envelope_to_dict,
)
from envspec.inventory import Inventory
from envspec.loader import load_text
from envspec.meta import is_test_run_object, key_of
from envspec.operations.test import (
    Need,
    Room,
    check_fit,
    environment_need,
    exit_code_of,
    not_ready,
    pod_need,
    quota_admits,
    quotas_not_counted,
    readiness_types,
    room_left,
    select_tests,
)
from envspec.pipeline import add_tests, build_plan
from envspec.plan import Plan
from envspec.reconcile import reconcile
from envspec.sinks import JsonLinesSink, Recorder, TerminalSink
from envspec.testrun.naming import job_for_run
from envspec.testrun.outcome import Result
from envspec.validation import validate

SPEC = """\
apiVersion: envspec/v1
name: demo
resources:
  defaults:
    limits: {cpu: 500m, memory: 512Mi}
databases:
  db:
    engine: postgresql
    resources:
      limits: {cpu: "1", memory: 1Gi}
services:
  api:
    image: registry.example.com/api:1
    replicas: 2
tests:
  integration:
    image: registry.example.com/tests:1
    timeout: 10m
  smoke:
    image: curlimages/curl:8
    resources:
      limits: {cpu: 250m, memory: 128Mi}
"""


def plan(text: str = SPEC, **extra: Any) -> Plan:
    document = load_text(text, "spec.yaml")
    if extra:
        add_tests(document.data, extra)
    return build_plan(validate(document, {}), include_tests=True)


def test_the_environment_need_counts_replicas_and_databases_not_tests() -> None:
    need = environment_need(plan())
    assert need == Need(Fraction(2), Fraction(2 * 512 + 1024) * 1024 * 1024, 3)


def test_the_auto_quota_leaves_room_for_the_largest_test_only() -> None:
    compiled = plan()
    quota = next(o.manifest for o in compiled.objects if o.kind == "ResourceQuota")
    room = room_left(quota, environment_need(compiled))
    assert (room.cpu, room.memory, room.pods) == (Fraction(1, 2), Fraction(512 * 1024 * 1024), 7)
    [integration, smoke] = select_tests(compiled, (), ("integration", "smoke"))
    assert room.fits(integration.need) and room.fits(smoke.need)
    room.take(integration.need)
    assert not room.fits(smoke.need)  # the two run one after another
    assert room.shortfall(smoke.need) == [
        "limits.cpu 250m but the quota leaves 0",
        "limits.memory 128Mi but the quota leaves 0",
    ]
    room.give_back(integration.need)
    assert room.fits(smoke.need)


def test_a_quota_without_a_resource_does_not_limit_it() -> None:
    room = room_left({"spec": {"hard": {"pods": "4"}}}, Need(Fraction(9), Fraction(9), 3))
    assert (room.cpu, room.memory, room.pods) == (None, None, 1)
    assert room.fits(Need(Fraction(100), Fraction(100), 1))
    assert not room.fits(Need(pods=2))


def live_quota(used: dict[str, str] | None, hard: dict[str, str] | None = None) -> dict[str, Any]:
    hard = hard or {"limits.cpu": "3", "limits.memory": "3Gi", "pods": "10"}
    status: dict[str, Any] = {"hard": hard} if used is None else {"hard": hard, "used": used}
    return {"kind": "ResourceQuota", "spec": {"hard": hard}, "status": status}


def test_the_live_quota_admits_a_pod_that_fits_beside_what_the_api_server_counts() -> None:
    test_pod = Need(Fraction(1, 2), Fraction(512 * 1024 * 1024), 1)
    counted = live_quota({"limits.cpu": "2500m", "limits.memory": "2560Mi", "pods": "9"})
    assert quota_admits([counted], test_pod)
    assert not quota_admits([counted], test_pod + test_pod)  # e.g. a created Job whose pod is not seen yet
    still_counting = live_quota({"limits.cpu": "3", "limits.memory": "3Gi", "pods": "10"})  # the pod just ended
    assert not quota_admits([still_counting], test_pod)
    assert not quota_admits([counted, still_counting], test_pod)  # admission checks every quota
    assert quota_admits([], test_pod)


def test_a_quota_whose_use_is_not_computed_yet_admits_nothing() -> None:
    # Admission refuses with "status unknown for quota" until the quota controller has run.
    assert not quota_admits([live_quota(None)], Need(pods=1))
    assert not quota_admits([live_quota({"pods": "1"})], Need(pods=1))
    only_pods = live_quota({"pods": "1"}, hard={"pods": "4", "count/secrets": "5"})
    assert quota_admits([only_pods], Need(Fraction(100), Fraction(100), 1))  # envspec counts limits and pods
    new = live_quota(None)
    new["metadata"] = {"name": "envspec-quota"}
    assert quotas_not_counted([new, only_pods]) == ["envspec-quota"]
    assert quotas_not_counted([only_pods]) == []


def test_room_given_back_as_a_new_value_leaves_the_room_alone() -> None:
    room = Room(Fraction(0), Fraction(0), 0)
    test_pod = Need(Fraction(1, 2), Fraction(1), 1)
    assert room.with_back(test_pod).fits(test_pod)
    assert not room.fits(test_pod)
    assert Room(None, None, None).with_back(test_pod) == Room(None, None, None)


def test_a_test_that_can_never_fit_is_an_error_naming_it() -> None:
    cases = select_tests(plan(), ("integration",), ("integration", "smoke"))
    with pytest.raises(EnvspecError) as info:
        check_fit(cases, Room(Fraction(1, 10), None, None), where="the quota of namespace x")
    assert info.value.exit_code == ExitCode.USER_ERROR
    assert info.value.message.startswith(
        "test integration needs limits.cpu 500m but the quota leaves 100m beside the environment's workloads "
        "(the quota of namespace x): raise resources.quota"
    )


def test_selection_keeps_the_spec_order_and_refuses_unknown_names() -> None:
    compiled = plan()
    assert [c.name for c in select_tests(compiled, ("smoke", "integration"), ("integration", "smoke"))] == [
        "integration",
        "smoke",
    ]
    with pytest.raises(EnvspecError) as info:
        select_tests(compiled, ("nope",), ("integration", "smoke"))
    assert info.value.message == "no test named 'nope' in the spec; its tests: integration, smoke"
    with pytest.raises(EnvspecError) as none:
        select_tests(compiled, (), ())
    assert "--image IMG --command CMD" in none.value.message


def test_a_case_knows_its_job_settings_and_need() -> None:
    [integration, smoke] = select_tests(plan(), (), ("integration", "smoke"))
    assert (integration.timeout_seconds, integration.retries, integration.image) == (
        600,
        0,
        "registry.example.com/tests:1",
    )
    assert smoke.need == pod_need(smoke.compiled) == Need(Fraction(1, 4), Fraction(128 * 1024 * 1024), 1)


def test_an_ad_hoc_test_is_compiled_as_the_specs_own() -> None:
    compiled = plan(probe={"image": "busybox:1", "command": "sh -c 'echo hi'", "env": {"U": "${environment.name}"}})
    job = compiled.find("Job", "probe")
    assert job is not None
    container = job.manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["env"] == [{"name": "U", "value": "demo"}]
    assert container["command"] == ["sh", "-c", "echo hi"]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}  # the spec's defaults
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    with pytest.raises(EnvspecError, match="already has a component named 'api'"):
        plan(api={"image": "x"})


def test_readiness_names_what_is_missing_or_not_ready() -> None:
    compiled = plan()
    live = {}
    for obj in compiled.objects:
        if obj.kind in ("Job", "Namespace"):
            continue
        manifest = json.loads(json.dumps(obj.manifest))
        if obj.kind == "Deployment":
            manifest["status"] = {"observedGeneration": 1, "replicas": 2, "readyReplicas": 1, "updatedReplicas": 2}
            manifest["metadata"]["generation"] = 1
        if obj.kind == "StatefulSet":
            continue  # missing
        live[key_of(manifest)] = manifest
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}, "status": {"phase": "Active"}}
    problems = not_ready(compiled, live, namespace)
    assert "statefulset/db: missing" in problems
    assert any(p.startswith("deployment/api: ") and "1/2" in p for p in problems)
    assert not any(p.startswith("job/") for p in problems)


def test_readiness_reads_the_plans_own_kinds_and_the_quota_only() -> None:
    compiled = plan()
    read = {(t.api_version, t.kind) for t in readiness_types(compiled)}
    planned = {(o.api_version, o.kind) for o in compiled.objects if o.kind not in ("Job", "Namespace")}
    assert read == planned | {("v1", "ResourceQuota")}
    assert ("batch/v1", "Job") not in read  # the tests: not_ready skips them, the run lists its own
    assert ("rbac.authorization.k8s.io/v1", "ClusterRole") not in read  # nothing of the plan: not listed


def test_reconcile_never_prunes_a_test_runs_job() -> None:
    compiled = plan()
    env_plan = build_plan(validate(load_text(SPEC, "spec.yaml"), {}))
    planned_job = compiled.find("Job", "smoke")
    assert planned_job is not None
    job = job_for_run(planned_job.manifest, environment="demo", test="smoke", run_id="abcdef")
    assert is_test_run_object(job)
    inventory = Inventory(namespace=None, objects={})
    inventory.objects[key_of(job)] = job
    changes = reconcile(env_plan, inventory, now=datetime(2026, 1, 1, tzinfo=UTC))
    assert changes.prunes == ()


@pytest.mark.parametrize(
    ("results", "code"),
    [
        ([Result.PASSED, Result.PASSED], 0),
        ([Result.PASSED, Result.TIMED_OUT], 6),
        ([Result.TIMED_OUT, Result.FAILED], 5),
        ([Result.ERROR], 5),
        ([], 0),
    ],
)
def test_exit_codes(results: list[Result], code: int) -> None:
    assert exit_code_of(results) == code


def finished(test: str, result: str, reason: str | None = None, attempts: int = 1, retries: int = 0) -> TestFinished:
    return TestFinished(test, f"{test}-abcdef", result, 2.0, attempts, retries, reason, None, None, "abcdef")


def render(*events: Any) -> str:
    out = io.StringIO()
    sink = TerminalSink(out, live=False)
    emitter = Emitter(sink, operation="test")
    for event in events:
        emitter.emit(event)
    return out.getvalue()


def test_the_terminal_prefixes_log_lines_only_when_several_tests_run() -> None:
    one = render(TestRunStarted("abcdef", ("smoke",)), TestLog("smoke", "smoke-abcdef-x", None, "hello"))
    assert one.splitlines() == ["run abcdef: 1 test (smoke)", "hello"]
    two = render(TestRunStarted("abcdef", ("a", "b")), TestLog("b", "b-abcdef-x", None, "hello"))
    assert two.splitlines()[-1] == "b | hello"


def test_the_summary_table_lists_tests_in_the_spec_order_with_attempts_and_reasons() -> None:
    text = render(
        TestRunStarted("abcdef", ("integration", "smoke")),
        TestStarted("integration", "integration-abcdef", "abcdef", "img", 600, 0),
        TestQueued("smoke", "waiting for room in the quota: needs limits.cpu 250m but the quota leaves 0"),
        finished("smoke", "failed", "exit code 3", attempts=3, retries=2),
        finished("integration", "passed"),
        TestJobsDeleted("abcdef", ("integration-abcdef", "smoke-abcdef"), "cleanup"),
        TestSummary("abcdef", 1, 1, 0, 0, 0, 4.0, "report.xml", 5),
    )
    assert text.splitlines() == [
        "run abcdef: 2 tests (integration, smoke)",
        "started   integration  job/integration-abcdef  timeout 10m",
        "queued    smoke: waiting for room in the quota: needs limits.cpu 250m but the quota leaves 0",
        "FAILED    smoke  2.0s  exit code 3",
        "passed    integration  2.0s",
        "deleted   2 test Jobs of run abcdef (--cleanup): integration-abcdef, smoke-abcdef",
        "TEST         RESULT  DURATION  ATTEMPTS  REASON",
        "integration  passed  2.0s      1/1       -",
        "smoke        failed  2.0s      3/3       exit code 3",
        "run abcdef: 1 passed, 1 failed in 4.0s; JUnit report: report.xml",
    ]


def test_the_json_form_of_test_events_and_secrets_masked_in_log_lines() -> None:
    out = io.StringIO()
    emitter = Emitter(JsonLinesSink(out), operation="test", environment="demo", namespace="envspec-demo")
    emitter.with_secrets(["s3cret"]).emit(
        TestLog("smoke", "smoke-abcdef-x", "2026-01-01T00:00:00.000000001Z", "pw=s3cret")
    )
    [line] = [json.loads(text) for text in out.getvalue().splitlines()]
    assert line["event"] == "test_log"
    assert (line["test"], line["pod"], line["line"]) == ("smoke", "smoke-abcdef-x", "pw=******")
    assert line["operation"] == "test" and line["namespace"] == "envspec-demo"
    recorder = Recorder()
    Emitter(recorder, operation="test").emit(finished("smoke", "timed_out", "DeadlineExceeded: ..."))
    [envelope] = recorder.envelopes
    assert isinstance(envelope, Envelope)
    as_dict = envelope_to_dict(envelope)
    assert {k: as_dict[k] for k in ("event", "result", "duration_seconds", "attempts", "retries", "exit_code")} == {
        "event": "test_finished",
        "result": "timed_out",
        "duration_seconds": 2.0,
        "attempts": 1,
        "retries": 0,
        "exit_code": None,
    }


def test_the_first_signal_cancels_what_runs_and_is_named() -> None:
    from envspec.lifecycle.signals import GracefulStop
    from envspec.operations.test import _interruptible

    async def main() -> tuple[str | None, list[str], str | None]:
        stop = GracefulStop()
        reached: list[str] = []

        async def body() -> None:
            reached.append("started")
            stop.signal_name = "SIGTERM"
            stop.requested.set()  # as the signal listener does
            await anyio.sleep_forever()

        interrupted = await _interruptible(stop, body)
        again = await _interruptible(stop, body)  # a signal already received: nothing more starts
        return interrupted, reached, again

    interrupted, reached, again = anyio.run(main)
    assert (interrupted, reached, again) == ("SIGTERM", ["started"], "SIGTERM")


def test_without_signal_handling_the_body_just_runs() -> None:
    from envspec.operations.test import _interruptible

    ran: list[bool] = []

    async def body() -> None:
        ran.append(True)

    assert anyio.run(_interruptible, None, body) is None
    assert ran == [True]
