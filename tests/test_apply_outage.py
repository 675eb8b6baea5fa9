"""`up` through an API server outage, on a throw-away cluster this test may break.

The API server is killed while `up` waits for a Deployment whose pods cannot start
(the scheduler is paused), so:

1. `up` fails at its deadline saying since when the API server has been unreachable,
   with the last state it saw;
2. after the restart the Deployment's progress deadline has run out (the controller
   marks it ProgressDeadlineExceeded): history from before the next run, not that
   run's failure;
3. the re-run therefore waits, says why, and converges once pods can start again
   (the scheduler resumes) — instead of failing at once with "rollout stuck".
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from envspec.cluster import ClusterInfo, cluster_down, cluster_up
from envspec.cluster.progress import Progress
from envspec.errors import NotReadyError
from envspec.events import Emitter, ObjectProgress
from envspec.kube.client import ClusterTarget
from envspec.operations.up import up
from envspec.plan import Plan, PlannedObject
from envspec.runner import ApplyOptions, ApplyResult
from envspec.sinks import Recorder
from tests.cluster_fixtures import cluster_name_for_tests, run_kubectl

pytestmark = pytest.mark.cluster

PROGRESS_DEADLINE_SECONDS = 8


@pytest.fixture(scope="module")
def outage_cluster() -> Iterator[ClusterInfo]:
    name = f"{cluster_name_for_tests()}-outage"[:40]
    info = cluster_up(name, "kwok", progress=Progress())
    yield info
    cluster_down(name, progress=Progress())


def component_pid(cluster: str, component: str) -> int:
    """The pid of one control-plane process of `cluster`, found by its binary's path."""
    marker = f"/clusters/{cluster}/bin/{component}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if command.endswith(marker):
            return int(entry.name)
    raise AssertionError(f"no {component} process of cluster {cluster}")


def restart_what_died_since(cluster: ClusterInfo) -> bool:
    """Restart the control plane if a component has died since the last restart; False (the
    caller's condition is not met yet). The controller manager outlives the API server by its
    leader-election renew deadline and then exits: on a loaded machine that is after
    `cluster up` has already restarted the API server, and without it no controller would
    ever set the condition the test waits for."""
    for component in ("kube-apiserver", "kube-controller-manager"):
        try:
            component_pid(cluster.name, component)
        except AssertionError:
            cluster_up(cluster.name, "kwok", progress=Progress())
            break
    return False


def web_plan(name: str) -> Plan:
    labels = {"app.kubernetes.io/managed-by": "envspec", "envspec.dev/environment": name}
    namespace = f"envspec-{name}"
    pod_labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
            "selector": {"matchLabels": pod_labels},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {"containers": [{"name": "web", "image": "registry.example.com/web:1"}]},
            },
        },
    }
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}}
    return Plan(name, namespace, 3600, (PlannedObject(0, manifest), PlannedObject(1, deployment)))


def progressing_reason(cluster: ClusterInfo, namespace: str) -> str | None:
    done = run_kubectl(cluster, "get", "deployment/web", "-n", namespace, "-o", "json")
    if done.returncode != 0:
        return None
    conditions = json.loads(done.stdout).get("status", {}).get("conditions") or []
    return next((c.get("reason") for c in conditions if c.get("type") == "Progressing"), None)


def wait_until(what: str, check: Any, limit: float = 180) -> None:
    """Poll `check` until true; a generous limit only against hanging for ever, not a timing assertion."""
    give_up = time.monotonic() + limit
    while not check():
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.5)


def test_up_through_an_api_server_outage_and_a_progress_deadline_that_ran_out_meanwhile(
    outage_cluster: ClusterInfo,
) -> None:
    plan = web_plan("outage-" + uuid.uuid4().hex[:6])
    target = ClusterTarget(outage_cluster.kubeconfig)
    scheduler = component_pid(outage_cluster.name, "kube-scheduler")
    os.kill(scheduler, signal.SIGSTOP)  # pods stay Pending: the rollout cannot progress
    try:
        first = Recorder()

        def kill_the_api_server_once_web_waits_for_pods() -> None:
            # Once the controller has reported on the new Deployment (0/1 ready), not merely once
            # it is applied: on a busy machine the kill could otherwise come first, and the last
            # state up knew would be "waiting for the controller".
            wait_until(
                "deployment/web waiting for its pods",
                lambda: any(
                    e.ref == "deployment/web" and "0/1 ready" in e.message for e in first.of_type(ObjectProgress)
                ),
            )
            os.kill(component_pid(outage_cluster.name, "kube-apiserver"), signal.SIGKILL)

        killer = threading.Thread(target=kill_the_api_server_once_web_waits_for_pods, daemon=True)
        killer.start()
        with pytest.raises(NotReadyError) as outage:
            run_up(target, plan, first, timeout=6)
        killer.join(timeout=60)
        message = outage.value.message
        assert "the API server has been unreachable since " in message, message
        assert "(connection refused)" in message
        assert "last known state: deployment/web in " in message and "0/1 ready" in message

        cluster_up(outage_cluster.name, "kwok", progress=Progress())  # restarts what died
        wait_until(
            "the progress deadline to run out",
            lambda: (
                restart_what_died_since(outage_cluster)
                or progressing_reason(outage_cluster, plan.namespace) == "ProgressDeadlineExceeded"
            ),
        )

        second = Recorder()
        result: list[ApplyResult] = []
        failure: list[BaseException] = []

        def rerun() -> None:
            try:
                result.append(run_up(target, plan, second, timeout=240))
            except BaseException as exc:
                failure.append(exc)

        rerunning = threading.Thread(target=rerun, daemon=True)
        rerunning.start()
        wait_until(
            "the re-run to wait on the stale progress deadline",
            lambda: (
                bool(failure) or any("ran out before this run" in e.message for e in second.of_type(ObjectProgress))
            ),
        )
        assert not failure, f"the re-run failed instead of waiting: {failure}"
    finally:
        os.kill(component_pid(outage_cluster.name, "kube-scheduler"), signal.SIGCONT)
    rerunning.join(timeout=300)
    assert not failure, f"the re-run failed: {failure}"
    assert result and result[0].actions["deployment/web"] == "unchanged"  # nothing re-sent: it recovered by itself


def run_up(target: ClusterTarget, plan: Plan, recorder: Recorder, *, timeout: float) -> ApplyResult:
    async def main() -> ApplyResult:
        return await up(
            target,
            lambda _: plan,
            events=Emitter(recorder, operation="up"),
            options=ApplyOptions(timeout_seconds=timeout),
        )

    return anyio.run(main)
