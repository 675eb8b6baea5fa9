"""The operations the worker and the REST API share, against the local cluster: the original
format's create -> status -> extend -> delete round trip, and a full-spec request."""

from __future__ import annotations

import json
import uuid
from typing import Any

import anyio
import pytest

from envspec.cluster import ClusterInfo
from envspec.events import Emitter
from envspec.kube.client import ClusterTarget
from envspec.report.results import OperationResult
from envspec.service.operations import Service, list_environments, serve
from envspec.service.requests import RequestError, parse_request
from envspec.service.settings import load_settings
from envspec.sinks import Recorder
from tests.cluster_fixtures import run_kubectl

pytestmark = pytest.mark.cluster

SETTINGS = load_settings({"K8S_NAMESPACE_PREFIX": "quality-fabric", "K8S_TTL_MINUTES": "45"})


def run(cluster: ClusterInfo, body: dict[str, Any]) -> tuple[OperationResult, Recorder]:
    service = Service(ClusterTarget(cluster.kubeconfig), SETTINGS, timeout_seconds=120)
    request = parse_request(body, SETTINGS)
    recorder = Recorder()
    events = Emitter(recorder, operation=request.operation, operation_id=request.job_id)

    async def main() -> OperationResult:
        return await serve(request, service, events=events)

    return anyio.run(main), recorder


def test_the_original_round_trip_create_status_extend_delete(kube_cluster: ClusterInfo) -> None:
    execution_id = "svc-" + uuid.uuid4().hex[:6]
    namespace = f"quality-fabric-{execution_id}"
    config = {"app_image": "myapp:latest", "app_port": 8000, "database": "postgresql", "ttl_minutes": 60}
    created, recorder = run(
        kube_cluster, {"job_id": "job-1", "execution_id": execution_id, "operation": "create", "config": config}
    )
    try:
        assert created.ok, created.error
        assert (created.job_id, created.namespace, created.environment) == ("job-1", namespace, execution_id)
        assert created.resources_created == ("namespace", "postgres", "deployment", "service")
        record = created.record()
        assert record["status"] == "success" and record["duration_ms"] > 0
        assert {e.operation_id for e in recorder.envelopes} == {"job-1"}
        deployment = json.loads(
            run_kubectl(kube_cluster, "get", "deployment/app", "-n", namespace, "-o", "json").stdout
        )
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "myapp:latest"
        assert run_kubectl(kube_cluster, "get", "statefulset/postgres", "-n", namespace).returncode == 0

        again, _ = run(kube_cluster, {"execution_id": execution_id, "operation": "create", "config": config})
        assert again.ok and again.extra["created"] == 0  # delivered twice: one environment

        status, _ = run(kube_cluster, {"execution_id": execution_id, "operation": "status"})
        assert status.ok and status.namespace == namespace
        report = status.extra["environment_status"]
        assert report["ready"] == report["total"] and 3500 < report["expires_in_seconds"] <= 3600

        extended, _ = run(kube_cluster, {"execution_id": execution_id, "operation": "extend", "ttl_minutes": 120})
        assert extended.ok and extended.extra["previous_expires_at"]

        listed = anyio.run(lambda: list_environments(Service(ClusterTarget(kube_cluster.kubeconfig), SETTINGS)))
        assert any(row["namespace"] == namespace for row in listed)
    finally:
        deleted, _ = run(kube_cluster, {"execution_id": execution_id, "operation": "delete"})
    assert deleted.ok and deleted.namespace == namespace
    assert run_kubectl(kube_cluster, "get", "namespace", namespace).returncode != 0
    missing, _ = run(kube_cluster, {"execution_id": execution_id, "operation": "delete"})
    assert missing.ok and missing.resources_created == ()  # a delete of a missing environment is a success
    gone, _ = run(kube_cluster, {"execution_id": execution_id, "operation": "status"})
    assert not gone.ok and "not on the cluster" in (gone.error or "")


def test_a_request_with_an_invalid_spec_is_refused_with_paths_into_it(kube_cluster: ClusterInfo) -> None:
    spec = {"apiVersion": "envspec/v1", "services": {"api": {"image": "a:1", "replicas": -1}}}
    with pytest.raises(RequestError) as refused:
        run(kube_cluster, {"execution_id": "bad-spec", "operation": "create", "spec": spec})
    assert [p.path for p in refused.value.problems] == ["spec.services.api.replicas"]


def test_a_test_request_runs_an_ad_hoc_test_job_in_the_environment(kube_cluster: ClusterInfo) -> None:
    execution_id = "svt-" + uuid.uuid4().hex[:6]
    namespace = f"quality-fabric-{execution_id}"
    config = {"app_image": "myapp:latest", "app_port": 8000, "database": "redis"}
    created, _ = run(kube_cluster, {"execution_id": execution_id, "operation": "create", "config": config})
    try:
        assert created.ok, created.error
        request = {
            "job_id": "job-t",
            "execution_id": execution_id,
            "operation": "test",
            "config": config,
            "test_image": "curlimages/curl:8",
            "test_command": ["curl", "--fail", "http://app:8000/"],
        }
        tested, recorder = run(kube_cluster, request)
        assert tested.ok, tested.error
        assert tested.namespace == namespace
        [case] = tested.extra["tests"]
        assert (case["name"], case["result"], case["reason"]) == ("adhoc", "passed", None)
        run_id = tested.extra["run_id"]
        assert tested.resources_created == (f"job/adhoc-{run_id}",)
        names = [e.name for e in recorder.envelopes]
        assert "test_started" in names and names.count("test_finished") == 1 and "test_log" not in names
        job = json.loads(run_kubectl(kube_cluster, "get", f"job/adhoc-{run_id}", "-n", namespace, "-o", "json").stdout)
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["curl", "--fail", "http://app:8000/"]

        unknown, _ = run(kube_cluster, {**request, "test_image": None, "test_command": None, "tests": ["nope"]})
        assert not unknown.ok and unknown.extra["exit_code"] == 1
        assert "the spec has no tests" in (unknown.error or "")  # the config shorthand has none
    finally:
        run(kube_cluster, {"execution_id": execution_id, "operation": "delete"})
