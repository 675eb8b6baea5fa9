"""`envspec serve` against the local cluster, through a real uvicorn process: the original
create -> get -> list -> extend -> events -> delete round trip checked with kubectl, 409s
for namespaces envspec does not manage, and two servers answering alike."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import anyio
import httpx
import pytest

from envspec.cluster import ClusterInfo
from tests.api_fixtures import PREFIX, WRITE_TOKEN, ApiFactory, json_of
from tests.cluster_fixtures import kubectl, run_kubectl

pytestmark = pytest.mark.cluster

CONFIG = {"app_image": "myapp:latest", "app_port": 8000, "database": "postgresql", "ttl_minutes": 30}
# Fields that move with the clock between two reads.
MOVING = ("age_seconds", "expires_in_seconds", "duration_ms")


def new_id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:6]}"


def stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in MOVING}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_the_original_round_trip_create_get_list_extend_events_delete(
    kube_cluster: ClusterInfo, api_factory: ApiFactory
) -> None:
    server = api_factory(kubeconfig=kube_cluster.kubeconfig)
    execution_id = new_id("api")
    namespace = f"quality-fabric-{execution_id}"
    with server.client() as client:
        accepted = client.post("/environments", json={"execution_id": execution_id, "config": CONFIG})
        try:
            assert accepted.status_code == 202, accepted.text
            body = json_of(accepted)
            assert accepted.headers["location"] == f"{PREFIX}/environments/{execution_id}"
            assert body["execution_id"] == body["environment_id"] == execution_id
            assert body["namespace"] == namespace and body["operation"] == "create" and body["job_id"]
            again = client.post("/environments", json={"execution_id": execution_id, "config": CONFIG})
            assert again.status_code == 409  # one operation per environment at a time

            status = json_of(client.get(f"/environments/{execution_id}", params={"wait": 120}))
            operation = status["operation"]
            assert operation["job_id"] == body["job_id"] and operation["status"] == "success", operation
            assert operation["resources_created"] == ["namespace", "postgres", "deployment", "service"]
            assert operation["duration_ms"] > 0 and operation["finished_at"]
            assert status["status"] == "ready" and status["ready"] == status["total"] > 5
            assert status["namespace"] == namespace and 1700 < status["expires_in_seconds"] <= 1800
            kinds = {(row["kind"], row["name"]) for row in status["objects"]}
            assert {("Deployment", "app"), ("StatefulSet", "postgres"), ("Service", "app")} <= kinds

            deployment = json.loads(kubectl(kube_cluster, "get", "deployment/app", "-n", namespace, "-o", "json"))
            assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "myapp:latest"
            env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            assert {
                "name": "DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": "postgres-credentials", "key": "url"}},
            } in env

            listed = json_of(client.get("/environments"))
            row = next(r for r in listed if r["name"] == execution_id)
            assert (row["namespace"], row["status"], row["execution_id"]) == (namespace, "ready", execution_id)
            assert row["ready"] == row["total"] == status["total"]

            extended = client.post(f"/environments/{execution_id}/extend", json={"ttl_minutes": 90})
            assert extended.status_code == 200, extended.text
            assert json_of(extended)["status"] == "success" and json_of(extended)["previous_expires_at"]
            later = json_of(client.get(f"/environments/{execution_id}"))
            assert 5300 < later["expires_in_seconds"] <= 5400

            events = sse_events(client.get(f"/environments/{execution_id}/events").text)
            names = [name for name, _ in events]
            assert names[0] == "operation_started" and names[-1] == "operation_finished"
            assert "environment_ready" in names and all(e["operation_id"] == body["job_id"] for _, e in events)
            assert events[-1][1]["ok"] is True
        finally:
            deleted = client.delete(f"/environments/{execution_id}")
        assert deleted.status_code == 202, deleted.text
        assert json_of(deleted)["operation"] == "delete" and json_of(deleted)["namespace"] == namespace
        gone = client.get(f"/environments/{execution_id}", params={"wait": 120})
        assert gone.status_code == 404, gone.text
        assert run_kubectl(kube_cluster, "get", "namespace", namespace).returncode != 0
        assert client.delete(f"/environments/{execution_id}").status_code == 404
        assert all(r["name"] != execution_id for r in json_of(client.get("/environments")))


def test_a_spec_body_with_labels_and_the_label_filter(kube_cluster: ClusterInfo, api_factory: ApiFactory) -> None:
    server = api_factory(kubeconfig=kube_cluster.kubeconfig)
    execution_id = new_id("spec")
    team = f"team-{uuid.uuid4().hex[:6]}"
    spec = {
        "apiVersion": "envspec/v1",
        "namespacePrefix": "apispec",
        "labels": {"team": team},
        "services": {"api": {"image": "nginx:1", "port": 80, "replicas": 2}},
    }
    with server.client() as client:
        accepted = client.post("/environments", json={"execution_id": execution_id, "spec": spec})
        assert accepted.status_code == 202, accepted.text
        try:
            assert json_of(accepted)["namespace"] == f"apispec-{execution_id}"
            status = json_of(client.get(f"/environments/{execution_id}", params={"wait": 120}))
            assert status["status"] == "ready" and status["operation"]["resources_created"] == [
                "namespace",
                "deployment/api",
                "service/api",
            ]
            mine = json_of(client.get("/environments", params={"label": f"team={team}"}))
            assert [r["name"] for r in mine] == [execution_id]
            assert json_of(client.get("/environments", params={"label": [f"team={team}", "tier=gold"]})) == []
        finally:
            client.delete(f"/environments/{execution_id}")
            client.get(f"/environments/{execution_id}", params={"wait": 120})


def test_namespaces_envspec_does_not_manage_are_refused_with_409(
    kube_cluster: ClusterInfo, kube_namespace: str, api_factory: ApiFactory
) -> None:
    server = api_factory(kubeconfig=kube_cluster.kubeconfig)
    execution_id = new_id("foreign")
    foreign = f"quality-fabric-{execution_id}"
    kubectl(kube_cluster, "create", "namespace", foreign)
    try:
        with server.client() as client:
            refused = client.delete(f"/environments/{kube_namespace}")
            assert refused.status_code == 409, refused.text
            assert f"namespace {kube_namespace} is not managed by envspec" in json_of(refused)["detail"]
            assert client.delete(f"/environments/{execution_id}").status_code == 409
            assert client.get(f"/environments/{kube_namespace}").status_code == 404
            assert client.post(f"/environments/{kube_namespace}/extend", json={}).status_code == 409
            create = client.post("/environments", json={"execution_id": execution_id, "config": CONFIG})
            assert create.status_code == 409, create.text
            assert f"namespace {foreign} exists and envspec does not manage it" in json_of(create)["detail"]
        for name in (kube_namespace, foreign):
            labels = json.loads(kubectl(kube_cluster, "get", "namespace", name, "-o", "json"))["metadata"]["labels"]
            assert "app.kubernetes.io/managed-by" not in labels and "envspec.dev/environment" not in labels
    finally:
        kubectl(kube_cluster, "delete", "namespace", foreign, "--wait=false")


def test_health_and_cleanup_dry_run_against_the_cluster(kube_cluster: ClusterInfo, api_factory: ApiFactory) -> None:
    server = api_factory(kubeconfig=kube_cluster.kubeconfig)
    health = json_of(httpx.get(server.url("/health")))
    assert health["status"] == "healthy" and health["kubernetes"]["reachable"] is True
    assert health["kubernetes"]["version"].startswith("v1.")
    with server.client() as client:
        swept = client.post("/cleanup", json={"dry_run": True})
    assert swept.status_code == 200, swept.text
    record = json_of(swept)
    assert record["status"] == "success" and record["dry_run"] is True and record["operation"] == "cleanup"
    assert isinstance(record["deleted"], list) and record["examined"] >= 0 and record["job_id"]


def test_two_servers_answer_alike(kube_cluster: ClusterInfo, api_factory: ApiFactory) -> None:
    first = api_factory(kubeconfig=kube_cluster.kubeconfig)
    second = api_factory(kubeconfig=kube_cluster.kubeconfig)
    execution_id = new_id("twin")
    with first.client() as one, second.client() as two:
        assert one.post("/environments", json={"execution_id": execution_id, "config": CONFIG}).status_code == 202
        try:
            assert json_of(one.get(f"/environments/{execution_id}", params={"wait": 120}))["status"] == "ready"
            from_one = json_of(one.get(f"/environments/{execution_id}"))
            from_two = json_of(two.get(f"/environments/{execution_id}"))
            assert stable({**from_one, "operation": None}) == stable({**from_two, "operation": None})
            listed_one = [r for r in json_of(one.get("/environments")) if r["name"] == execution_id]
            listed_two = [r for r in json_of(two.get("/environments")) if r["name"] == execution_id]
            assert stable(listed_one) == stable(listed_two) and len(listed_one) == 1
        finally:
            assert two.delete(f"/environments/{execution_id}").status_code == 202
            assert two.get(f"/environments/{execution_id}", params={"wait": 120}).status_code == 404
        assert one.get(f"/environments/{execution_id}").status_code == 404


def operation_of(client: httpx.Client, execution_id: str) -> dict[str, Any]:
    answer = client.get(f"/environments/{execution_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = json_of(answer)
    return body


def test_an_operation_outlives_a_server_restart_on_its_namespace(
    kube_cluster: ClusterInfo, api_factory: ApiFactory
) -> None:
    """A delete held up by a finalizer; the server is killed mid-delete and started again: the
    operation's record (on the namespace) still says which job it was, and reads `interrupted`
    once its heartbeat has stopped; a second server says the same."""
    server = api_factory("--heartbeat", "1", kubeconfig=kube_cluster.kubeconfig)
    other = api_factory("--heartbeat", "1", kubeconfig=kube_cluster.kubeconfig)
    execution_id = new_id("restart")
    namespace = f"quality-fabric-{execution_id}"
    hold = '{"metadata": {"finalizers": ["envspec.test/hold"]}}'
    with server.client() as client:
        assert client.post("/environments", json={"execution_id": execution_id, "config": CONFIG}).status_code == 202
        assert json_of(client.get(f"/environments/{execution_id}", params={"wait": 120}))["status"] == "ready"
    kubectl(kube_cluster, "patch", "service", "app", "-n", namespace, "--type", "merge", "-p", hold)
    try:
        with server.client() as client:
            deleting = client.delete(f"/environments/{execution_id}")
            assert deleting.status_code == 202, deleting.text
            job_id = json_of(deleting)["job_id"]
            wait_for_record(client, execution_id, job_id, "running")
            with other.client() as second:  # the other server lists it as this one does, from the record
                rows = [r for r in json_of(second.get("/environments")) if r["name"] == execution_id]
                assert [r["status"] for r in rows] == ["deleting"]
        server.restart()
        with server.client() as client, other.client() as second:
            after = wait_for_record(client, execution_id, job_id, "interrupted")
            assert after["status"] == "deleting" and after["phase"] == "Terminating"
            assert after["operation"]["operation"] == "delete"
            assert after["operation"]["error"] == "the server running it stopped before it ended"
            # The objects go one by one while the namespace terminates: compare what does not move.
            fields = ("operation", "status", "phase", "namespace")
            from_second = operation_of(second, execution_id)
            assert stable({k: from_second[k] for k in fields}) == stable({k: after[k] for k in fields})
    finally:
        kubectl(
            kube_cluster,
            "patch",
            "service",
            "app",
            "-n",
            namespace,
            "--type",
            "merge",
            "-p",
            '{"metadata": {"finalizers": null}}',
            check=False,
        )
    deadline = time.monotonic() + 120
    with server.client() as client:
        while client.get(f"/environments/{execution_id}").status_code != 404:
            assert time.monotonic() < deadline, "the namespace was not deleted once the finalizer was gone"
            time.sleep(0.5)


def wait_for_record(client: httpx.Client, execution_id: str, job_id: str, status: str) -> dict[str, Any]:
    """Poll the environment until its operation is `job_id` with `status` (bounded, not a timing assertion)."""
    deadline = time.monotonic() + 120
    while True:
        body = operation_of(client, execution_id)
        operation = body["operation"] or {}
        if operation.get("job_id") == job_id and operation.get("status") == status:
            return body
        assert time.monotonic() < deadline, f"operation never became {status}: {operation}"
        time.sleep(0.3)


def test_events_follow_a_running_operation_live_until_it_ends(
    kube_cluster: ClusterInfo, api_factory: ApiFactory
) -> None:
    """A delete held up by a finalizer: the stream shows its first events while it waits, and goes
    on (the same connection) until `operation_finished` once the finalizer is removed."""
    server = api_factory(kubeconfig=kube_cluster.kubeconfig)
    execution_id = new_id("live")
    namespace = f"quality-fabric-{execution_id}"
    release = '{"metadata": {"finalizers": null}}'
    with server.client() as client:
        assert client.post("/environments", json={"execution_id": execution_id, "config": CONFIG}).status_code == 202
        assert json_of(client.get(f"/environments/{execution_id}", params={"wait": 120}))["status"] == "ready"
        kubectl(
            kube_cluster,
            "patch",
            "service",
            "app",
            "-n",
            namespace,
            "--type",
            "merge",
            "-p",
            '{"metadata": {"finalizers": ["envspec.test/hold"]}}',
        )
        try:
            job_id = json_of(client.delete(f"/environments/{execution_id}"))["job_id"]
            names: list[str] = []
            with client.stream("GET", f"/environments/{execution_id}/events") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                for line in stream.iter_lines():
                    if not line.startswith("event: "):
                        continue
                    names.append(line.removeprefix("event: "))
                    if names[-1] == "namespace_deleting":  # the delete is waiting on the finalizer now
                        assert json_of(client.get(f"/environments/{execution_id}"))["status"] == "deleting"
                        kubectl(
                            kube_cluster, "patch", "service", "app", "-n", namespace, "--type", "merge", "-p", release
                        )
            assert names[0] == "operation_started" and names[-1] == "operation_finished", names
            assert names.index("namespace_deleting") < names.index("namespace_deleted")
            record = wait_for_gone(client, execution_id)
            assert record == 404 and job_id
        finally:
            kubectl(
                kube_cluster, "patch", "service", "app", "-n", namespace, "--type", "merge", "-p", release, check=False
            )


def wait_for_gone(client: httpx.Client, execution_id: str) -> int:
    return client.get(f"/environments/{execution_id}", params={"wait": 120}).status_code


def test_concurrent_requests_each_get_their_own_cluster_connection(
    kube_cluster: ClusterInfo, api_factory: ApiFactory
) -> None:
    """kr8s caches one client per event loop; requests served at once must not share (and close) it."""
    server = api_factory(kubeconfig=kube_cluster.kubeconfig)

    async def burst() -> list[int]:
        headers = {"Authorization": f"Bearer {WRITE_TOKEN}"}
        async with httpx.AsyncClient(base_url=server.url(""), headers=headers, timeout=120) as client:
            answers: list[int] = []

            async def one(path: str) -> None:
                answers.append((await client.get(path)).status_code)

            async with anyio.create_task_group() as group:
                for n in range(24):
                    group.start_soon(one, "/environments" if n % 2 else f"/environments/absent-{n}")
            return answers

    codes = anyio.run(burst)
    assert sorted(set(codes)) == [200, 404], codes
    assert "cannot reach the Kubernetes API" not in server.output()


def test_a_server_stopped_mid_operation_records_it_as_interrupted(
    kube_cluster: ClusterInfo, api_factory: ApiFactory
) -> None:
    """SIGTERM while a delete waits on a finalizer: the stopping server writes `interrupted` itself,
    so another server says so at once, without waiting for the heartbeat to go stale."""
    server = api_factory(kubeconfig=kube_cluster.kubeconfig)
    other = api_factory("--heartbeat", "300", kubeconfig=kube_cluster.kubeconfig)
    execution_id = new_id("stop")
    namespace = f"quality-fabric-{execution_id}"
    release = '{"metadata": {"finalizers": null}}'
    with server.client() as client:
        assert client.post("/environments", json={"execution_id": execution_id, "config": CONFIG}).status_code == 202
        assert json_of(client.get(f"/environments/{execution_id}", params={"wait": 120}))["status"] == "ready"
    kubectl(
        kube_cluster,
        "patch",
        "service",
        "app",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"metadata": {"finalizers": ["envspec.test/hold"]}}',
    )
    try:
        with server.client() as client:
            job_id = json_of(client.delete(f"/environments/{execution_id}"))["job_id"]
            wait_for_record(client, execution_id, job_id, "running")
        server.stop()  # SIGTERM: graceful
        with other.client() as second:
            operation = operation_of(second, execution_id)["operation"]
            assert (operation["job_id"], operation["status"]) == (job_id, "interrupted"), operation
            assert operation["error"] == "the server stopped before the operation ended"
            row = next(r for r in json_of(second.get("/environments")) if r["name"] == execution_id)
            assert row["status"] == "deleting"  # its namespace is still terminating
            again = second.delete(f"/environments/{execution_id}")  # no longer running: may be retried
            assert again.status_code == 202, again.text
    finally:
        kubectl(kube_cluster, "patch", "service", "app", "-n", namespace, "--type", "merge", "-p", release, check=False)
    with other.client() as second:
        assert second.get(f"/environments/{execution_id}", params={"wait": 120}).status_code == 404


def test_the_original_job_round_trip_create_job_get_delete(kube_cluster: ClusterInfo, api_factory: ApiFactory) -> None:
    """POST /jobs with the original's test_image + test_command, and with the spec's test names;
    GET /jobs/{id} from this server and, by the record on the namespace, from another one."""
    server = api_factory(kubeconfig=kube_cluster.kubeconfig)
    other = api_factory(kubeconfig=kube_cluster.kubeconfig)
    execution_id = new_id("job")
    spec = {
        "apiVersion": "envspec/v1",
        "services": {"api": {"image": "api:1", "port": 80}},
        "tests": {"smoke": {"image": "tests:1", "command": "pytest -x"}},
    }
    with server.client() as client:
        assert client.post("/environments", json={"execution_id": execution_id, "spec": spec}).status_code == 202
        try:
            assert json_of(client.get(f"/environments/{execution_id}", params={"wait": 120}))["status"] == "ready"
            accepted = client.post(
                "/jobs", json={"environment_id": execution_id, "test_image": "myapp-tests:1", "test_command": "pytest"}
            )
            assert accepted.status_code == 202, accepted.text
            job_id = json_of(accepted)["job_id"]
            assert accepted.headers["location"] == f"{PREFIX}/jobs/{job_id}"
            job = json_of(client.get(f"/jobs/{job_id}", params={"wait": 120}))
            assert (job["job_id"], job["operation"], job["status"]) == (job_id, "test", "success"), job
            assert job["duration_ms"] > 0 and [t["result"] for t in job["tests"]] == ["passed"]
            assert job["resources_created"] and job["run_id"] and job["exit_code"] == 0
            with other.client() as second:  # another server reads the job from the cluster
                assert json_of(second.get(f"/jobs/{job_id}"))["status"] == "success"
            named = client.post("/jobs", json={"environment_id": execution_id, "tests": ["smoke"]})
            assert named.status_code == 202, named.text
            run = json_of(client.get(f"/jobs/{json_of(named)['job_id']}", params={"wait": 120}))
            assert run["status"] == "success" and [t["name"] for t in run["tests"]] == ["smoke"], run
            assert client.post("/jobs", json={"environment_id": "absent-env"}).status_code == 404
            assert client.get("/jobs/no-such-job").status_code == 404
        finally:
            client.delete(f"/environments/{execution_id}")
        assert client.get(f"/environments/{execution_id}", params={"wait": 120}).status_code == 404
