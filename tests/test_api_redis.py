"""`envspec serve --report-redis URL` (or $REDIS_URL, as the original): every operation the server
runs publishes its status entries to `<prefix>:status` and its result to `<prefix>:results`,
through the Redis sink the CLI composes (`envspec.report.status.reporting_sink`). Checked with
a real redis-server and XRANGE, against a real uvicorn process on the local cluster."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest

from envspec.cluster import ClusterInfo
from tests.api_fixtures import ApiFactory, json_of
from tests.redis_fixtures import RedisFactory, stream_entries

pytestmark = [pytest.mark.cluster, pytest.mark.redis]

SPEC = {
    "apiVersion": "envspec/v1",
    "databases": {"redis": {"engine": "redis"}},
    "services": {"app": {"image": "myapp:latest", "port": 8000}},
    "tests": {"smoke": {"image": "tests:1", "command": "pytest -x"}},
}
STATUS = "maestro:streams:k8s:status"
RESULTS = "maestro:streams:k8s:results"


def entries_until(url: str, stream: str, done: Any) -> list[dict[str, str]]:
    """The stream's entries once `done(entries)` holds (the sink flushes in the background; bounded wait)."""
    deadline = time.monotonic() + 60
    while True:
        entries = stream_entries(url, stream)
        if done(entries):
            return entries
        assert time.monotonic() < deadline, f"{stream} never got the expected entries: {entries}"
        time.sleep(0.2)


def of_job(entries: list[dict[str, str]], job_id: str, key: str = "operation_id") -> list[dict[str, str]]:
    return [entry for entry in entries if entry.get(key) == job_id]


def test_report_redis_publishes_status_entries_and_results_of_every_operation(
    kube_cluster: ClusterInfo, api_factory: ApiFactory, redis_factory: RedisFactory
) -> None:
    redis = redis_factory()
    server = api_factory("--report-redis", redis.url, kubeconfig=kube_cluster.kubeconfig)
    execution_id = f"redis-{uuid.uuid4().hex[:6]}"
    namespace = f"quality-fabric-{execution_id}"
    with server.client() as client:
        created = json_of(client.post("/environments", json={"execution_id": execution_id, "spec": SPEC}))
        create_id = created["job_id"]
        try:
            status = json_of(client.get(f"/environments/{execution_id}", params={"wait": 120}))
            assert status["status"] == "ready", status
            test_id = json_of(client.post("/jobs", json={"environment_id": execution_id}))["job_id"]
            assert json_of(client.get(f"/jobs/{test_id}", params={"wait": 120}))["status"] == "success"
            extended = client.post(f"/environments/{execution_id}/extend", json={"ttl_minutes": 60})
            assert extended.status_code == 200, extended.text
            extend_id = json_of(extended)["job_id"]
        finally:
            deleted = json_of(client.delete(f"/environments/{execution_id}"))
            assert client.get(f"/environments/{execution_id}", params={"wait": 120}).status_code == 404
    delete_id = deleted["job_id"]

    status_entries = entries_until(redis.url, STATUS, lambda found: bool(of_job(found, delete_id)[-1:]))
    created_types = [entry["type"] for entry in of_job(status_entries, create_id)]
    assert created_types[0] == "envspec.environment.applying" and created_types[-1] == "environment.created"
    assert {"envspec.object.applied", "envspec.object.ready"} <= set(created_types)
    first = of_job(status_entries, create_id)[0]
    assert (first["operation"], first["environment"], first["namespace"]) == ("create", execution_id, namespace)
    assert first["event"] == "operation_started" and first["time"].endswith("Z")
    assert [e["type"] for e in of_job(status_entries, extend_id)] == []  # an extend is no phase transition
    tested = of_job(status_entries, test_id)
    assert [e["type"] for e in tested] == [
        "testsuiterun.started",
        "testcaserun.started",
        "testcaserun.finished",
        "testsuiterun.finished",
    ], tested
    assert tested[2]["test"] == "smoke" and tested[2]["outcome"] == "success" and tested[3]["outcome"] == "success"
    deleted_types = [entry["type"] for entry in of_job(status_entries, delete_id)]
    assert deleted_types == ["envspec.environment.deleting", "environment.deleted"], deleted_types

    results = entries_until(redis.url, RESULTS, lambda found: bool(of_job(found, delete_id, "job_id")))
    by_job = {entry["job_id"]: entry for entry in results}
    jobs = (create_id, test_id, extend_id, delete_id)
    assert [by_job[job]["operation"] for job in jobs] == ["create", "test", "extend", "delete"]
    create_result = json.loads(by_job[create_id]["data"])
    assert create_result["status"] == "success" and create_result["execution_id"] == execution_id
    assert create_result["resources_created"] == ["namespace", "redis", "deployment", "service"]
    test_result = json.loads(by_job[test_id]["data"])
    assert [(t["name"], t["result"]) for t in test_result["tests"]] == [("smoke", "passed")]
    assert create_result["namespace"] == namespace and create_result["duration_ms"] > 0
    assert json.loads(by_job[delete_id]["data"])["status"] == "success"


def test_redis_url_of_the_original_reports_too_and_its_password_never_shows(
    kube_cluster: ClusterInfo, api_factory: ApiFactory, redis_factory: RedisFactory
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    redis = redis_factory(password=password)
    server = api_factory(kubeconfig=kube_cluster.kubeconfig, env={"REDIS_URL": redis.url})
    health = json_of(httpx.get(server.url("/health")))
    assert health["redis"]["reachable"] is True and password not in json.dumps(health)
    with server.client() as client:
        swept = client.post("/cleanup", json={"dry_run": True})
        assert swept.status_code == 200, swept.text
    job_id = json_of(swept)["job_id"]
    status_entries = entries_until(redis.url, STATUS, lambda found: bool(of_job(found, job_id)))
    assert "envspec.gc.swept" in [entry["type"] for entry in of_job(status_entries, job_id)]
    results = entries_until(redis.url, RESULTS, lambda found: bool(of_job(found, job_id, "job_id")))
    record = json.loads(of_job(results, job_id, "job_id")[0]["data"])
    assert (record["operation"], record["status"], record["dry_run"]) == ("cleanup", "success", True)
    assert password not in server.output()
