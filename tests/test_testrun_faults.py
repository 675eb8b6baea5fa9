"""`envspec test` when tests fail, time out, cannot start, log, or are interrupted: real outcomes on kwok.

The cluster's kwok Stage objects (templates/kwok/) turn pod annotations, set through
the spec's `tests.<name>.annotations`, into real pod states that the real Job controller
acts on: a container failing with exit code 3, a completion delayed past the test's
timeout, an image that never pulls (`does-not-exist`). A test asking more CPU than any
node has is left unschedulable by the real scheduler. Logs are served by kwok from a
file through the API server's real `pods/{name}/log` (the `served_logs` fixture).
Everything is driven through the installed `envspec` command.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from envspec.cluster import ClusterInfo
from tests.cluster_fixtures import ServedLogs, envspec_env, kubectl

pytestmark = pytest.mark.cluster

ENVSPEC = str(Path(sys.executable).parent / "envspec")

FAILS = """
    annotations:
      pod-container-failed.stage.kwok.x-k8s.io/name: {name}
      pod-container-failed.stage.kwok.x-k8s.io/exit-code: "3"
      pod-complete.stage.kwok.x-k8s.io/weight: "0"
"""
SLOW = """
    annotations:
      pod-complete.stage.kwok.x-k8s.io/delay: "600000"
"""
SMALL = """
    resources:
      limits: {cpu: 100m, memory: 64Mi}
"""

HEAD = """\
apiVersion: envspec/v1
name: {name}
ttl: 30m
resources:
  quota: {{cpu: "100", memory: 4Gi}}
databases:
  db:
    engine: postgresql
    resources:
      limits: {{cpu: 200m, memory: 256Mi}}
services:
  api:
    image: registry.example.com/api:1
    port: 8000
    resources:
      limits: {{cpu: 200m, memory: 128Mi}}
tests:
"""

TESTS = {
    "ok": "  ok:\n    image: registry.example.com/tests:1\n    env:\n      DATABASE_URL: ${db.url}\n" + SMALL,
    "fails": "  fails:\n    image: registry.example.com/tests:1\n    retries: 1\n" + SMALL + FAILS.format(name="fails"),
    "slow": "  slow:\n    image: registry.example.com/tests:1\n    timeout: 5s\n" + SMALL + SLOW,
    "nopull": "  nopull:\n    image: registry.example.com/does-not-exist:1\n" + SMALL,
    "huge": "  huge:\n    image: registry.example.com/tests:1\n    resources:\n"
    "      requests: {cpu: '64', memory: 64Mi}\n      limits: {cpu: '64', memory: 64Mi}\n",
    "hangs": "  hangs:\n    image: registry.example.com/tests:1\n    timeout: 10m\n" + SMALL + SLOW,
}


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.startswith("{")]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e["event"] == name]

    def finished(self) -> dict[str, dict[str, Any]]:
        return {e["test"]: e for e in self.of("test_finished")}


@dataclass(frozen=True)
class Environment:
    cluster: ClusterInfo
    spec: Path
    name: str
    namespace: str

    def command(self, *args: str) -> list[str]:
        return [ENVSPEC, *args, "-f", str(self.spec)]

    def envspec(self, *args: str, timeout: float = 180) -> Run:
        done = subprocess.run(
            self.command(*args),
            env=envspec_env(self.cluster),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    def jobs(self) -> list[dict[str, Any]]:
        listing = json.loads(kubectl(self.cluster, "get", "jobs", "-n", self.namespace, "-o", "json"))
        return [job for job in listing["items"] if not job["metadata"].get("deletionTimestamp")]


@pytest.fixture
def environment(kube_cluster: ClusterInfo, tmp_path: Path) -> Iterator[Environment]:
    name = f"tf-{secrets.token_hex(3)}"
    spec = tmp_path / "maestro-env.yaml"
    spec.write_text(HEAD.format(name=name) + "".join(TESTS.values()))
    env = Environment(kube_cluster, spec, name, f"envspec-{name}")
    assert env.envspec("up").code == 0
    yield env
    kubectl(kube_cluster, "delete", "namespace", env.namespace, "--ignore-not-found", "--wait=false", check=False)


def junit_cases(path: Path) -> tuple[TestSuite, dict[str, TestCase]]:
    [suite] = list(JUnitXml.fromfile(str(path)))
    return suite, {case.name: case for case in suite}


def test_failed_timed_out_and_unstartable_tests_each_get_their_result_reason_and_report(
    environment: Environment, tmp_path: Path
) -> None:
    report = tmp_path / "report.xml"
    run = environment.envspec("test", "ok", "fails", "slow", "nopull", "huge", "--junit", str(report), "-o", "json")
    assert run.code == 5, run.err  # a failure wins over a timeout

    finished = run.finished()
    assert finished["ok"]["result"] == "passed"
    fails = finished["fails"]
    assert (fails["result"], fails["reason"], fails["cause"], fails["exit_code"]) == (
        "failed",
        "exit code 3",
        "BackoffLimitExceeded",
        3,
    )
    assert (fails["attempts"], fails["retries"]) == (2, 1)
    slow = finished["slow"]
    assert (slow["result"], slow["cause"]) == ("timed_out", "DeadlineExceeded")
    assert slow["reason"] == "DeadlineExceeded: the test did not finish after 5s (its timeout)"
    nopull = finished["nopull"]
    assert (nopull["result"], nopull["cause"]) == ("error", "ErrImagePull")
    assert nopull["reason"].startswith("cannot pull image registry.example.com/does-not-exist:1: ErrImagePull")
    huge = finished["huge"]
    assert (huge["result"], huge["cause"]) == ("error", "Unschedulable")
    assert huge["reason"].startswith("unschedulable: 0/")
    # The tests that could not start failed at once, long before their 30m timeout,
    # and their Jobs were deleted rather than left retrying.
    deleted = [e for e in run.of("test_jobs_deleted") if e["reason"] == "not started"]
    run_id = run.of("test_run_started")[0]["run_id"]
    assert sorted(job for e in deleted for job in e["jobs"]) == [f"huge-{run_id}", f"nopull-{run_id}"]
    assert sorted(job["metadata"]["name"] for job in environment.jobs()) == [
        f"fails-{run_id}",
        f"ok-{run_id}",
        f"slow-{run_id}",
    ]
    [summary] = run.of("test_summary")
    assert (summary["passed"], summary["failed"], summary["timed_out"], summary["errors"]) == (1, 1, 1, 2)
    assert summary["exit_code"] == 5
    [last] = run.of("operation_finished")
    assert (last["ok"], last["exit_code"]) == (False, 5)

    suite, cases = junit_cases(report)
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (5, 2, 2, 0)
    assert cases["ok"].is_passed
    [failure] = cases["fails"].result
    assert isinstance(failure, Failure)
    assert (failure.message, failure.type) == ("exit code 3", "BackoffLimitExceeded")
    [timeout] = cases["slow"].result
    assert isinstance(timeout, Failure)
    assert (timeout.message, timeout.type) == (slow["reason"], "DeadlineExceeded")
    [error] = cases["nopull"].result
    assert isinstance(error, Error)
    assert (error.message, error.type) == (nopull["reason"], "ErrImagePull")
    [unschedulable] = cases["huge"].result
    assert isinstance(unschedulable, Error) and unschedulable.type == "Unschedulable"


def test_a_timeout_alone_is_exit_6_and_the_table_says_why(environment: Environment) -> None:
    run = environment.envspec("test", "ok", "slow")
    assert run.code == 6, run.err
    assert "TIMED OUT slow" in run.out
    assert "slow  timed out" in run.out and "DeadlineExceeded: the test did not finish after 5s" in run.out
    assert "1 passed, 1 timed out" in run.out
    assert "1 of 2 tests did not pass: slow (timed out" in run.err


def test_envspec_timeout_cuts_tests_still_running(environment: Environment, tmp_path: Path) -> None:
    report = tmp_path / "r.xml"
    run = environment.envspec("test", "hangs", "--timeout", "3s", "--junit", str(report), "-o", "json")
    assert run.code == 6, run.err
    hangs = run.finished()["hangs"]
    assert (hangs["result"], hangs["reason"]) == ("timed_out", "envspec --timeout 3s passed")
    [deleted] = run.of("test_jobs_deleted")  # given up on: it would hold the quota for 10m
    assert (deleted["reason"], deleted["jobs"]) == ("timed out", [hangs["job"]])
    assert environment.jobs() == []
    _, cases = junit_cases(report)
    [failure] = cases["hangs"].result
    assert isinstance(failure, Failure) and failure.message == "envspec --timeout 3s passed"


def test_served_logs_are_streamed_prefixed_kept_in_the_report_and_shown_by_envspec_logs(
    environment: Environment, served_logs: ServedLogs, tmp_path: Path
) -> None:
    served_logs.for_namespace(environment.namespace, ["collected 2 items", "test_api PASSED", "2 passed"])
    report = tmp_path / "r.xml"
    run = environment.envspec("test", "ok", "fails", "--junit", str(report))
    assert run.code == 5, run.err
    lines = run.out.splitlines()
    assert "ok | collected 2 items" in lines and "ok | 2 passed" in lines
    assert lines.count("fails | test_api PASSED") == 2  # one per attempt, each pod's log once
    _, cases = junit_cases(report)
    assert cases["ok"].system_out == "collected 2 items\ntest_api PASSED\n2 passed"
    [failure] = cases["fails"].result
    assert isinstance(failure, Failure)
    assert failure.text.split("\n") == ["log:", *(["collected 2 items", "test_api PASSED", "2 passed"] * 2)]

    as_json = environment.envspec("test", "ok", "-o", "json", "--logs")
    assert as_json.code == 0, as_json.err
    logged = as_json.of("test_log")
    assert [e["line"] for e in logged] == ["collected 2 items", "test_api PASSED", "2 passed"]
    assert all(e["test"] == "ok" and e["pod"].startswith("ok-") and e["log_time"].endswith("Z") for e in logged)
    assert environment.envspec("test", "ok", "-o", "json").of("test_log") == []  # only with --logs

    shown = environment.envspec("logs", "fails")
    assert shown.code == 0, shown.err
    pods = sorted({line.split(" | ")[0] for line in shown.out.splitlines()})
    assert len(pods) == 2 and all(pod.startswith("fails-") for pod in pods)  # the last run's two attempts
    last = environment.envspec("logs", "ok", "--tail", "1")
    assert last.out == "2 passed\n"  # one pod: no prefix
    api = environment.envspec("logs", "api")
    assert api.out.splitlines() == ["collected 2 items", "test_api PASSED", "2 passed"]
    unknown = environment.envspec("logs", "nope")
    assert unknown.code == 1 and "no service, database or test named 'nope'" in unknown.err
    never = environment.envspec("logs", "slow")
    assert never.code == 1 and "test slow has not run" in never.err


def _wait_for_line(stream: IO[str], needle: str, seen: list[str]) -> None:
    for line in stream:
        seen.append(line)
        if needle in line:
            return
    pytest.fail(f"the command ended before printing {needle!r}: {''.join(seen)}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_writes_the_report_deletes_this_runs_jobs_and_exits_130(
    environment: Environment, tmp_path: Path, signum: signal.Signals
) -> None:
    report = tmp_path / "r.xml"
    process = subprocess.Popen(
        environment.command("test", "ok", "hangs", "--junit", str(report), "-o", "json"),
        env=envspec_env(environment.cluster),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    assert process.stdout is not None
    _wait_for_line(process.stdout, '"test_finished"', seen)  # ok has passed, hangs runs
    process.send_signal(signum)
    rest, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    events = [json.loads(line) for line in [*seen, *rest.splitlines()] if line.startswith("{")]
    [deleted] = [e for e in events if e["event"] == "test_jobs_deleted"]
    assert deleted["reason"] == "interrupted"
    run_id = deleted["run_id"]
    assert sorted(deleted["jobs"]) == [f"hangs-{run_id}", f"ok-{run_id}"]
    assert environment.jobs() == []
    assert f"interrupted by {signum.name}" in err
    suite, cases = junit_cases(report)
    assert cases["ok"].is_passed
    [skipped] = cases["hangs"].result
    assert isinstance(skipped, Skipped) and skipped.message == "interrupted before it finished"
    assert (suite.tests, suite.skipped) == (2, 1)


def test_keep_leaves_the_jobs_of_an_interrupted_run(environment: Environment, tmp_path: Path) -> None:
    process = subprocess.Popen(
        environment.command("test", "hangs", "--keep", "-o", "json"),
        env=envspec_env(environment.cluster),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    assert process.stdout is not None
    _wait_for_line(process.stdout, '"test_started"', seen)
    time.sleep(0.5)  # not a timed assertion: only lets the Job controller create the pod
    os.kill(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    run_id = json.loads(seen[-1])["run_id"]
    assert [job["metadata"]["name"] for job in environment.jobs()] == [f"hangs-{run_id}"]
    assert f"kubectl delete jobs -l envspec.dev/test-run={run_id}" in err


def test_down_runs_whatever_the_result(environment: Environment) -> None:
    run = environment.envspec("test", "fails", "--down")
    assert run.code == 5, run.err
    assert f"deleted   namespace/{environment.namespace}" in run.out
    found = kubectl(environment.cluster, "get", "namespace", environment.namespace, "--ignore-not-found", "-o", "name")
    assert found == ""


def test_a_generated_password_in_a_log_is_masked_everywhere(
    environment: Environment, served_logs: ServedLogs, tmp_path: Path
) -> None:
    encoded = kubectl(
        environment.cluster,
        "get",
        "secret",
        "db-credentials",
        "-n",
        environment.namespace,
        "-o",
        "jsonpath={.data.password}",
    )
    password = base64.b64decode(encoded).decode()
    assert len(password) >= 16
    served_logs.for_namespace(environment.namespace, [f"connecting with {password}", "ok"])
    report = tmp_path / "r.xml"
    table = environment.envspec("test", "ok", "--junit", str(report))
    assert table.code == 0, table.err
    as_json = environment.envspec("test", "ok", "-o", "json", "--logs")
    for output in (table.out, as_json.out, report.read_text()):
        assert password not in output
        assert "connecting with ******" in output


def test_logs_follow_prints_appended_lines_until_interrupted(environment: Environment, served_logs: ServedLogs) -> None:
    path = served_logs.for_namespace(environment.namespace, ["starting", "listening on :8000"])
    process = subprocess.Popen(
        environment.command("logs", "api", "--follow"),
        env=envspec_env(environment.cluster),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    seen: list[str] = []
    _wait_for_line(process.stdout, "listening on :8000", seen)
    served_logs.append(path, ["GET /healthz 200"])
    _wait_for_line(process.stdout, "GET /healthz 200", seen)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert process.returncode == 130
    assert [line.rstrip("\n") for line in seen] == ["starting", "listening on :8000", "GET /healthz 200"]


def test_a_job_left_by_a_run_that_died_is_not_taken_for_the_current_run(environment: Environment) -> None:
    process = subprocess.Popen(
        environment.command("test", "hangs", "-o", "json"),
        env=envspec_env(environment.cluster),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    assert process.stdout is not None
    _wait_for_line(process.stdout, '"test_started"', seen)
    process.kill()  # the run dies without cleaning up
    process.communicate(timeout=60)
    dead_run = json.loads(seen[-1])["run_id"]

    run = environment.envspec("test", "hangs", "ok", "--timeout", "4s", "-o", "json")
    assert run.code == 6, run.err
    run_id = run.of("test_run_started")[0]["run_id"]
    assert run_id != dead_run
    assert {e["job"] for e in run.of("test_started")} == {f"hangs-{run_id}", f"ok-{run_id}"}
    finished = run.finished()
    assert finished["hangs"]["job"] == f"hangs-{run_id}" and finished["hangs"]["attempts"] == 1
    assert finished["ok"]["result"] == "passed"
    # The dead run's Job still runs: not pruned, not deleted, not reported.
    assert not any(dead_run in " ".join(e["jobs"]) for e in run.of("test_jobs_deleted"))
    names = {job["metadata"]["name"] for job in environment.jobs()}
    assert f"hangs-{dead_run}" in names


def test_a_test_refused_by_the_quota_for_now_waits_and_says_why(environment: Environment) -> None:
    # Another pod (not envspec's) takes the quota's room: the test's pod is refused by the
    # real admission until room comes, which the run reports instead of failing the test.
    blocker = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "blocker", "namespace": environment.namespace},
        "spec": {
            "containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "3700Mi"}}}]
        },
    }
    kubectl(environment.cluster, "apply", "-f", "-", stdin=json.dumps(blocker))
    run = environment.envspec("test", "ok", "--timeout", "5s", "-o", "json")
    assert run.code == 6, run.err
    reasons = [e["reason"] for e in run.of("test_progress")]
    assert any(r.startswith("waiting for room in the quota: ") and "exceeded quota" in r for r in reasons), reasons
    ok = run.finished()["ok"]
    assert (ok["result"], ok["reason"]) == ("timed_out", "envspec --timeout 5s passed")
