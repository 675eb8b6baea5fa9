"""`envspec worker` as it is run: a process reading a real Redis, serving requests against the local
cluster, answering in the results stream, acknowledging only after; malformed requests dead-lettered
without stopping it; SIGTERM exits 0."""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from ruamel.yaml import YAML

from envspec.cluster import ClusterInfo
from tests.cluster_fixtures import envspec_env, run_kubectl
from tests.redis_fixtures import stream_entries

PREFIX = "t:worker"
JOBS, RESULTS, STATUS, DEAD = (f"{PREFIX}:{name}" for name in ("jobs", "results", "status", "dead"))
REPO = Path(__file__).resolve().parent.parent
REDIS_PASSWORD = "w0rker-" + uuid.uuid4().hex


@contextmanager
def worker(url: str, env: dict[str, str], *args: str, consumer: str = "w1") -> Iterator[subprocess.Popen[str]]:
    """`envspec worker` in its own process; stopped with SIGTERM, which must end it with 0 (unless killed)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "envspec", "worker", "--stream-prefix", PREFIX, "--consumer", consumer, *args],
        env={**env, "REDIS_URL": url, "K8S_NAMESPACE_PREFIX": "quality-fabric"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            out, err = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            pytest.fail(f"the worker did not stop on SIGTERM: {err[-3000:]}")
    assert process.returncode in (0, -signal.SIGKILL), err[-3000:]
    assert REDIS_PASSWORD not in out + err


def wait_until(condition: Callable[[], Any], what: str, seconds: float = 180.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def result_of(url: str, job_id: str) -> dict[str, str] | None:
    found = [entry for entry in stream_entries(url, RESULTS) if entry.get("job_id") == job_id]
    return found[-1] if found else None


def pending(url: str) -> int:
    with redis.Redis.from_url(url, decode_responses=True) as client:
        summary: Any = client.xpending(JOBS, "envspec")
        return int(summary["pending"])


def add(url: str, fields: dict[str, str]) -> str:
    with redis.Redis.from_url(url, decode_responses=True) as client:
        return str(client.xadd(JOBS, fields))


@pytest.mark.redis
def test_malformed_requests_get_an_error_result_and_a_dead_letter_and_the_worker_serves_on(
    redis_factory: Callable[..., Any],
) -> None:
    server = redis_factory(password=REDIS_PASSWORD)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "K8S_IN_CLUSTER")}
    malformed = {
        "bad-json": ({"data": "{not json"}, "data: not valid JSON"),
        "no-operation": ({"job_id": "no-operation", "execution_id": "x1"}, "operation: required"),
        "unknown-op": ({"job_id": "unknown-op", "execution_id": "x1", "operation": "fly"}, "operation: Input should"),
        "bad-id": ({"job_id": "bad-id", "execution_id": "Not_A_Name", "operation": "status"}, "cannot name an env"),
        "bad-spec": (
            {
                "data": json.dumps(
                    {
                        "job_id": "bad-spec",
                        "execution_id": "x2",
                        "operation": "create",
                        "spec": {"apiVersion": "envspec/v1", "services": {"api": {"image": "a:1", "replicas": -1}}},
                    }
                )
            },
            "spec.services.api.replicas",
        ),
        "test-op": (
            {"job_id": "test-op", "execution_id": "x3", "operation": "test"},
            "operation 'test' needs `config` or `spec` here",
        ),
    }
    with worker(server.url, env, "--claim-idle", "5s"):
        ids = {job: add(server.url, fields) for job, (fields, _reason) in malformed.items()}
        wait_until(lambda: len(stream_entries(server.url, DEAD)) == len(malformed), "every dead letter")
        wait_until(lambda: pending(server.url) == 0, "every entry acknowledged")
        results = {entry["job_id"]: entry for entry in stream_entries(server.url, RESULTS)}
        dead = {entry["dead_letter_id"]: entry for entry in stream_entries(server.url, DEAD)}
        for job, (fields, reason) in malformed.items():
            # A request whose job_id cannot be read is answered under its stream entry's ID.
            result = results[job if job != "bad-json" else ids[job]]
            assert result["status"] == "error" and reason in result["error"], (job, result)
            assert json.loads(result["data"])["error"] == result["error"]
            letter = dead[ids[job]]
            assert {k: letter[k] for k in fields} == fields  # the original fields, as they were
            assert reason in letter["dead_letter_reason"] and letter["dead_letter_consumer"] == "w1"
        # Still serving: one more malformed request is answered too.
        add(server.url, {"job_id": "after", "operation": "status"})
        wait_until(lambda: result_of(server.url, "after"), "the next request's result")
    assert REDIS_PASSWORD not in "".join(json.dumps(e) for e in stream_entries(server.url, RESULTS))


@pytest.mark.cluster
@pytest.mark.redis
def test_the_worker_creates_and_deletes_an_environment_from_original_format_requests(
    kube_cluster: ClusterInfo, redis_factory: Callable[..., Any]
) -> None:
    server = redis_factory(password=REDIS_PASSWORD)
    execution_id = "wrk-" + uuid.uuid4().hex[:6]
    namespace = f"quality-fabric-{execution_id}"
    config = {"app_image": "myapp:latest", "app_port": 8000, "database": "postgresql", "ttl_minutes": 60}
    create = {"job_id": f"job-{execution_id}", "execution_id": execution_id, "operation": "create", "config": config}
    with worker(server.url, envspec_env(kube_cluster), "--concurrency", "2"):
        add(server.url, {"data": json.dumps(create)})
        created = wait_until(lambda: result_of(server.url, create["job_id"]), "the create's result")  # type: ignore[arg-type]
        try:
            record = json.loads(created.pop("data"))
            assert record["status"] == "success", record
            assert (record["namespace"], record["execution_id"], record["operation"]) == (
                namespace,
                execution_id,
                "create",
            )
            assert record["resources_created"] == ["namespace", "postgres", "deployment", "service"]
            assert record["duration_ms"] > 0
            assert created["resources_created"] == '["namespace","postgres","deployment","service"]'
            wait_until(lambda: pending(server.url) == 0, "the create acknowledged")
            deployment = json.loads(
                run_kubectl(kube_cluster, "get", "deployment/app", "-n", namespace, "-o", "json").stdout
            )
            assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "myapp:latest"
            encoded = run_kubectl(
                kube_cluster,
                "get",
                "secret",
                "postgres-credentials",
                "-n",
                namespace,
                "-o",
                "jsonpath={.data.password}",
            ).stdout
            db_password = base64.b64decode(encoded).decode()
            status = [e for e in stream_entries(server.url, STATUS) if e["operation_id"] == create["job_id"]]
            assert next(e["type"] for e in status) == "envspec.environment.applying"
            assert "environment.created" in [e["type"] for e in status]
            assert all(e["operation"] == "create" for e in status)

            # The flat encoding: a status request.
            add(server.url, {"job_id": f"status-{execution_id}", "execution_id": execution_id, "operation": "status"})
            status_result = wait_until(lambda: result_of(server.url, f"status-{execution_id}"), "the status result")
            assert status_result["status"] == "success" and status_result["namespace"] == namespace
        finally:
            add(server.url, {"job_id": f"delete-{execution_id}", "execution_id": execution_id, "operation": "delete"})
            deleted = wait_until(lambda: result_of(server.url, f"delete-{execution_id}"), "the delete's result")
        assert deleted["status"] == "success" and deleted["namespace"] == namespace
        wait_until(lambda: pending(server.url) == 0, "the delete acknowledged")
        assert run_kubectl(kube_cluster, "get", "namespace", namespace).returncode != 0
        deleted_status = [
            e for e in stream_entries(server.url, STATUS) if e["operation_id"] == f"delete-{execution_id}"
        ]
        assert "environment.deleted" in [e["type"] for e in deleted_status]
    everything = json.dumps([stream_entries(server.url, s) for s in (RESULTS, STATUS, DEAD)])
    assert REDIS_PASSWORD not in everything
    assert len(db_password) >= 16 and db_password not in everything and encoded not in everything
    assert stream_entries(server.url, DEAD) == []


@pytest.mark.cluster
@pytest.mark.redis
def test_a_full_spec_request_whose_worker_is_killed_mid_job_is_completed_by_another(
    kube_cluster: ClusterInfo, redis_factory: Callable[..., Any]
) -> None:
    server = redis_factory()
    document = YAML(typ="safe").load((REPO / "examples" / "fullstack" / "maestro-env.yaml").read_text())
    del document["name"]  # the execution id names it
    execution_id = "kill-" + uuid.uuid4().hex[:6]
    namespace = f"quality-fabric-{execution_id}"  # the spec's own namespacePrefix
    job_id = f"job-{execution_id}"
    env = envspec_env(kube_cluster)
    with worker(server.url, env, "--claim-idle", "2s") as first:
        add(
            server.url,
            {"job_id": job_id, "execution_id": execution_id, "operation": "create", "spec": json.dumps(document)},
        )

        def applying() -> bool:
            return any(
                e["operation_id"] == job_id and e["type"] == "envspec.object.applied"
                for e in stream_entries(server.url, STATUS)
            )

        wait_until(applying, "the first worker applying")
        first.kill()  # SIGKILL: no drain, no XACK, its lock left to expire
        first.wait(30)
        assert result_of(server.url, job_id) is None, "the job finished before the worker was killed"
    try:
        with worker(server.url, env, "--claim-idle", "2s", consumer="w2"):
            created = wait_until(lambda: result_of(server.url, job_id), "the second worker's result")
            assert created["status"] == "success", created
            assert created["namespace"] == namespace
            assert json.loads(created["resources_created"]) == [
                "namespace",
                "postgres/db",
                "redis/cache",
                "deployment/api",
                "service/api",
                "deployment/worker",
            ]
            wait_until(lambda: pending(server.url) == 0, "the request acknowledged")
            assert [r["job_id"] for r in stream_entries(server.url, RESULTS)] == [job_id]  # one result
            deployments = run_kubectl(kube_cluster, "get", "deployments", "-n", namespace, "-o", "name").stdout
            assert deployments.split() == ["deployment.apps/api", "deployment.apps/worker"]
            add(server.url, {"job_id": "del", "execution_id": execution_id, "operation": "delete"})
            assert wait_until(lambda: result_of(server.url, "del"), "the delete")["status"] == "success"
    finally:
        run_kubectl(kube_cluster, "delete", "namespace", namespace, "--ignore-not-found", "--wait=false")
    assert stream_entries(server.url, DEAD) == []


@pytest.mark.redis
def test_a_worker_survives_a_redis_restart_and_serves_on(redis_factory: Callable[..., Any]) -> None:
    server = redis_factory(password=REDIS_PASSWORD, persistent=True)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "K8S_IN_CLUSTER")}
    with worker(server.url, env) as process:
        add(server.url, {"job_id": "before", "operation": "status"})
        wait_until(lambda: result_of(server.url, "before"), "the result before the restart")
        server.restart()
        add(server.url, {"job_id": "after", "operation": "status"})
        after = wait_until(lambda: result_of(server.url, "after"), "the result after the restart", seconds=60)
        assert after["status"] == "error" and "execution_id" in after["error"]
        wait_until(lambda: pending(server.url) == 0, "both acknowledged")
        assert process.poll() is None  # still serving
    assert [r["job_id"] for r in stream_entries(server.url, RESULTS)] == ["before", "after"]


@pytest.mark.redis
def test_a_worker_that_cannot_work_says_why_and_exits_1(redis_factory: Callable[..., Any]) -> None:
    server = redis_factory(password=REDIS_PASSWORD)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "K8S_"))}

    def start(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "envspec", "worker", "--stream-prefix", PREFIX, *args],
            env={**base, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    nothing = start({})
    assert nothing.returncode == 1 and "give --redis URL or set REDIS_URL" in nothing.stderr
    bad = start({"REDIS_URL": server.url, "K8S_TTL_MINUTES": "soon", "K8S_IN_CLUSTER": "maybe"})
    assert bad.returncode == 1
    assert "K8S_TTL_MINUTES='soon'" in bad.stderr and "K8S_IN_CLUSTER='maybe'" in bad.stderr
    wrong = start({"REDIS_URL": server.url.replace(REDIS_PASSWORD, "not-the-password")})
    assert wrong.returncode == 1 and "refused the credentials" in wrong.stderr
    no_lock = start({"REDIS_URL": server.url}, "--lock-ttl", "0s")
    # A usage error, as every option's bad value (exit 2): the lock must live a while to be renewed.
    assert no_lock.returncode == 2 and "Invalid value for '--lock-ttl'" in no_lock.stderr
    for result in (nothing, bad, wrong, no_lock):
        assert "Traceback" not in result.stderr and REDIS_PASSWORD not in result.stderr
    assert "not-the-password" not in wrong.stderr


@pytest.mark.cluster
@pytest.mark.redis
def test_sigterm_mid_job_finishes_the_job_then_exits_0(
    kube_cluster: ClusterInfo, redis_factory: Callable[..., Any]
) -> None:
    server = redis_factory()
    execution_id = "term-" + uuid.uuid4().hex[:6]
    job_id = f"job-{execution_id}"
    config = {"app_image": "myapp:latest", "database": "postgresql"}
    try:
        with worker(server.url, envspec_env(kube_cluster)) as process:
            add(
                server.url,
                {
                    "data": json.dumps(
                        {"job_id": job_id, "execution_id": execution_id, "operation": "create", "config": config}
                    )
                },
            )
            wait_until(
                lambda: any(e["operation_id"] == job_id for e in stream_entries(server.url, STATUS)), "the job started"
            )
            process.send_signal(signal.SIGTERM)  # in flight: finished, answered, acknowledged, then exit 0
            process.wait(120)
            assert process.returncode == 0
        result = result_of(server.url, job_id)
        assert result is not None and result["status"] == "success", result
        assert pending(server.url) == 0
    finally:
        run_kubectl(
            kube_cluster, "delete", "namespace", f"quality-fabric-{execution_id}", "--ignore-not-found", "--wait=false"
        )


@pytest.mark.redis
def test_a_kubernetes_api_outage_is_an_error_result_and_the_worker_serves_on(
    redis_factory: Callable[..., Any], tmp_path: Path
) -> None:
    server = redis_factory()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "not-a-secret"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "K8S_IN_CLUSTER")}
    env["KUBECONFIG"] = str(kubeconfig)
    with worker(server.url, env, "--timeout", "5s") as process:
        for job in ("first", "second"):
            add(server.url, {"job_id": job, "execution_id": "shop", "operation": "delete"})
            result = wait_until(lambda job=job: result_of(server.url, job), f"the {job} result")  # type: ignore[misc]
            assert result["status"] == "error" and "cannot reach the Kubernetes API" in result["error"], result
            assert json.loads(result["data"])["exit_code"] == 3
        wait_until(lambda: pending(server.url) == 0, "both acknowledged, not retried")
        assert process.poll() is None
    assert stream_entries(server.url, DEAD) == []  # the request was fine: no dead letter


@pytest.mark.cluster
@pytest.mark.redis
def test_two_workers_never_run_requests_for_one_environment_at_once(
    kube_cluster: ClusterInfo, redis_factory: Callable[..., Any]
) -> None:
    server = redis_factory()
    execution_id = "one-" + uuid.uuid4().hex[:6]
    config = {"app_image": "myapp:latest", "database": "postgresql"}
    jobs = [("c1", "create"), ("c2", "create"), ("d1", "delete")]
    env = envspec_env(kube_cluster)
    try:
        with (
            worker(server.url, env, "--concurrency", "2"),
            worker(server.url, env, "--concurrency", "2", consumer="w2"),
        ):
            for job, operation in jobs:
                request: dict[str, Any] = {"job_id": job, "execution_id": execution_id, "operation": operation}
                if operation == "create":
                    request["config"] = config
                add(server.url, {"data": json.dumps(request)})
            results = {
                job: wait_until(lambda job=job: result_of(server.url, job), f"the result of {job}")  # type: ignore[misc]
                for job, _ in jobs
            }
    finally:
        run_kubectl(kube_cluster, "delete", "namespace", f"quality-fabric-{execution_id}", "--ignore-not-found")
    assert all(result["status"] == "success" for result in results.values()), results
    # Each job's window: from its first status entry (it starts only once it holds the lock) to its result.
    status = stream_entries(server.url, STATUS)
    windows = sorted(
        (min(e["time"] for e in status if e["operation_id"] == job), results[job]["time"], job) for job, _ in jobs
    )
    for (_start, end, job), (next_start, _end, next_job) in itertools.pairwise(windows):
        assert end <= next_start, f"{job} (until {end}) overlapped {next_job} (from {next_start})"
    assert len(windows) == 3  # (their order across two workers is whichever takes the lock first)


TESTED_DOCUMENT: dict[str, Any] = {
    "apiVersion": "envspec/v1",
    "ttl": "30m",
    "resources": {"quota": {"cpu": "100", "memory": "4Gi"}},
    "databases": {"db": {"engine": "postgresql", "resources": {"limits": {"cpu": "200m", "memory": "256Mi"}}}},
    "services": {
        "api": {
            "image": "registry.example.com/api:1",
            "port": 8000,
            "resources": {"limits": {"cpu": "200m", "memory": "128Mi"}},
        }
    },
    "tests": {
        "passes": {
            "image": "registry.example.com/tests:1",
            "env": {"DATABASE_URL": "${db.url}"},
            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
        },
        "fails": {
            "image": "registry.example.com/tests:1",
            "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
            "annotations": {
                "pod-container-failed.stage.kwok.x-k8s.io/name": "fails",
                "pod-container-failed.stage.kwok.x-k8s.io/exit-code": "3",
                "pod-complete.stage.kwok.x-k8s.io/weight": "0",
            },
        },
    },
}


def _id_of(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence)


def result_written_before_ack(url: str, entry_id: str, job_id: str) -> dict[str, str]:
    """Watch the request until it is acknowledged; at every look (one MULTI: an atomic snapshot of the
    group, the pending list and the results), once it is delivered and no longer pending, its result
    must be there. The result, once acknowledged."""
    with redis.Redis.from_url(url, decode_responses=True) as client:
        while True:
            pipe = client.pipeline(transaction=True)
            pipe.xinfo_groups(JOBS)
            pipe.xpending_range(JOBS, "envspec", min=entry_id, max=entry_id, count=1)
            pipe.xrange(RESULTS)
            groups, still_pending, results = pipe.execute()
            [group] = groups
            delivered = _id_of(str(group["last-delivered-id"])) >= _id_of(entry_id)
            found = [fields for _id, fields in results if fields.get("job_id") == job_id]
            if delivered and not still_pending:
                assert found, f"{job_id} was acknowledged before its result was written"
                return dict(found[-1])
            time.sleep(0.05)


@pytest.mark.cluster
@pytest.mark.redis
def test_the_worker_runs_test_requests_and_writes_each_result_before_acknowledging_it(
    kube_cluster: ClusterInfo, redis_factory: Callable[..., Any]
) -> None:
    server = redis_factory(password=REDIS_PASSWORD)
    execution_id = "tst-" + uuid.uuid4().hex[:6]
    namespace = f"quality-fabric-{execution_id}"
    spec = json.dumps(TESTED_DOCUMENT)
    with worker(server.url, envspec_env(kube_cluster)):
        create = {"job_id": f"create-{execution_id}", "execution_id": execution_id, "operation": "create"}
        add(server.url, {**create, "spec": spec})
        created = wait_until(lambda: result_of(server.url, create["job_id"]), "the create's result")
        try:
            assert created["status"] == "success", created
            # The spec's tests, by name (flat fields: `spec` and `tests` JSON-encoded).
            job_id = f"test-{execution_id}"
            request = {"job_id": job_id, "execution_id": execution_id, "operation": "test"}
            entry_id = add(server.url, {**request, "spec": spec, "tests": json.dumps(["passes", "fails"])})
            tested = result_written_before_ack(server.url, entry_id, job_id)
            record = json.loads(tested.pop("data"))
            assert (record["status"], record["operation"], record["namespace"], record["execution_id"]) == (
                "error",
                "test",
                namespace,
                execution_id,
            )
            assert record["exit_code"] == 5 and "fails" in record["error"]
            run_id = record["run_id"]
            assert sorted(record["resources_created"]) == [f"job/fails-{run_id}", f"job/passes-{run_id}"]
            by_name = {test["name"]: test for test in record["tests"]}
            assert by_name["passes"] == {
                "name": "passes",
                "result": "passed",
                "outcome": "success",
                "duration_seconds": by_name["passes"]["duration_seconds"],
                "attempts": 1,
                "reason": None,
                "cause": None,
                "log": [],  # kwok serves no log for these pods
                "log_lines_total": 0,
            }
            assert (by_name["fails"]["result"], by_name["fails"]["outcome"], by_name["fails"]["reason"]) == (
                "failed",
                "failure",
                "exit code 3",
            )
            assert (tested["status"], tested["job_id"], tested["run_id"]) == ("error", job_id, run_id)

            status = [e for e in stream_entries(server.url, STATUS) if e["operation_id"] == job_id]
            assert all((e["operation"], e["namespace"]) == ("test", namespace) for e in status)
            finished = {e["test"]: e for e in status if e["type"] == "testcaserun.finished"}
            assert {name: (e["outcome"], e["run_id"]) for name, e in finished.items()} == {
                "passes": ("success", run_id),
                "fails": ("failure", run_id),
            }
            assert {e["test"] for e in status if e["type"] == "testcaserun.started"} == {"passes", "fails"}

            # The original's ad hoc test: `test_image` + `test_command`, as one `data` field.
            adhoc = {"job_id": f"adhoc-{execution_id}", "execution_id": execution_id, "operation": "test"}
            adhoc.update(test_image="curlimages/curl:8", test_command="curl --fail http://api:8000/")
            entry_id = add(server.url, {"data": json.dumps({**adhoc, "spec": TESTED_DOCUMENT})})
            passed = json.loads(result_written_before_ack(server.url, entry_id, adhoc["job_id"])["data"])
            assert (passed["status"], passed["exit_code"], [t["name"] for t in passed["tests"]]) == (
                "success",
                0,
                ["adhoc"],
            )
            assert passed["tests"][0]["outcome"] == "success"
            assert passed["resources_created"] == [f"job/adhoc-{passed['run_id']}"]
            db_password = base64.b64decode(
                run_kubectl(
                    kube_cluster, "get", "secret", "db-credentials", "-n", namespace, "-o", "jsonpath={.data.password}"
                ).stdout
            ).decode()
        finally:
            add(server.url, {"job_id": f"delete-{execution_id}", "execution_id": execution_id, "operation": "delete"})
            wait_until(lambda: result_of(server.url, f"delete-{execution_id}"), "the delete's result")
    assert stream_entries(server.url, DEAD) == []
    everything = json.dumps([stream_entries(server.url, s) for s in (RESULTS, STATUS, DEAD)])
    assert len(db_password) >= 16 and db_password not in everything
    assert REDIS_PASSWORD not in everything
