"""`envspec test` against the real local control plane: the installed command, its exit codes, JSON and JUnit.

The plain path (kwok completes Job pods at once with exit 0) runs on the shared test
cluster: the Jobs' names and labels, the summary, the JUnit report read back with
junitparser, the exit codes, keeping the last 3 runs, --cleanup, ad-hoc tests, the
quota fit check, `up` leaving test Jobs alone, and --up/--down.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from junitparser import Error, JUnitXml, TestSuite

from envspec.cluster import ClusterInfo
from tests.cluster_fixtures import envspec_env, kubectl

pytestmark = pytest.mark.cluster

ENVSPEC = str(Path(sys.executable).parent / "envspec")  # the installed command, as CI calls it

SPEC = """\
apiVersion: envspec/v1
name: {name}
ttl: 30m
databases:
  db:
    engine: postgresql
services:
  api:
    image: registry.example.com/api:1
    port: 8000
tests:
  unit:
    image: registry.example.com/tests:1
    command: pytest -x
    env:
      API_URL: ${{api.url}}
      DATABASE_URL: ${{db.url}}
    timeout: 2m
    resources:
      limits: {{cpu: 200m, memory: 128Mi}}
  smoke:
    image: curlimages/curl:8
    command: ["curl", "--fail", "${{api.url}}/healthz"]
    timeout: 1m
    retries: 1
    resources:
      limits: {{cpu: 200m, memory: 128Mi}}
"""


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.startswith("{")]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e["event"] == name]


@dataclass(frozen=True)
class Environment:
    cluster: ClusterInfo
    spec: Path
    name: str
    namespace: str

    def envspec(self, *args: str, timeout: float = 180) -> Run:
        done = subprocess.run(
            [ENVSPEC, *args, "-f", str(self.spec)],
            env=envspec_env(self.cluster),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    def jobs(self) -> list[dict[str, Any]]:
        listing = json.loads(kubectl(self.cluster, "get", "jobs", "-n", self.namespace, "-o", "json"))
        items: list[dict[str, Any]] = listing["items"]
        return items


@pytest.fixture
def environment(kube_cluster: ClusterInfo, tmp_path: Path) -> Iterator[Environment]:
    name = f"tr-{secrets.token_hex(3)}"
    spec = tmp_path / "maestro-env.yaml"
    spec.write_text(SPEC.format(name=name))
    env = Environment(kube_cluster, spec, name, f"envspec-{name}")
    yield env
    kubectl(kube_cluster, "delete", "namespace", env.namespace, "--ignore-not-found", "--wait=false", check=False)


def read_junit(path: Path) -> TestSuite:
    suites = list(JUnitXml.fromfile(str(path)))
    assert len(suites) == 1
    only: TestSuite = suites[0]
    return only


def test_an_environment_that_is_not_up_is_exit_4_and_nothing_is_created(
    environment: Environment, tmp_path: Path
) -> None:
    report = tmp_path / "report.xml"
    run = environment.envspec("test", "--junit", str(report))
    assert run.code == 4, run.err
    suite = read_junit(report)  # CI reads it whatever happened: every test an error, with why
    assert (suite.tests, suite.errors) == (2, 2)
    for case in suite:
        [error] = case.result
        assert isinstance(error, Error) and error.type == "EnvironmentNotReady"
        assert error.message.startswith(f"environment {environment.name} is not on the cluster")
    assert f"environment {environment.name} is not on the cluster (no namespace {environment.namespace})" in run.err
    assert "--up" in run.err
    assert "Traceback" not in run.err
    found = kubectl(environment.cluster, "get", "namespace", environment.namespace, "--ignore-not-found", "-o", "name")
    assert found == ""


def test_up_then_every_test_passes_with_jobs_named_and_labelled_json_and_junit(
    environment: Environment, tmp_path: Path
) -> None:
    report = tmp_path / "report.xml"
    run = environment.envspec("test", "--up", "--junit", str(report), "-o", "json")
    assert run.code == 0, run.err

    [started_run] = run.of("test_run_started")
    run_id = started_run["run_id"]
    assert started_run["tests"] == ["unit", "smoke"]
    assert len(run_id) == 6
    started = {e["test"]: e for e in run.of("test_started")}
    assert set(started) == {"unit", "smoke"}
    assert started["unit"]["job"] == f"unit-{run_id}"
    assert started["unit"]["image"] == "registry.example.com/tests:1"
    assert (started["unit"]["timeout_seconds"], started["unit"]["retries"]) == (120, 0)
    assert (started["smoke"]["timeout_seconds"], started["smoke"]["retries"]) == (60, 1)
    finished = {e["test"]: e for e in run.of("test_finished")}
    for test in ("unit", "smoke"):
        assert finished[test]["result"] == "passed"
        assert finished[test]["attempts"] == 1
        assert finished[test]["reason"] is None and finished[test]["exit_code"] is None
        assert finished[test]["operation"] == "test"
        assert finished[test]["namespace"] == environment.namespace
    assert run.of("test_log") == []  # JSON holds log lines only with --logs
    [summary] = run.of("test_summary")
    assert (summary["passed"], summary["failed"], summary["timed_out"], summary["errors"], summary["skipped"]) == (
        2,
        0,
        0,
        0,
        0,
    )
    assert summary["exit_code"] == 0 and summary["junit"] == str(report)
    # The events of `up` come first, in the same stream.
    names = [e["event"] for e in run.events()]
    assert names.index("summary") < names.index("test_run_started")
    assert names[-1] == "operation_finished"
    # The `auto` quota has room for one test: smoke waits for unit, and starts as soon as
    # unit's pod has succeeded (the quota counts it no more), not a second later when the
    # Job controller marks unit's Job complete; unit's result is still its Job's.
    assert [e["test"] for e in run.of("test_queued")] == ["smoke"]
    order = [(e["event"], e.get("test")) for e in run.events()]
    assert order.index(("test_started", "smoke")) < order.index(("test_finished", "unit"))

    jobs = {job["metadata"]["name"]: job for job in environment.jobs()}
    assert set(jobs) == {f"unit-{run_id}", f"smoke-{run_id}"}
    for test in ("unit", "smoke"):
        conditions = jobs[f"{test}-{run_id}"]["status"]["conditions"]
        assert any(c["type"] == "Complete" and c["status"] == "True" for c in conditions), conditions
        labels = jobs[f"{test}-{run_id}"]["metadata"]["labels"]
        assert labels["envspec.dev/environment"] == environment.name
        assert labels["envspec.dev/test"] == test
        assert labels["envspec.dev/test-run"] == run_id
        assert labels["app.kubernetes.io/managed-by"] == "envspec"
    unit_env = {
        v["name"]: v.get("value") for v in jobs[f"unit-{run_id}"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert unit_env["API_URL"] == "http://api:8000"

    suite = read_junit(report)
    assert suite.name == environment.name
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (2, 0, 0, 0)
    cases = list(suite)
    assert [(c.name, c.classname, c.is_passed, c.result) for c in cases] == [
        ("unit", environment.name, True, []),
        ("smoke", environment.name, True, []),
    ]
    props = {p.name: p.value for p in suite.properties()}  # type: ignore[no-untyped-call]
    assert props == {"namespace": environment.namespace, "run_id": run_id}


def test_table_output_exit_codes_up_leaves_test_jobs_and_three_runs_are_kept(environment: Environment) -> None:
    assert environment.envspec("up").code == 0
    run_ids = []
    for _ in range(4):
        run = environment.envspec("test", "smoke")
        assert run.code == 0, run.err
        assert "passed    smoke" in run.out
        assert "TEST   RESULT  DURATION  ATTEMPTS  REASON" in run.out
        assert "smoke  passed" in run.out
        run_ids.append(run.out.split("run ", 1)[1].split(":", 1)[0])
    kept = sorted(job["metadata"]["labels"]["envspec.dev/test-run"] for job in environment.jobs())
    assert kept == sorted(run_ids[1:])  # the oldest run was pruned, the last 3 kept
    assert "deleted   1 test Job of run" in run.out or len(set(run_ids)) == 4

    again = environment.envspec("up", "-o", "json")
    assert again.code == 0, again.err
    [summary] = again.of("summary")
    assert summary["pruned"] == 0  # test Jobs are not the environment's objects
    assert len(environment.jobs()) == 3

    status = environment.envspec("status")
    assert "job/" not in status.out

    unknown = environment.envspec("test", "nope")
    assert unknown.code == 1
    assert "no test named 'nope' in the spec; its tests: unit, smoke" in unknown.err


def test_cleanup_deletes_this_runs_jobs(environment: Environment) -> None:
    run = environment.envspec("test", "--up", "--cleanup", "-o", "json")
    assert run.code == 0, run.err
    [deleted] = [e for e in run.of("test_jobs_deleted") if e["reason"] == "cleanup"]
    run_id = run.of("test_run_started")[0]["run_id"]
    assert sorted(deleted["jobs"]) == [f"smoke-{run_id}", f"unit-{run_id}"]
    remaining = [job for job in environment.jobs() if not job["metadata"].get("deletionTimestamp")]
    assert remaining == []


def test_ad_hoc_test_resolves_references_and_a_test_that_cannot_fit_is_refused_before_anything(
    environment: Environment,
) -> None:
    assert environment.envspec("up").code == 0
    # The spec's tests have limits of 200m; the ad-hoc test takes the defaults (1 CPU), which
    # the quota applied by `up` (sized for the spec's largest test) cannot hold.
    refused = environment.envspec("test", "--image", "busybox:1", "--command", "true")
    assert refused.code == 1, refused.err
    assert "test adhoc needs limits.cpu 1 but the quota leaves 200m" in refused.err
    assert environment.jobs() == []

    # Its references are checked as the spec's own: a located error, exit 1.
    invalid = environment.envspec("test", "--image", "busybox:1", "--env", "X=${db.nope}", "--name", "probe")
    assert invalid.code == 1
    assert "tests.probe.env.X: ${db.nope}: postgresql database 'db' has no attribute 'nope'" in invalid.err

    # With --up, the quota is applied with room for it.
    run = environment.envspec(
        "test",
        "--up",
        "--image",
        "busybox:1",
        "--command",
        "sh -c 'wget -qO- $API_URL'",
        "--env",
        "API_URL=${api.url}/ping",
        "--env",
        "PASSWORD=${db.password}",
        "--name",
        "probe",
        "-o",
        "json",
    )
    assert run.code == 0, run.err
    assert [e["test"] for e in run.of("test_finished")] == ["probe"]
    [job] = environment.jobs()
    assert job["metadata"]["labels"]["envspec.dev/test"] == "probe"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "busybox:1"
    assert container["command"] == ["sh", "-c", "wget -qO- $API_URL"]
    env = {v["name"]: v for v in container["env"]}
    assert env["API_URL"]["value"] == "http://api:8000/ping"
    assert env["PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "db-credentials", "key": "password"}}
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}


def test_up_and_down_in_one_command(environment: Environment, tmp_path: Path) -> None:
    report = tmp_path / "r.xml"
    run = environment.envspec("test", "--up", "--down", "--junit", str(report))
    assert run.code == 0, run.err
    assert f"deleted   namespace/{environment.namespace}" in run.out
    assert read_junit(report).tests == 2
    found = kubectl(environment.cluster, "get", "namespace", environment.namespace, "--ignore-not-found", "-o", "name")
    assert found == ""
