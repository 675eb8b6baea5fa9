"""`up` and `down` with Redis reporting, as a user runs them, against the local cluster and a real Redis:
the status entries and the results record read back with XRANGE, field by field; no secret in any
entry; an unreachable Redis changes nothing but one masked warning."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from base64 import b64decode
from pathlib import Path

import pytest
import redis

from envspec.cluster import ClusterInfo
from tests.cluster_fixtures import envspec_env, kubectl, run_envspec
from tests.redis_fixtures import RedisFactory, free_loopback_port, stream_entries

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "examples" / "quickstart" / "maestro-env.yaml"
STATUS, RESULTS = "maestro:streams:k8s:status", "maestro:streams:k8s:results"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
REDIS_PASSWORD = "rep0rt-" + uuid.uuid4().hex


def every_value(url: str) -> str:
    """Every field and value of every stream in Redis, as one text, to search for secrets."""
    with redis.Redis.from_url(url, decode_responses=True) as client:
        keys = [key for key in client.scan_iter() if client.type(key) == "stream"]
        return "\n".join(f"{k}={v}" for key in keys for _id, fields in client.xrange(key) for k, v in fields.items())


@pytest.mark.cluster
@pytest.mark.redis
def test_up_and_down_publish_status_entries_and_one_result_each(
    kube_cluster: ClusterInfo, redis_factory: RedisFactory
) -> None:
    server = redis_factory(password=REDIS_PASSWORD)
    env_id = "rep" + uuid.uuid4().hex[:5]
    environment, namespace = f"quickstart-{env_id}", f"envspec-quickstart-{env_id}"
    spec = ["-f", str(QUICKSTART), "--id", env_id]
    up = run_envspec(kube_cluster, "up", *spec, "--report-redis", server.url, "-o", "json", timeout=180)
    try:
        assert up.returncode == 0, up.stderr
        assert "warning" not in up.stderr
        password = kubectl(
            kube_cluster, "get", "secret", "db-credentials", "-n", namespace, "-o", "jsonpath={.data.password}"
        )
        status = stream_entries(server.url, STATUS)
        operation_id = json.loads(up.stdout.splitlines()[0])["operation_id"]
        for entry in status:
            assert TIME.match(entry["time"]), entry
            assert (entry["operation_id"], entry["operation"]) == (operation_id, "up")
            assert (entry["environment"], entry["namespace"]) == (environment, namespace)
        types = [entry["type"] for entry in status]
        assert types[0] == "envspec.environment.applying" and types[-1] == "environment.created"
        assert types.count("environment.created") == 1
        applied = {e["ref"]: e for e in status if e["type"] == "envspec.object.applied"}
        assert applied[f"namespace/{namespace}"]["action"] == "created"
        assert {"deployment/app", "statefulset/db"} <= set(applied)
        ready = [e for e in status if e["type"] == "envspec.object.ready"]
        assert {e["ref"] for e in ready} >= {"deployment/app", "statefulset/db"}
        assert all(float(e["seconds"]) >= 0 and e["event"] == "object_ready" for e in ready)
        assert "object_progress" not in {e["event"] for e in status}  # progress is not a phase transition

        [result] = stream_entries(server.url, RESULTS)
        record = json.loads(result.pop("data"))
        assert result == {
            "job_id": operation_id,
            "status": "success",
            "namespace": namespace,
            "resources_created": json.dumps(record["resources_created"], separators=(",", ":")),
            "duration_ms": str(record["duration_ms"]),
            "execution_id": environment,
            "operation": "up",
            "environment": environment,
            "time": record["time"],
            "exit_code": "0",
        }
        assert record["resources_created"][0] == f"namespace/{namespace}"
        assert {"deployment/app", "service/app", "statefulset/db"} <= set(record["resources_created"])
        assert record["duration_ms"] > 0 and "error" not in record

        again = run_envspec(kube_cluster, "up", *spec, "--report-redis", server.url, timeout=180)
        assert again.returncode == 0, again.stderr
        assert stream_entries(server.url, STATUS, newest_first=True, count=1)[0]["type"] == "environment.modified"
    finally:
        down = run_envspec(kube_cluster, "down", *spec, "--report-redis", server.url, timeout=180)
    assert down.returncode == 0, down.stderr
    last = stream_entries(server.url, STATUS, newest_first=True, count=2)
    assert [e["type"] for e in last] == ["environment.deleted", "envspec.environment.deleting"]
    assert last[0]["operation"] == "down" and float(last[0]["seconds"]) >= 0
    downs = [r for r in stream_entries(server.url, RESULTS) if r["operation"] == "down"]
    assert len(downs) == 1 and downs[0]["status"] == "success"
    assert json.loads(downs[0]["resources_created"]) == [f"namespace/{namespace}"]

    everything = every_value(server.url)
    assert password and password not in everything
    assert b64decode(password).decode() not in everything
    assert REDIS_PASSWORD not in everything + up.stdout + up.stderr + down.stdout + down.stderr


@pytest.mark.cluster
@pytest.mark.redis
def test_an_unreachable_redis_changes_nothing_but_one_masked_warning(
    kube_cluster: ClusterInfo, redis_factory: RedisFactory
) -> None:
    nowhere = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_loopback_port()}/0"
    masked = nowhere.replace(REDIS_PASSWORD, "****")
    env_id = "unr" + uuid.uuid4().hex[:5]
    spec = ["-f", str(QUICKSTART), "--id", env_id]
    up = run_envspec(kube_cluster, "up", *spec, "--report-redis", nowhere, timeout=180)
    try:
        assert up.returncode == 0, up.stderr
        warnings = [line for line in up.stderr.splitlines() if line.startswith("warning:")]
        [warning] = warnings
        assert warning.startswith(f"warning: Redis reporting to {masked}: unreachable (Error 111 connecting to")
        assert warning.endswith("); the operation goes on without reporting")
        assert REDIS_PASSWORD not in up.stdout + up.stderr
    finally:
        down = run_envspec(kube_cluster, "down", *spec, "--report-redis", nowhere, timeout=180)
    assert down.returncode == 0 and down.stderr.count("warning: Redis reporting to") == 1

    # A refused operation exits as it would have: the same code, the same message, one warning more.
    plain = run_envspec(kube_cluster, "down", "--name", "kube-system")
    env = dict(envspec_env(kube_cluster), ENVSPEC_REPORT_REDIS=nowhere)
    reported = subprocess.run(
        [sys.executable, "-m", "envspec", "down", "--name", "kube-system"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert plain.returncode == reported.returncode == 1
    assert [line for line in reported.stderr.splitlines() if not line.startswith("warning:")] == (
        plain.stderr.splitlines()
    )
    assert reported.stderr.count(f"warning: Redis reporting to {masked}") == 1

    # The flag wins over the variable: with a reachable Redis given by the flag, no warning at all.
    server = redis_factory()
    flagged = subprocess.run(
        [sys.executable, "-m", "envspec", "down", "--name", "kube-system", "--report-redis", server.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert flagged.returncode == 1 and "warning" not in flagged.stderr
    [result] = stream_entries(server.url, RESULTS)
    assert (result["status"], result["operation"], result["exit_code"]) == ("error", "down", "1")
    assert "refusing to delete namespace kube-system" in result["error"]


UNREACHABLE_API = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:%d", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: not-a-secret}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


@pytest.mark.redis
def test_an_operation_that_fails_reports_an_error_result_and_exits_as_it_would_have(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    server = redis_factory(password=REDIS_PASSWORD)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(UNREACHABLE_API % free_loopback_port())
    env = {key: value for key, value in os.environ.items() if key != "ENVSPEC_REPORT_REDIS"}
    env["KUBECONFIG"] = str(kubeconfig)

    def down(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "envspec", "down", "--name", "shop", "--timeout", "3s", *extra]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)

    plain, reported = down(), down("--report-redis", server.url)
    assert plain.returncode == reported.returncode == 3
    assert (reported.stdout, reported.stderr) == (plain.stdout, plain.stderr)
    types = [entry["type"] for entry in stream_entries(server.url, STATUS)]
    assert types == ["envspec.environment.deleting"]
    [result] = stream_entries(server.url, RESULTS)
    record = json.loads(result["data"])
    assert (record["status"], record["operation"], record["environment"], record["exit_code"]) == (
        "error",
        "down",
        "shop",
        3,
    )
    assert "cannot reach the Kubernetes API" in record["error"]
    assert REDIS_PASSWORD not in every_value(server.url) + reported.stderr


@pytest.mark.cluster
@pytest.mark.redis
def test_redis_stopped_during_up_up_succeeds_with_one_warning(
    kube_cluster: ClusterInfo, redis_factory: RedisFactory
) -> None:
    server = redis_factory(password=REDIS_PASSWORD)
    env_id = "stp" + uuid.uuid4().hex[:5]
    spec = ["-f", str(QUICKSTART), "--id", env_id]
    process = subprocess.Popen(
        [sys.executable, "-m", "envspec", "up", *spec, "--report-redis", server.url, "-o", "json"],
        env=envspec_env(kube_cluster),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if json.loads(line)["event"] == "object_applied":
                server.stop()  # Redis goes away in the middle of the run
                break
        rest, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        events = [json.loads(line)["event"] for line in [*lines, *rest.splitlines()]]
        assert events[-1] == "operation_finished" and "environment_ready" in events
        warnings = [line for line in err.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1 and warnings[0].startswith(
            f"warning: Redis reporting to {server.url.replace(REDIS_PASSWORD, '****')}: "
        )
        assert REDIS_PASSWORD not in rest + err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        run_envspec(kube_cluster, "down", *spec, timeout=180)


@pytest.mark.cluster
@pytest.mark.redis
def test_watch_reports_each_cycle_to_the_redis_its_spec_names(
    kube_cluster: ClusterInfo, redis_factory: RedisFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_watch import WatchProcess, spec_text

    server = redis_factory(password=REDIS_PASSWORD)
    monkeypatch.setenv("WATCH_REDIS", server.url)
    monkeypatch.delenv("ENVSPEC_REPORT_REDIS", raising=False)
    name = "wrep-" + uuid.uuid4().hex[:5]
    reporting = "reporting:\n  redis:\n    url: ${env.WATCH_REDIS}\n    streamPrefix: t:watch\n    maxLen: 500\n"
    path = tmp_path / "maestro-env.yaml"
    path.write_text(spec_text(name, extra=reporting))
    watch = WatchProcess(kube_cluster, path, "--down-on-exit", "-o", "json")
    try:
        watch.wait_for('"watch_started"')
        path.write_text(spec_text(name, replicas=2, extra=reporting))
        watch.wait_for('"watch_cycle"')
    finally:
        code, _out, err = watch.interrupt()
    assert code == 0, err
    assert "warning" not in err
    status = stream_entries(server.url, "t:watch:status")
    assert {(e["operation"], e["environment"], e["namespace"]) for e in status} == {("watch", name, f"envspec-{name}")}
    types = [e["type"] for e in status]
    assert "environment.created" in types and types[-1] == "environment.deleted"
    [cycle] = [e for e in status if e["event"] == "watch_cycle"]
    # Two replicas: the deployment, and the quota sized for it.
    configured = ["resourcequota/envspec-quota", "deployment/web"]
    assert cycle["type"] == "environment.modified" and json.loads(cycle["configured"]) == configured
    results = [json.loads(r["data"]) for r in stream_entries(server.url, "t:watch:results")]
    assert [(r["operation"], r["status"], r.get("cycle")) for r in results] == [
        ("watch", "success", 1),
        ("watch", "success", None),
    ]
    assert results[0]["resources_created"] == configured
    assert REDIS_PASSWORD not in every_value(server.url) + err


@pytest.mark.cluster
@pytest.mark.redis
def test_gc_reports_its_sweep_and_one_result(kube_cluster: ClusterInfo, redis_factory: RedisFactory) -> None:
    server = redis_factory()
    swept = run_envspec(kube_cluster, "gc", "--dry-run", "--report-redis", server.url, timeout=120)
    assert swept.returncode == 0, swept.stderr
    status = stream_entries(server.url, STATUS)
    [sweep] = [e for e in status if e["type"] == "envspec.gc.swept"]
    assert sweep["operation"] == "gc" and sweep["dry_run"] == "true" and int(sweep["examined"]) >= 0
    assert "environment.deleted" not in {e["type"] for e in status}  # a dry run deletes nothing
    [result] = stream_entries(server.url, RESULTS)
    assert (result["operation"], result["status"], result["job_id"]) == ("gc", "success", sweep["operation_id"])


def test_a_report_url_that_cannot_be_a_redis_url_is_a_usage_error_with_the_password_masked() -> None:
    for argv, env in (
        (["--report-redis", f"http://user:{REDIS_PASSWORD}@host:1/"], {}),
        ([], {"ENVSPEC_REPORT_REDIS": f"redis://:{REDIS_PASSWORD}@host:port/0"}),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "envspec", "down", "--name", "shop", *argv],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2 and "Invalid value for '--report-redis'" in done.stderr
        assert REDIS_PASSWORD not in done.stderr + done.stdout and "Traceback" not in done.stderr


TESTED_SPEC = """\
apiVersion: envspec/v1
name: {name}
ttl: 30m
resources:
  quota: {{cpu: "100", memory: 4Gi}}  # room for both tests at once: neither is queued
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
  passes:
    image: registry.example.com/tests:1
    env:
      DATABASE_URL: ${{db.url}}
    timeout: 2m
    resources:
      limits: {{cpu: 100m, memory: 64Mi}}
  fails:
    image: registry.example.com/tests:1
    timeout: 2m
    resources:
      limits: {{cpu: 100m, memory: 64Mi}}
    annotations:
      pod-container-failed.stage.kwok.x-k8s.io/name: fails
      pod-container-failed.stage.kwok.x-k8s.io/exit-code: "3"
      pod-complete.stage.kwok.x-k8s.io/weight: "0"
"""


def flat(value: object) -> str:
    """A value as a status entry holds it: strings as they are, the rest JSON-encoded."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


@pytest.mark.cluster
@pytest.mark.redis
def test_envspec_test_publishes_testcaserun_entries_with_outcomes_and_a_result_listing_every_test(
    kube_cluster: ClusterInfo, redis_factory: RedisFactory, tmp_path: Path
) -> None:
    server = redis_factory(password=REDIS_PASSWORD)
    name = "rept-" + uuid.uuid4().hex[:5]
    namespace = f"envspec-{name}"
    path = tmp_path / "maestro-env.yaml"
    path.write_text(TESTED_SPEC.format(name=name))
    spec = ["-f", str(path)]
    up = run_envspec(kube_cluster, "up", *spec, timeout=180)
    try:
        assert up.returncode == 0, up.stderr
        plain = run_envspec(kube_cluster, "test", *spec, timeout=180)
        reported = run_envspec(kube_cluster, "test", *spec, "--report-redis", server.url, "-o", "json", timeout=180)
        # One test fails: exit 5, with reporting as without; Redis adds no warning.
        assert plain.returncode == reported.returncode == 5, reported.stderr
        assert "warning" not in reported.stderr
        events = [json.loads(line) for line in reported.stdout.splitlines()]
        operation_id = events[0]["operation_id"]
        [run_started] = [e for e in events if e["event"] == "test_run_started"]
        run_id = run_started["run_id"]
        password = b64decode(
            kubectl(kube_cluster, "get", "secret", "db-credentials", "-n", namespace, "-o", "jsonpath={.data.password}")
        ).decode()
    finally:
        down = run_envspec(kube_cluster, "down", *spec, timeout=180)
    assert down.returncode == 0, down.stderr

    status = stream_entries(server.url, STATUS)
    for entry in status:
        assert TIME.match(entry["time"]), entry
        assert (entry["operation_id"], entry["operation"]) == (operation_id, "test")
        assert (entry["environment"], entry["namespace"]) == (name, namespace)
    tests_of = [(e["type"], e.get("test")) for e in status]
    # A failed attempt may be seen before its Job is judged: progress entries are optional,
    # and only of the failing test.
    progress = [t for t in tests_of if t[0] == "envspec.testcaserun.progress"]
    assert set(progress) <= {("envspec.testcaserun.progress", "fails")}, progress
    tests_of = [t for t in tests_of if t[0] != "envspec.testcaserun.progress"]
    assert tests_of[0] == ("testsuiterun.started", None) and tests_of[-1] == ("testsuiterun.finished", None)
    assert sorted(tests_of[1:-1]) == [
        ("testcaserun.finished", "fails"),
        ("testcaserun.finished", "passes"),
        ("testcaserun.started", "fails"),
        ("testcaserun.started", "passes"),
    ]
    assert "test_log" not in {e["event"] for e in status}  # log lines are not phase transitions

    # Every entry holds its JSON event's fields, as flat fields, plus `type` (and `outcome` when finished).
    as_json = {(e["event"], e.get("test")): e for e in events}
    for entry in status:
        event = as_json[(entry["event"], entry.get("test"))]
        expected = {key: flat(value) for key, value in event.items() if value is not None}
        extra = {k: entry[k] for k in ("type", "outcome") if k in entry}
        assert entry == {**expected, **extra}, entry
    finished = {e["test"]: e for e in status if e["type"] == "testcaserun.finished"}
    passes, fails = finished["passes"], finished["fails"]
    assert (passes["result"], passes["outcome"], passes["job"], passes["run_id"]) == (
        "passed",
        "success",
        f"passes-{run_id}",
        run_id,
    )
    assert (passes["attempts"], float(passes["duration_seconds"]) >= 0, "reason" not in passes) == ("1", True, True)
    assert (fails["result"], fails["outcome"], fails["reason"], fails["cause"], fails["exit_code"]) == (
        "failed",
        "failure",
        "exit code 3",
        "BackoffLimitExceeded",
        "3",
    )
    assert (fails["job"], fails["run_id"], fails["attempts"]) == (f"fails-{run_id}", run_id, "1")
    suite = status[-1]
    assert (suite["outcome"], suite["passed"], suite["failed"], suite["exit_code"]) == ("failure", "1", "1", "5")
    started = {e["test"]: e for e in status if e["type"] == "testcaserun.started"}
    assert started["fails"]["job"] == f"fails-{run_id}" and started["fails"]["run_id"] == run_id

    # One results record, in the original format, listing every test.
    [result] = stream_entries(server.url, RESULTS)
    record = json.loads(result.pop("data"))
    assert {key: flat(value) for key, value in record.items() if value is not None} == result
    assert (record["job_id"], record["status"], record["operation"], record["exit_code"]) == (
        operation_id,
        "error",
        "test",
        5,
    )
    assert (record["namespace"], record["execution_id"], record["environment"]) == (namespace, name, name)
    assert sorted(record["resources_created"]) == [f"job/fails-{run_id}", f"job/passes-{run_id}"]
    assert record["duration_ms"] > 0 and record["run_id"] == run_id
    assert "fails" in record["error"]
    by_name = {test["name"]: test for test in record["tests"]}
    assert by_name["passes"] == {
        "name": "passes",
        "result": "passed",
        "outcome": "success",
        "duration_seconds": float(passes["duration_seconds"]),
        "attempts": 1,
        "reason": None,
        "cause": None,
    }
    assert by_name["fails"] == {
        "name": "fails",
        "result": "failed",
        "outcome": "failure",
        "duration_seconds": float(fails["duration_seconds"]),
        "attempts": 1,
        "reason": "exit code 3",
        "cause": "BackoffLimitExceeded",
    }

    everything = every_value(server.url)
    assert len(password) >= 16 and password not in everything
    assert REDIS_PASSWORD not in everything + reported.stdout + reported.stderr


@pytest.mark.cluster
@pytest.mark.redis
def test_envspec_test_reports_through_the_variable_and_through_its_specs_reporting_section(
    kube_cluster: ClusterInfo, redis_factory: RedisFactory, tmp_path: Path
) -> None:
    server = redis_factory(password=REDIS_PASSWORD)
    name = "repv-" + uuid.uuid4().hex[:5]
    plain = tmp_path / "plain.yaml"
    plain.write_text(TESTED_SPEC.format(name=name))
    reporting = "reporting:\n  redis:\n    url: ${env.SPEC_REDIS}\n    streamPrefix: t:spec\n"
    reporting_spec = tmp_path / "reporting.yaml"
    reporting_spec.write_text(TESTED_SPEC.format(name=name) + reporting)
    env = {key: value for key, value in envspec_env(kube_cluster).items() if key != "ENVSPEC_REPORT_REDIS"}

    def test(path: Path, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "envspec", "test", "-f", str(path)]
        return subprocess.run(argv, env={**env, **extra}, capture_output=True, text=True, timeout=120, check=False)

    # The environment was never brought up: exit 4, reported like any failed operation.
    by_variable = test(plain, {"ENVSPEC_REPORT_REDIS": server.url})
    by_spec = test(reporting_spec, {"SPEC_REDIS": server.url})
    for done in (by_variable, by_spec):
        assert done.returncode == 4, done.stderr
        assert "warning" not in done.stderr and REDIS_PASSWORD not in done.stdout + done.stderr
    for stream in (RESULTS, "t:spec:results"):
        [result] = stream_entries(server.url, stream)
        record = json.loads(result["data"])
        assert (record["operation"], record["status"], record["exit_code"], record["environment"]) == (
            "test",
            "error",
            4,
            name,
        )
        assert f"environment {name} is not on the cluster" in record["error"]
