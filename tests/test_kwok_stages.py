"""The local kwok cluster simulates test outcomes from pod annotations, and serves logs.

Every outcome here is produced by the real control plane: kwok-controller (the simulated
kubelet) patches pod status as the Stage objects of templates/kwok/ say, and the real Job
controller, scheduler and API server do the rest. Run against a cluster created by this
version of envspec (`ENVSPEC_TEST_CLUSTER`); an older one is recreated by `cluster up`.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import pytest

from envspec.cluster import ClusterInfo
from tests.cluster_fixtures import ServedLogs, kubectl, run_kubectl

pytestmark = pytest.mark.cluster

FAILED = "pod-container-failed.stage.kwok.x-k8s.io"
COMPLETE = "pod-complete.stage.kwok.x-k8s.io"


def job(name: str, *, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """A Job with two containers whose pods carry `annotations`; `spec` adds Job spec fields."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            **spec,
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "registry.example/tests:1"},
                        {"name": "sidecar", "image": "registry.example/proxy:1"},
                    ],
                },
            },
        },
    }


def create(cluster: ClusterInfo, namespace: str, document: dict[str, Any]) -> None:
    kubectl(cluster, "create", "-n", namespace, "-f", "-", stdin=json.dumps(document))


def wait_for(cluster: ClusterInfo, namespace: str, what: str, condition: str, *selector: str) -> None:
    """kubectl's own watch-based wait: returns once `condition` holds, fails the test otherwise."""
    kubectl(cluster, "wait", "-n", namespace, what, *selector, f"--for={condition}", "--timeout=60s", timeout=90)


def get(cluster: ClusterInfo, namespace: str, *what: str) -> Any:
    return json.loads(kubectl(cluster, "get", "-n", namespace, *what, "-o", "json"))


def job_pods(cluster: ClusterInfo, namespace: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get(cluster, namespace, "pods", "-l", f"job-name={name}")["items"]
    return items


def condition(document: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in document["status"].get("conditions", []) if c["type"] == kind)


def terminated(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s["state"]["terminated"] for s in pod["status"]["containerStatuses"]}


def test_job_pods_complete_at_once_by_default(kube_cluster: ClusterInfo, kube_namespace: str) -> None:
    create(kube_cluster, kube_namespace, job("plain"))
    wait_for(kube_cluster, kube_namespace, "job/plain", "condition=Complete")
    (pod,) = job_pods(kube_cluster, kube_namespace, "plain")
    assert pod["status"]["phase"] == "Succeeded"
    assert {name: state["exitCode"] for name, state in terminated(pod).items()} == {"main": 0, "sidecar": 0}


def test_failed_container_annotation_fails_the_pod_and_the_job_with_its_exit_code(
    kube_cluster: ClusterInfo, kube_namespace: str
) -> None:
    annotations = {
        f"{FAILED}/name": "main",
        f"{FAILED}/exit-code": "3",
        f"{FAILED}/reason": "TestsFailed",
        f"{FAILED}/message": "2 of 10 tests failed",
        f"{COMPLETE}/weight": "0",
    }
    create(kube_cluster, kube_namespace, job("failing", annotations=annotations))
    wait_for(kube_cluster, kube_namespace, "job/failing", "condition=Failed")
    failed = condition(get(kube_cluster, kube_namespace, "job/failing"), "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    (pod,) = job_pods(kube_cluster, kube_namespace, "failing")
    assert pod["status"]["phase"] == "Failed"
    states = terminated(pod)
    assert states["main"]["exitCode"] == 3
    assert states["main"]["reason"] == "TestsFailed"
    assert states["main"]["message"] == "2 of 10 tests failed"
    assert states["sidecar"]["exitCode"] == 0


def test_failed_container_with_retries_fails_every_attempt(kube_cluster: ClusterInfo, kube_namespace: str) -> None:
    annotations = {f"{FAILED}/name": "main", f"{FAILED}/exit-code": "3", f"{COMPLETE}/weight": "0"}
    create(kube_cluster, kube_namespace, job("retried", annotations=annotations, backoffLimit=1))
    wait_for(kube_cluster, kube_namespace, "job/retried", "condition=Failed")
    pods = job_pods(kube_cluster, kube_namespace, "retried")
    assert len(pods) == 2
    assert [terminated(pod)["main"]["exitCode"] for pod in pods] == [3, 3]


def test_failed_container_of_an_on_failure_job_restarts_until_the_backoff_limit(
    kube_cluster: ClusterInfo, kube_namespace: str
) -> None:
    # restartPolicy OnFailure: the kubelet restarts the container in place (10 s apart
    # here) and the Job controller counts the restarts against backoffLimit.
    annotations = {f"{FAILED}/name": "main", f"{FAILED}/exit-code": "3", f"{COMPLETE}/weight": "0"}
    document = job("crashing", annotations=annotations, backoffLimit=2)
    document["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    create(kube_cluster, kube_namespace, document)
    wait_for(kube_cluster, kube_namespace, "job/crashing", "jsonpath={.status.active}=1")  # its pod exists
    wait_for(
        kube_cluster,
        kube_namespace,
        "pod",
        "jsonpath={.status.containerStatuses[0].state.waiting.reason}=CrashLoopBackOff",
        "-l",
        "job-name=crashing",
    )
    (pod,) = job_pods(kube_cluster, kube_namespace, "crashing")
    main = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "main")
    assert main["lastState"]["terminated"]["exitCode"] == 3
    assert main["restartCount"] >= 1
    wait_for(kube_cluster, kube_namespace, "job/crashing", "condition=Failed")
    failed = condition(get(kube_cluster, kube_namespace, "job/crashing"), "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"


def test_completion_delay_lets_the_job_deadline_pass(kube_cluster: ClusterInfo, kube_namespace: str) -> None:
    create(
        kube_cluster,
        kube_namespace,
        job("slow", annotations={f"{COMPLETE}/delay": "600000"}, activeDeadlineSeconds=2),
    )
    wait_for(kube_cluster, kube_namespace, "job/slow", "condition=Failed")
    document = get(kube_cluster, kube_namespace, "job/slow")
    assert condition(document, "Failed")["reason"] == "DeadlineExceeded"
    assert not document["status"].get("succeeded")


def test_completion_delay_then_completes(kube_cluster: ClusterInfo, kube_namespace: str) -> None:
    # A Go duration works too; without a deadline the Job completes after the delay.
    create(kube_cluster, kube_namespace, job("later", annotations={f"{COMPLETE}/delay": "1s"}))
    wait_for(kube_cluster, kube_namespace, "job/later", "condition=Complete")
    (pod,) = job_pods(kube_cluster, kube_namespace, "later")
    assert pod["status"]["phase"] == "Succeeded"


def bare_pod(name: str, image: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": image}], **spec},
    }


def waiting_reason(pod: dict[str, Any]) -> str | None:
    statuses = pod["status"].get("containerStatuses") or [{}]
    reason: str | None = statuses[0].get("state", {}).get("waiting", {}).get("reason")
    return reason


def test_image_that_does_not_exist_fails_to_pull(kube_cluster: ClusterInfo, kube_namespace: str) -> None:
    create(kube_cluster, kube_namespace, bare_pod("pull", "registry.example/does-not-exist:1"))
    wait_for(
        kube_cluster,
        kube_namespace,
        "pod/pull",
        "jsonpath={.status.containerStatuses[0].state.waiting.reason}=ErrImagePull",
    )
    # The kubelet's next attempt backs off, as on a real node.
    wait_for(
        kube_cluster,
        kube_namespace,
        "pod/pull",
        "jsonpath={.status.containerStatuses[0].state.waiting.reason}=ImagePullBackOff",
    )
    pod = get(kube_cluster, kube_namespace, "pod/pull")
    assert pod["status"]["phase"] == "Pending"
    assert "does-not-exist" in pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    assert condition(pod, "Ready")["status"] == "False"


def test_unschedulable_pod_stays_pending(kube_cluster: ClusterInfo, kube_namespace: str) -> None:
    create(
        kube_cluster,
        kube_namespace,
        bare_pod("nowhere", "registry.example/tests:1", nodeSelector={"envspec.test/no-such-node": "true"}),
    )
    wait_for(kube_cluster, kube_namespace, "pod/nowhere", "condition=PodScheduled=False")
    pod = get(kube_cluster, kube_namespace, "pod/nowhere")
    assert condition(pod, "PodScheduled")["reason"] == "Unschedulable"
    assert pod["status"]["phase"] == "Pending"
    assert waiting_reason(pod) is None


def test_ready_delay_holds_only_the_annotated_pod(kube_cluster: ClusterInfo, kube_namespace: str) -> None:
    slow = bare_pod("slow", "registry.example/service:1")
    slow["metadata"]["annotations"] = {"pod-ready.stage.kwok.x-k8s.io/delay": "600000"}
    create(kube_cluster, kube_namespace, slow)
    create(kube_cluster, kube_namespace, bare_pod("quick", "registry.example/service:1"))
    wait_for(kube_cluster, kube_namespace, "pod/slow", "condition=PodScheduled")
    wait_for(kube_cluster, kube_namespace, "pod/quick", "condition=Ready")
    pod = get(kube_cluster, kube_namespace, "pod/slow")
    assert pod["status"]["phase"] == "Pending"
    assert "podIP" not in pod["status"]


def test_delete_delay_keeps_the_annotated_pod_terminating(kube_cluster: ClusterInfo, kube_namespace: str) -> None:
    lingering = bare_pod("lingering", "registry.example/service:1")
    lingering["metadata"]["annotations"] = {"pod-delete.stage.kwok.x-k8s.io/delay": "600000"}
    create(kube_cluster, kube_namespace, lingering)
    create(kube_cluster, kube_namespace, bare_pod("prompt", "registry.example/service:1"))
    for name in ("lingering", "prompt"):
        wait_for(kube_cluster, kube_namespace, f"pod/{name}", "condition=Ready")
    kubectl(kube_cluster, "delete", "-n", kube_namespace, "pod/lingering", "--wait=false")
    kubectl(kube_cluster, "delete", "-n", kube_namespace, "pod/prompt", "--wait=true", "--timeout=60s")
    pod = get(kube_cluster, kube_namespace, "pod/lingering")
    assert pod["metadata"]["deletionTimestamp"]
    # Let the namespace go quickly at the end of the test.
    kubectl(kube_cluster, "delete", "-n", kube_namespace, "pod/lingering", "--grace-period=0", "--force")


LINES = [f"line {i}" for i in range(1, 6)]
START = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def logs(cluster: ClusterInfo, namespace: str, pod: str, *options: str) -> list[str]:
    """The pod's log through the API server's pods/log (kubectl logs)."""
    return kubectl(cluster, "logs", "-n", namespace, pod, *options).splitlines()


def running_pod(cluster: ClusterInfo, namespace: str, name: str) -> None:
    create(cluster, namespace, bare_pod(name, "registry.example/service:1"))
    wait_for(cluster, namespace, f"pod/{name}", "condition=Ready")


def wait_served(cluster: ClusterInfo, namespace: str, pod: str) -> None:
    """Until kwok-controller has seen the new Logs object (its informer lags the API by a moment)."""
    for _ in range(100):
        result = run_kubectl(cluster, "logs", "-n", namespace, pod)
        if result.returncode == 0:
            return
        threading.Event().wait(0.1)
    pytest.fail(f"logs of {pod} never served: {result.stderr.strip()}", pytrace=False)


def test_logs_are_served_from_a_file_through_pods_log(
    kube_cluster: ClusterInfo, kube_namespace: str, served_logs: ServedLogs
) -> None:
    running_pod(kube_cluster, kube_namespace, "service")
    served_logs.for_pod(kube_namespace, "service", LINES, start=START)
    wait_served(kube_cluster, kube_namespace, "service")
    assert logs(kube_cluster, kube_namespace, "service") == LINES
    assert logs(kube_cluster, kube_namespace, "service", "--tail=2") == ["line 4", "line 5"]
    since = (START + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert logs(kube_cluster, kube_namespace, "service", f"--since-time={since}") == ["line 4", "line 5"]
    stamped = logs(kube_cluster, kube_namespace, "service", "--timestamps", "--tail=1")
    assert stamped == ["2026-01-01T12:00:04.000000000Z line 5"]


def test_namespace_wide_logs_reach_a_job_pod(
    kube_cluster: ClusterInfo, kube_namespace: str, served_logs: ServedLogs
) -> None:
    served_logs.for_namespace(kube_namespace, ["collected 3 items", "3 passed"], containers=["main"])
    create(kube_cluster, kube_namespace, job("tests"))
    wait_for(kube_cluster, kube_namespace, "job/tests", "condition=Complete")
    (pod,) = job_pods(kube_cluster, kube_namespace, "tests")
    name = pod["metadata"]["name"]
    wait_served(kube_cluster, kube_namespace, f"{name}")
    assert logs(kube_cluster, kube_namespace, name, "-c", "main") == ["collected 3 items", "3 passed"]
    # Only the container named is served.
    assert run_kubectl(kube_cluster, "logs", "-n", kube_namespace, name, "-c", "sidecar").returncode != 0


def forward_lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def test_follow_delivers_appended_lines_and_never_ends_by_itself(
    kube_cluster: ClusterInfo, kube_namespace: str, served_logs: ServedLogs
) -> None:
    running_pod(kube_cluster, kube_namespace, "follow")
    path = served_logs.for_pod(kube_namespace, "follow", ["first"])
    wait_served(kube_cluster, kube_namespace, "follow")
    follower = subprocess.Popen(
        ["kubectl", "--kubeconfig", kube_cluster.kubeconfig, "logs", "-f", "-n", kube_namespace, "follow"],
        stdout=subprocess.PIPE,
        text=True,
    )
    received: queue.Queue[str] = queue.Queue()
    assert follower.stdout is not None
    reader = threading.Thread(target=forward_lines, args=(follower.stdout, received), daemon=True)
    reader.start()
    try:
        assert received.get(timeout=30) == "first\n"
        served_logs.append(path, ["second", "third"])
        assert [received.get(timeout=30), received.get(timeout=30)] == ["second\n", "third\n"]
        # kwok v0.7 keeps the stream open after the last line, even once the pod has ended.
        kubectl(kube_cluster, "delete", "pod", "follow", "-n", kube_namespace, "--wait=true")
        assert follower.poll() is None
    finally:
        follower.kill()
        follower.wait()
