"""Proof, against the real control plane, of what envspec's applier will build on.

Server-side apply through kr8s, admission (ResourceQuota, LimitRanger, PodSecurity),
the controllers (Deployment, StatefulSet, Job, EndpointSlice, namespace finalisation),
kwok's simulated pod lifecycle, and the cluster command's fault handling.

The SSA helper here is deliberately minimal and test-only; the product's applier lives
in envspec/kube/ and envspec/runner.py. The tests that apply through that helper are
named `test_cluster_proof_...`: they prove the cluster, not envspec, and would pass with
envspec deleted. envspec's own apply path (`envspec up`) is tested for the same
behaviour in tests/test_apply_cluster.py:

    applied objects owned by envspec, reapply a no-op   test_objects_up_applies_are_owned_by_envspecs_field_manager,
                                                        test_unchanged_re_up_writes_only_the_lease
    Deployment available, StatefulSet ready             test_fullstack_up_is_ready_and_status_says_so,
                                                        test_pods_of_up_are_scheduled_ready_with_the_resolved_resources
    Job complete                                        test_a_job_is_waited_for_until_complete
    Service endpoints follow ready pods                 test_services_up_creates_select_the_ready_pods_of_their_workload
    LimitRange defaults injected by admission           test_pods_of_up_are_scheduled_ready_with_the_resolved_resources
    pod over quota rejected with the server's message   test_quota_too_small_at_admission_fails_early_naming_the_quota
    Pod Security admission enforced                     test_the_namespace_up_creates_enforces_its_pod_security_level
    a deleted pod is replaced                           (the controllers' work; envspec manages no pods)
    namespace deletion completes                        test_down_deletes_the_namespace_and_waits_until_it_is_gone
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import kr8s.asyncio
import pytest
from kr8s import ServerError

from envspec.cluster import ClusterInfo, cluster_down, cluster_status, cluster_up
from envspec.cluster.kwok import KwokCluster
from envspec.cluster.paths import Layout
from envspec.cluster.proc import pid_alive, wait_port_free
from envspec.cluster.progress import Progress, Quiet
from tests.cluster_fixtures import cluster_name_for_tests, kubectl

pytestmark = pytest.mark.cluster

Obj = dict[str, Any]
T = TypeVar("T")

# kind -> (plural, namespaced): just the kinds these tests apply.
RESOURCES: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False),
    "ResourceQuota": ("resourcequotas", True),
    "LimitRange": ("limitranges", True),
    "Service": ("services", True),
    "Deployment": ("deployments", True),
    "StatefulSet": ("statefulsets", True),
    "Job": ("jobs", True),
    "Pod": ("pods", True),
}
PAUSE = "registry.k8s.io/pause:3.10"  # never pulled under kwok; a real image for kind


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


async def api_for(cluster: ClusterInfo) -> Any:
    return await kr8s.asyncio.api(kubeconfig=cluster.kubeconfig)


# --- a minimal server-side apply client -------------------------------------------------


async def ssa(api: Any, body: Obj) -> Obj:
    """PATCH with application/apply-patch+yaml (JSON is YAML), as field manager envspec."""
    plural, namespaced = RESOURCES[body["kind"]]
    meta = body["metadata"]
    async with api.call_api(
        "PATCH",
        version=body["apiVersion"],
        namespace=meta.get("namespace") if namespaced else None,
        url=f"{plural}/{meta['name']}",
        content=json.dumps(body),
        headers={"Content-Type": "application/apply-patch+yaml"},
        params={"fieldManager": "envspec", "force": "true"},
    ) as response:
        result: Obj = response.json()
        return result


async def get(api: Any, version: str, plural: str, name: str, namespace: str | None = None) -> Obj | None:
    try:
        async with api.call_api("GET", version=version, namespace=namespace, url=f"{plural}/{name}") as response:
            result: Obj = response.json()
            return result
    except ServerError as exc:
        if exc.response is not None and exc.response.status_code == 404:
            return None
        raise


async def list_objects(api: Any, version: str, plural: str, namespace: str, selector: str = "") -> list[Obj]:
    params = {"labelSelector": selector} if selector else {}
    async with api.call_api("GET", version=version, namespace=namespace, url=plural, params=params) as response:
        items: list[Obj] = response.json()["items"]
        return items


async def wait_for(
    fetch: Callable[[], Awaitable[Obj | None]], done: Callable[[Obj | None], bool], what: str, timeout: float = 90
) -> Obj | None:
    deadline = time.monotonic() + timeout
    while True:
        obj = await fetch()
        if done(obj):
            return obj
        if time.monotonic() > deadline:
            status = json.dumps((obj or {}).get("status"), indent=1)[:2000]
            pytest.fail(f"{what}: not reached after {timeout:.0f}s; last status: {status}", pytrace=False)
        await asyncio.sleep(0.3)


def condition(obj: Obj | None, kind: str) -> bool:
    conditions = (obj or {}).get("status", {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def deployment_available(obj: Obj | None) -> bool:
    if obj is None:
        return False
    status = obj.get("status", {})
    return bool(
        status.get("observedGeneration", 0) >= obj["metadata"]["generation"]
        and status.get("availableReplicas", 0) == obj["spec"]["replicas"]
        and condition(obj, "Available")
    )


def statefulset_ready(obj: Obj | None) -> bool:
    if obj is None:
        return False
    status = obj.get("status", {})
    return bool(
        status.get("observedGeneration", 0) >= obj["metadata"]["generation"]
        and status.get("readyReplicas", 0) == obj["spec"]["replicas"]
        and status.get("currentRevision") == status.get("updateRevision")
    )


# --- the environment under test -----------------------------------------------------------


def container(name: str, image: str = PAUSE, **extra: Any) -> Obj:
    return {"name": name, "image": image, **extra}


def pod_template(app: str, *containers: Obj, **spec: Any) -> Obj:
    return {"metadata": {"labels": {"app": app}}, "spec": {"containers": list(containers), **spec}}


def environment(namespace: str) -> list[Obj]:
    """Namespace-first apply order, as the product will do: quota and defaults before pods."""
    meta = {"namespace": namespace}
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {"envspec.test/proof": "true"}},
        },
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "quota", **meta},
            "spec": {"hard": {"requests.cpu": "1", "limits.cpu": "2", "pods": "10"}},
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "defaults", **meta},
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": "200m", "memory": "64Mi"},
                        "defaultRequest": {"cpu": "100m", "memory": "32Mi"},
                    }
                ]
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", **meta},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "db", **meta},
            "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", **meta},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": pod_template("web", container("web", ports=[{"containerPort": 8080}])),
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db", **meta},
            "spec": {
                "serviceName": "db",
                "replicas": 1,
                "selector": {"matchLabels": {"app": "db"}},
                "template": pod_template("db", container("db")),
            },
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "migrate", **meta},
            "spec": {
                "backoffLimit": 0,
                "template": pod_template(
                    "migrate", container("migrate", "busybox:1.36", command=["true"]), restartPolicy="Never"
                ),
            },
        },
    ]


async def apply_environment(api: Any, namespace: str) -> None:
    for body in environment(namespace):
        await ssa(api, body)
        if body["kind"] == "ResourceQuota":
            # Quota admission refuses pods until the quota controller has computed usage.
            await wait_for(
                lambda: get(api, "v1", "resourcequotas", "quota", namespace),
                lambda q: bool(q and q.get("status", {}).get("hard")),
                "ResourceQuota status computed by kube-controller-manager",
            )


@dataclass(frozen=True)
class ProofEnv:
    cluster: ClusterInfo
    namespace: str


@pytest.fixture(scope="module")
def proof_env(kube_cluster: ClusterInfo) -> Iterator[ProofEnv]:
    namespace = f"proof-{secrets.token_hex(3)}"

    async def setup() -> None:
        await apply_environment(await api_for(kube_cluster), namespace)

    run(setup())
    yield ProofEnv(kube_cluster, namespace)
    kubectl(kube_cluster, "delete", "namespace", namespace, "--ignore-not-found", "--wait=false")


# --- the API server itself ------------------------------------------------------------------


def test_server_reports_the_pinned_version(kube_cluster: ClusterInfo) -> None:
    async def check() -> Obj:
        version: Obj = await (await api_for(kube_cluster)).version()
        return version

    version = run(check())
    assert version["gitVersion"] == "v1.34.4"
    assert (version["major"], version["minor"]) == ("1", "34")


def test_metrics_are_readable_with_the_admin_kubeconfig(kube_cluster: ClusterInfo) -> None:
    metrics = kubectl(kube_cluster, "get", "--raw", "/metrics")
    assert "apiserver_request_total" in metrics


def test_api_server_binds_loopback_only(kube_cluster: ClusterInfo) -> None:
    assert kube_cluster.server.startswith("https://127.0.0.1:")
    if kube_cluster.provider == "kwok":
        args = Path(f"/proc/{_component_pid(kube_cluster, 'kube-apiserver')}/cmdline").read_bytes().split(b"\0")
        assert b"--bind-address=127.0.0.1" in args


def test_home_kubeconfig_is_untouched(kube_cluster: ClusterInfo) -> None:
    assert Path(kube_cluster.kubeconfig).is_relative_to(Layout.from_env().root)
    home_config = Path.home() / ".kube" / "config"
    if home_config.exists():
        assert f"kwok-{kube_cluster.name}" not in home_config.read_text()


# --- server-side apply and the controllers ----------------------------------------------------


def envspec_entry(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in obj["metadata"]["managedFields"] if f["manager"] == "envspec" and f["operation"] == "Apply"]


def test_cluster_proof_applied_objects_are_owned_by_envspec_and_reapply_is_a_no_op(proof_env: ProofEnv) -> None:
    async def check() -> None:
        api = await api_for(proof_env.cluster)
        before = await get(api, "apps/v1", "deployments", "web", proof_env.namespace)
        assert before is not None
        managers = {(f["manager"], f["operation"]) for f in before["metadata"]["managedFields"]}
        assert ("envspec", "Apply") in managers
        body = next(b for b in environment(proof_env.namespace) if b["kind"] == "Deployment")
        after = await ssa(api, body)
        assert after["metadata"]["generation"] == before["metadata"]["generation"]
        # Not the resourceVersion: the deployment controller may still be writing status.
        # A no-op apply leaves envspec's own managedFields entry exactly as it was.
        assert envspec_entry(after) == envspec_entry(before)

    run(check())


def test_cluster_proof_deployment_becomes_available(proof_env: ProofEnv) -> None:
    async def check() -> None:
        api = await api_for(proof_env.cluster)
        await wait_for(
            lambda: get(api, "apps/v1", "deployments", "web", proof_env.namespace),
            deployment_available,
            "Deployment web Available",
        )
        pods = await list_objects(api, "v1", "pods", proof_env.namespace, "app=web")
        assert len(pods) == 2
        assert all(p["status"]["phase"] == "Running" and condition(p, "Ready") for p in pods)
        assert all(p["spec"].get("nodeName", "").startswith("node-") for p in pods)  # bound by the scheduler

    run(check())


def test_cluster_proof_statefulset_becomes_ready(proof_env: ProofEnv) -> None:
    async def check() -> None:
        api = await api_for(proof_env.cluster)
        await wait_for(
            lambda: get(api, "apps/v1", "statefulsets", "db", proof_env.namespace),
            statefulset_ready,
            "StatefulSet db ready",
        )
        assert await get(api, "v1", "pods", "db-0", proof_env.namespace) is not None

    run(check())


def test_cluster_proof_job_completes_and_its_pod_succeeds(proof_env: ProofEnv) -> None:
    async def check() -> None:
        api = await api_for(proof_env.cluster)
        await wait_for(
            lambda: get(api, "batch/v1", "jobs", "migrate", proof_env.namespace),
            lambda job: condition(job, "Complete"),
            "Job migrate Complete",
        )
        pods = await list_objects(api, "v1", "pods", proof_env.namespace, "app=migrate")
        assert [p["status"]["phase"] for p in pods] == ["Succeeded"]

    run(check())


def test_cluster_proof_service_endpoints_follow_ready_pods(proof_env: ProofEnv) -> None:
    async def check() -> None:
        api = await api_for(proof_env.cluster)
        service = await get(api, "v1", "services", "web", proof_env.namespace)
        assert service is not None and service["spec"]["clusterIP"] not in ("", "None")

        async def ready_endpoints() -> Obj | None:
            slices = await list_objects(
                api, "discovery.k8s.io/v1", "endpointslices", proof_env.namespace, "kubernetes.io/service-name=web"
            )
            ready = [e for s in slices for e in s.get("endpoints") or [] if e.get("conditions", {}).get("ready")]
            return {"status": {"ready": len(ready)}}

        await wait_for(ready_endpoints, lambda o: bool(o and o["status"]["ready"] == 2), "2 ready endpoints of web")

    run(check())


def test_cluster_proof_limitrange_defaults_are_injected_by_admission(proof_env: ProofEnv) -> None:
    async def check() -> None:
        api = await api_for(proof_env.cluster)
        await wait_for(
            lambda: get(api, "apps/v1", "deployments", "web", proof_env.namespace), deployment_available, "web"
        )
        pod = (await list_objects(api, "v1", "pods", proof_env.namespace, "app=web"))[0]
        resources = pod["spec"]["containers"][0]["resources"]
        assert resources["requests"] == {"cpu": "100m", "memory": "32Mi"}
        assert resources["limits"] == {"cpu": "200m", "memory": "64Mi"}

    run(check())


def test_cluster_proof_pod_over_quota_is_rejected_with_the_api_servers_message(proof_env: ProofEnv) -> None:
    big = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "too-big", "namespace": proof_env.namespace},
        "spec": {"containers": [container("big", resources={"requests": {"cpu": "2"}, "limits": {"cpu": "2"}})]},
    }

    async def attempt() -> None:
        await ssa(await api_for(proof_env.cluster), big)

    with pytest.raises(ServerError) as caught:
        run(attempt())
    assert caught.value.response is not None and caught.value.response.status_code == 403
    message = str(caught.value)
    assert 'pods "too-big" is forbidden: exceeded quota: quota' in message
    assert "requested: limits.cpu=2,requests.cpu=2" in message


def test_cluster_proof_pod_security_admission_is_enforced(kube_cluster: ClusterInfo, kube_namespace: str) -> None:
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root", "namespace": kube_namespace},
        "spec": {"containers": [container("root", securityContext={"privileged": True})]},
    }
    labels = {"pod-security.kubernetes.io/enforce": "baseline"}

    async def attempt() -> None:
        api = await api_for(kube_cluster)
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": kube_namespace, "labels": labels}}
        await ssa(api, namespace)
        await ssa(api, privileged)

    with pytest.raises(ServerError) as caught:
        run(attempt())
    assert 'violates PodSecurity "baseline:latest": privileged' in str(caught.value)


def test_cluster_proof_deleted_pod_disappears_and_is_replaced(proof_env: ProofEnv) -> None:
    async def check() -> None:
        api = await api_for(proof_env.cluster)
        ns = proof_env.namespace
        await wait_for(lambda: get(api, "apps/v1", "deployments", "web", ns), deployment_available, "web")
        victim = (await list_objects(api, "v1", "pods", ns, "app=web"))[0]["metadata"]["name"]
        async with api.call_api("DELETE", version="v1", namespace=ns, url=f"pods/{victim}"):
            pass
        await wait_for(lambda: get(api, "v1", "pods", victim, ns), lambda p: p is None, f"pod {victim} gone", 60)
        await wait_for(lambda: get(api, "apps/v1", "deployments", "web", ns), deployment_available, "web again")

    run(check())


def test_cluster_proof_namespace_deletion_completes(kube_cluster: ClusterInfo) -> None:
    namespace = f"doomed-{secrets.token_hex(3)}"

    async def check() -> None:
        api = await api_for(kube_cluster)
        await apply_environment(api, namespace)
        await wait_for(lambda: get(api, "apps/v1", "deployments", "web", namespace), deployment_available, "web")
        async with api.call_api("DELETE", version="v1", url=f"namespaces/{namespace}"):
            pass
        # The namespace controller (kube-controller-manager) must empty it and remove the
        # kubernetes finalizer; kwok then lets the pods go.
        await wait_for(lambda: get(api, "v1", "namespaces", namespace), lambda n: n is None, "namespace gone", 120)

    run(check())


# --- the cluster command: reuse and faults ----------------------------------------------------


def _component_pid(cluster: ClusterInfo, component: str) -> int:
    state = {c.name: c.pid for c in KwokCluster(cluster.name, Layout.from_env(), Quiet()).components()}
    pid = state[component]
    assert pid is not None, f"{component} of {cluster.name} is not running"
    return pid


def test_second_up_reuses_the_running_cluster_quickly(kube_cluster: ClusterInfo) -> None:
    started = time.monotonic()
    again = cluster_up(kube_cluster.name, progress=Progress())
    elapsed = time.monotonic() - started
    assert again.server == kube_cluster.server
    assert again.kubeconfig == kube_cluster.kubeconfig
    assert elapsed < 30, f"a warm `cluster up` took {elapsed:.1f}s"


@pytest.fixture(scope="module")
def fault_cluster() -> Iterator[str]:
    """A second, throw-away kwok cluster the fault tests may break (binaries are cached).

    Always kwok, whatever the session cluster's provider: these test the kwok provider.
    """
    name = f"{cluster_name_for_tests()}-faults"[:40]
    cluster_up(name, "kwok", progress=Progress())
    yield name
    cluster_down(name, progress=Progress())


def _kill_control_plane(name: str) -> list[int]:
    pids = [c.pid for c in KwokCluster(name, Layout.from_env(), Quiet()).components() if c.pid is not None]
    assert len(pids) == 5
    for pid in pids:
        os.kill(pid, signal.SIGKILL)  # a crash: no chance to clean up pid files
    deadline = time.monotonic() + 10
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pids


def test_up_restarts_a_crashed_control_plane_keeping_its_data(fault_cluster: str) -> None:
    info = cluster_up(fault_cluster, progress=Quiet())
    kubectl(info, "create", "namespace", "survivor")
    _kill_control_plane(fault_cluster)
    assert not cluster_status(fault_cluster).running
    again = cluster_up(fault_cluster, progress=Progress())
    assert again.server == info.server  # restarted in place, not recreated
    assert "namespace/survivor" in kubectl(again, "get", "namespace", "survivor", "-o", "name")


def test_up_moves_to_free_ports_when_its_port_was_taken(fault_cluster: str) -> None:
    info = cluster_up(fault_cluster, progress=Quiet())
    port = int(info.server.rsplit(":", 1)[1])
    _kill_control_plane(fault_cluster)
    assert wait_port_free(port)
    squatter = socket.socket()
    # Like any server (and Go's net.Listen): reuse the address despite TIME_WAIT leftovers.
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        again = cluster_up(fault_cluster, progress=Progress())
        assert again.server != info.server
        assert "Ready" in kubectl(again, "get", "nodes")
    finally:
        squatter.close()


def test_up_recovers_a_half_created_directory_without_killing_strangers(fault_cluster: str) -> None:
    cluster_down(fault_cluster, progress=Quiet())
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        half = KwokCluster(fault_cluster, Layout.from_env(), Quiet()).cluster_dir
        (half / "pids").mkdir(parents=True)
        (half / "pids" / "kube-apiserver.pid").write_text(str(stranger.pid))
        (half / "pki").mkdir()
        info = cluster_up(fault_cluster, progress=Progress())
        assert "Ready" in kubectl(info, "get", "nodes")
        assert stranger.poll() is None, "a process named by a stale pid file was killed"
    finally:
        stranger.kill()
        stranger.wait()


def test_up_recreates_a_cluster_of_an_older_configuration(fault_cluster: str) -> None:
    # kwok reads its Stage objects and log CRDs only at creation: an older cluster would
    # ignore the annotations the tests rely on, so `up` recreates it and says why.
    info = cluster_up(fault_cluster, progress=Quiet())
    kubectl(info, "create", "namespace", "from-the-old-cluster")
    cluster = KwokCluster(fault_cluster, Layout.from_env(), Quiet())
    wanted = cluster.saved_fingerprint()
    assert wanted
    cluster.fingerprint_path.write_text("0000000000000000\n")
    messages = io.StringIO()
    again = cluster_up(fault_cluster, progress=Progress(messages))
    assert "created with an older configuration (kwok pod stages, log serving); recreating it" in messages.getvalue()
    assert cluster.saved_fingerprint() == wanted
    assert "from-the-old-cluster" not in kubectl(again, "get", "namespaces", "-o", "name")
    # The same configuration is reused, not recreated.
    messages = io.StringIO()
    cluster_up(fault_cluster, progress=Progress(messages))
    assert "reusing it" in messages.getvalue()


def test_down_cleans_a_stale_directory(fault_cluster: str) -> None:
    cluster_down(fault_cluster, progress=Quiet())
    layout = Layout.from_env()
    stale = KwokCluster(fault_cluster, layout, Quiet()).cluster_dir
    (stale / "logs").mkdir(parents=True)
    (stale / "kwok.yaml").write_text("kind: KwokctlConfiguration\ncomponents: [")  # truncated write
    assert cluster_down(fault_cluster, progress=Progress()) is True
    assert not stale.exists()
    assert not layout.cluster_dir(fault_cluster).exists()
    assert not cluster_status(fault_cluster).exists
