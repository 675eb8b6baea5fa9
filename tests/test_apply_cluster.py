"""`up`, `status`, `ls`, `diff`, `down` against the real local control plane (kwok + kube-apiserver)."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from ruamel.yaml import YAML

from envspec.cli.main import main
from envspec.errors import ClusterError, ExitCode, NotReadyError
from envspec.events import Emitter, ObjectApplied, ObjectFailed, ObjectReady, Summary
from envspec.kube.client import ClusterTarget
from envspec.kube.deadline import Deadline
from envspec.kube.kinds import MANAGED_KINDS
from envspec.operations.spec import PlanBuilder
from envspec.operations.status import ls as list_environments
from envspec.operations.up import up
from envspec.pipeline import build_plan, load_spec
from envspec.plan import Plan, PlannedObject
from envspec.runner import ApplyOptions, ApplyResult
from envspec.sinks import Recorder

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parent.parent
FULLSTACK = str(REPO / "examples" / "fullstack" / "maestro-env.yaml")
QUICKSTART = str(REPO / "examples" / "quickstart" / "maestro-env.yaml")
LARGE = str(REPO / "examples" / "large" / "maestro-env.yaml")
ENVSPEC_RESOURCES = {t.plural for t in MANAGED_KINDS.values()}
WRITE_VERBS = {"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"}  # APPLY: server-side apply


async def up_environment(
    target: ClusterTarget, build: PlanBuilder, *, sink: Recorder, options: ApplyOptions | None = None
) -> ApplyResult:
    """`envspec up` in this process, its events recorded."""
    return await up(target, build, events=Emitter(sink, operation="up"), options=options or ApplyOptions())


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.startswith("{")]

    def summary(self) -> dict[str, Any]:
        return next(e for e in self.events() if e["event"] == "summary")


@pytest.fixture(scope="module")
def kubeconfig(kube_cluster: Any) -> str:
    return str(kube_cluster.kubeconfig)


@pytest.fixture(scope="module")
def kubectl(kubeconfig: str) -> Callable[..., str]:
    def run(*args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["kubectl", "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr}")
        return done.stdout

    return run


@pytest.fixture(scope="module")
def envspec(kubeconfig: str) -> Callable[..., Run]:
    """Runs the CLI in this process, as a user would call it, and captures what it prints."""

    def run(*args: str) -> Run:
        import contextlib
        import io

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([*args, "--kubeconfig", kubeconfig])
                code = 0
            except SystemExit as exit_:
                code = int(exit_.code or 0)
        return Run(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture(scope="module")
def namespaces_to_delete(kubectl: Callable[..., str]) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    if names:
        kubectl("delete", "namespace", *names, "--wait=false", "--ignore-not-found")


def new_id() -> str:
    return "t" + uuid.uuid4().hex[:7]


def write_counts(kubectl: Callable[..., str]) -> Counter[tuple[str, str]]:
    """apiserver_request_total of write verbs on the resources envspec writes, by (verb, resource).

    Only answers with a 2xx code count: writes that took effect. Under load the API
    server's priority and fairness may answer 429, and a retried request would otherwise
    count twice.
    """
    counts: Counter[tuple[str, str]] = Counter()
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.rindex("}")]))
        if (
            labels.get("verb") in WRITE_VERBS
            and not labels.get("dry_run")
            and not labels.get("subresource")
            and labels.get("resource") in ENVSPEC_RESOURCES
            and labels.get("code", "").startswith("2")
        ):
            counts[(labels["verb"], labels["resource"])] += int(float(line.rsplit(" ", 1)[1]))
    return counts


def secret_value(kubectl: Callable[..., str], namespace: str, secret: str, key: str) -> str:
    encoded = kubectl("get", "secret", secret, "-n", namespace, "-o", f"jsonpath={{.data.{key}}}")
    return base64.b64decode(encoded).decode()


def namespace_annotations(kubectl: Callable[..., str], namespace: str) -> dict[str, str]:
    found: dict[str, str] = json.loads(kubectl("get", "namespace", namespace, "-o", "json"))["metadata"]["annotations"]
    return found


def spec_file(tmp_path: Path, name: str, spec: dict[str, Any]) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(spec, indent=2))  # JSON is YAML
    return str(path)


def web_spec(name: str, services: dict[str, int]) -> dict[str, Any]:
    return {
        "apiVersion": "envspec/v1",
        "kind": "Environment",
        "name": name,
        "ttl": "30m",
        "services": {svc: {"image": "nginx:1.27", "port": port} for svc, port in services.items()},
    }


def changed(plan: Plan, kind: str, change: Callable[[dict[str, Any]], None]) -> Plan:
    """The plan with `change` made to a copy of every manifest of `kind`."""
    objects = []
    for obj in plan.objects:
        manifest = json.loads(json.dumps(obj.manifest))
        if obj.kind == kind:
            change(manifest)
        objects.append(PlannedObject(obj.wave, manifest))
    return replace(plan, objects=tuple(objects))


@pytest.fixture(scope="module")
def fullstack(
    envspec: Callable[..., Run], kubectl: Callable[..., str], namespaces_to_delete: list[str]
) -> tuple[str, str, Run]:
    """examples/fullstack, up once for the module: (id, namespace, the run's output)."""
    env_id = new_id()
    namespace = f"quality-fabric-fullstack-{env_id}"
    namespaces_to_delete.append(namespace)
    run = envspec("up", "-f", FULLSTACK, "--id", env_id, "-o", "json")
    assert run.code == 0, run.err
    wait_for_namespace_controllers(kubectl, namespace)
    return env_id, namespace, run


def wait_for_namespace_controllers(kubectl: Callable[..., str], namespace: str) -> None:
    """Wait until the controllers have created what they add to every new namespace (its
    `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap): on a loaded machine they
    lag behind `up`, and their writes would be counted as the next run's."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        account = kubectl("get", "serviceaccount", "default", "-n", namespace, "--ignore-not-found", "-o", "name")
        root_ca = kubectl("get", "configmap", "kube-root-ca.crt", "-n", namespace, "--ignore-not-found", "-o", "name")
        if account.strip() and root_ca.strip():
            return
        time.sleep(0.2)
    raise AssertionError(f"the controllers did not set up namespace {namespace} within 60s")


def test_fullstack_up_is_ready_and_status_says_so(
    fullstack: tuple[str, str, Run], envspec: Callable[..., Run], kubectl: Callable[..., str]
) -> None:
    env_id, namespace, run = fullstack
    summary = run.summary()
    assert summary["ok"] and summary["waited"]
    assert (summary["created"], summary["configured"], summary["unchanged"]) == (13, 0, 0)
    assert len(summary["wave_seconds"]) == 7
    ready = [e["ref"] for e in run.events() if e["event"] == "object_ready"]
    assert {"deployment/api", "deployment/worker", "statefulset/db", "statefulset/cache"} <= set(ready)

    status = envspec("status", "-f", FULLSTACK, "--id", env_id, "-o", "json")
    assert status.code == 0, status.err
    report = json.loads(status.out)
    assert report["namespace"] == namespace
    assert report["ready"] == report["total"] == 13
    assert 7000 < report["expires_in_seconds"] <= 7200  # ttl: 2h
    api = next(o for o in report["objects"] if o["kind"] == "Deployment" and o["name"] == "api")
    assert api == {**api, "wave": 5, "ready": True, "message": "2/2 ready"}

    table = envspec("status", "--name", "fullstack", "--id", env_id)
    assert table.code == 0
    assert f"namespace {namespace}  ready 13/13  expires in 1h59m" in table.out
    assert re.search(r"6\s+deployment/api\s+yes\s+2/2 ready", table.out)  # waves counted from 1, as up does

    password = secret_value(kubectl, namespace, "db-credentials", "password")
    assert len(password) >= 24
    assert password not in run.out + run.err + status.out + table.out


def test_unchanged_re_up_writes_only_the_lease(
    fullstack: tuple[str, str, Run], envspec: Callable[..., Run], kubectl: Callable[..., str]
) -> None:
    env_id, namespace, _ = fullstack
    lease_before = namespace_annotations(kubectl, namespace)["envspec.dev/expires-at"]
    time.sleep(1.1)  # the lease has a resolution of one second
    before = write_counts(kubectl)
    run = envspec("up", "-f", FULLSTACK, "--id", env_id, "-o", "json")
    after = write_counts(kubectl)
    assert run.code == 0, run.err
    assert after - before == Counter({("APPLY", "namespaces"): 1})
    summary = run.summary()
    assert (summary["created"], summary["configured"], summary["unchanged"]) == (0, 0, 13)
    applied = {e["ref"]: e["action"] for e in run.events() if e["event"] == "object_applied"}
    assert set(applied.values()) == {"unchanged"}
    annotations = namespace_annotations(kubectl, namespace)
    assert annotations["envspec.dev/expires-at"] > lease_before
    assert annotations["janitor/expires"] == annotations["envspec.dev/expires-at"]


def test_a_changed_spec_keeps_the_generated_passwords(
    fullstack: tuple[str, str, Run], envspec: Callable[..., Run], kubectl: Callable[..., str], tmp_path: Path
) -> None:
    env_id, namespace, _ = fullstack
    password = secret_value(kubectl, namespace, "db-credentials", "password")
    spec = YAML(typ="safe", pure=True).load(Path(FULLSTACK).read_text())
    spec["services"]["worker"]["replicas"] = 2
    before = write_counts(kubectl)
    run = envspec("up", "-f", spec_file(tmp_path, "fullstack", spec), "--id", env_id, "-o", "json")
    after = write_counts(kubectl)
    assert run.code == 0, run.err
    applied = {e["ref"]: e["action"] for e in run.events() if e["event"] == "object_applied"}
    # The quota grows with the worker's replicas; nothing else changes.
    assert {ref for ref, action in applied.items() if action == "configured"} == {
        "deployment/worker",
        "resourcequota/envspec-quota",
    }
    assert after - before == Counter(
        {("APPLY", "namespaces"): 1, ("APPLY", "deployments"): 1, ("APPLY", "resourcequotas"): 1}
    )
    assert secret_value(kubectl, namespace, "db-credentials", "password") == password
    assert password not in run.out + run.err
    # Back to the example, for the other tests of the module.
    assert envspec("up", "-f", FULLSTACK, "--id", env_id).code == 0


# --- what tests/test_cluster_proof.py proves of the cluster, through envspec's own apply path ---


def test_objects_up_applies_are_owned_by_envspecs_field_manager(
    fullstack: tuple[str, str, Run], kubectl: Callable[..., str]
) -> None:
    _, namespace, _ = fullstack
    for ref in (
        "deployment/api",
        "statefulset/db",
        "service/api",
        "secret/db-credentials",
        "limitrange/envspec-defaults",
    ):
        found = json.loads(kubectl("get", ref, "-n", namespace, "-o", "json", "--show-managed-fields"))
        managers = {(entry["manager"], entry["operation"]) for entry in found["metadata"]["managedFields"]}
        assert ("envspec", "Apply") in managers, (ref, managers)
    namespace_object = json.loads(kubectl("get", "namespace", namespace, "-o", "json", "--show-managed-fields"))
    assert ("envspec", "Apply") in {
        (e["manager"], e["operation"]) for e in namespace_object["metadata"]["managedFields"]
    }


def pods_of(kubectl: Callable[..., str], namespace: str, name: str) -> list[dict[str, Any]]:
    found = kubectl("get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/name={name}", "-o", "json")
    items: list[dict[str, Any]] = json.loads(found)["items"]
    return items


def test_pods_of_up_are_scheduled_ready_with_the_resolved_resources(
    fullstack: tuple[str, str, Run], kubectl: Callable[..., str]
) -> None:
    _, namespace, _ = fullstack
    resolved = load_spec(FULLSTACK, {}).resources
    for name, replicas in (("api", 2), ("worker", 1), ("db", 1), ("cache", 1)):
        pods = [p for p in pods_of(kubectl, namespace, name) if not p["metadata"].get("deletionTimestamp")]
        assert len(pods) == replicas, name
        for pod in pods:
            assert pod["spec"].get("nodeName", "").startswith("node-")  # bound by the scheduler
            assert pod["status"]["phase"] == "Running"
            assert any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])
            # What the pod runs with is what the spec resolved to (its own values, else the
            # environment's defaults), whether envspec wrote it or the LimitRange admitted it.
            assert pod["spec"]["containers"][0]["resources"] == resolved[name].as_manifest(), name


def test_services_up_creates_select_the_ready_pods_of_their_workload(
    fullstack: tuple[str, str, Run], kubectl: Callable[..., str]
) -> None:
    _, namespace, _ = fullstack
    for service, replicas in (("api", 2), ("db", 1), ("cache", 1)):
        slices = json.loads(
            kubectl(
                "get", "endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={service}", "-o", "json"
            )
        )["items"]
        ready = {
            endpoint["targetRef"]["name"]
            for found in slices
            for endpoint in found.get("endpoints") or []
            if endpoint.get("conditions", {}).get("ready")
        }
        pods = {p["metadata"]["name"] for p in pods_of(kubectl, namespace, service)}
        assert len(ready) == replicas and ready <= pods, (service, ready, pods)


def test_the_namespace_up_creates_enforces_its_pod_security_level(
    fullstack: tuple[str, str, Run], tmp_path: Path, kubeconfig: str
) -> None:
    _, namespace, _ = fullstack  # podSecurity: baseline (the default)
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root", "namespace": namespace},
        "spec": {"containers": [{"name": "root", "image": "busybox:1.36", "securityContext": {"privileged": True}}]},
    }
    manifest = tmp_path / "privileged.json"
    manifest.write_text(json.dumps(privileged))
    refused = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "create", "--dry-run=server", "-f", str(manifest)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0
    assert 'violates PodSecurity "baseline:latest": privileged' in refused.stderr


def test_diff_shows_changes_hides_secrets_and_exits_like_kubectl_diff(
    fullstack: tuple[str, str, Run], envspec: Callable[..., Run], kubectl: Callable[..., str], tmp_path: Path
) -> None:
    env_id, namespace, _ = fullstack
    same = envspec("diff", "-f", FULLSTACK, "--id", env_id)
    assert (same.code, same.out.strip()) == (
        0,
        f"no differences: environment fullstack-{env_id} (namespace {namespace}) matches the spec",
    )
    spec = YAML(typ="safe", pure=True).load(Path(FULLSTACK).read_text())
    spec["services"]["api"]["replicas"] = 3
    del spec["services"]["worker"]
    changed = envspec("diff", "-f", spec_file(tmp_path, "fullstack", spec), "--id", env_id)
    assert changed.code == 1, changed.err
    assert "~ deployment/api in " in changed.out and "-  replicas: 2\n+  replicas: 3\n" in changed.out
    assert f"- deployment/worker in {namespace} would be pruned" in changed.out
    assert changed.out.rstrip().endswith("to change, 1 to prune")
    password = secret_value(kubectl, namespace, "db-credentials", "password")
    assert password not in changed.out
    broken = envspec("diff", "-f", str(tmp_path / "missing.yaml"))
    assert broken.code > 1
    # diff changes nothing
    assert envspec("diff", "-f", FULLSTACK, "--id", env_id).code == 0


def test_removing_a_service_prunes_its_deployment_and_service_and_nothing_unmanaged(
    envspec: Callable[..., Run], kubectl: Callable[..., str], namespaces_to_delete: list[str], tmp_path: Path
) -> None:
    name = "prune-" + uuid.uuid4().hex[:6]
    namespace = f"envspec-{name}"
    namespaces_to_delete.append(namespace)
    both = spec_file(tmp_path, "both", web_spec(name, {"web": 8080, "admin": 9090}))
    assert envspec("up", "-f", both).code == 0
    # Objects envspec must never prune: no labels at all, and the environment label without managed-by.
    kubectl("create", "configmap", "by-hand", "-n", namespace)
    kubectl("create", "configmap", "lookalike", "-n", namespace)
    kubectl("label", "configmap", "lookalike", "-n", namespace, f"envspec.dev/environment={name}")
    run = envspec("up", "-f", spec_file(tmp_path, "web", web_spec(name, {"web": 8080})), "-o", "json")
    assert run.code == 0, run.err
    pruned = [(e["ref"], e["wave"]) for e in run.events() if e["event"] == "pruned"]
    assert pruned == [("deployment/admin", 5), ("service/admin", 3)]  # last wave first
    left = kubectl("get", "deployments,services,configmaps", "-n", namespace, "-o", "name").split()
    assert "deployment.apps/admin" not in left and "service/admin" not in left
    assert {"deployment.apps/web", "service/web", "configmap/by-hand", "configmap/lookalike"} <= set(left)


def test_quota_too_small_at_admission_fails_early_naming_the_quota(
    kubeconfig: str, namespaces_to_delete: list[str]
) -> None:
    # The validator rejects a quota below what the spec needs, so shrink it in the compiled plan:
    # the API server's quota admission is what must refuse the pods here.
    env_id = new_id()
    namespaces_to_delete.append(f"quality-fabric-fullstack-{env_id}")
    spec = load_spec(FULLSTACK, {})

    def shrink_quota(quota: dict[str, Any]) -> None:
        quota["spec"] = {"hard": {"limits.cpu": "600m", "limits.memory": "3Gi"}}

    def build(secrets: Any) -> Plan:
        return changed(build_plan(spec, env_id=env_id, secrets=secrets), "ResourceQuota", shrink_quota)

    recorder = Recorder()
    with pytest.raises(NotReadyError) as failure:
        anyio.run(
            partial(
                up_environment,
                ClusterTarget(kubeconfig),
                build,
                sink=recorder,
                options=ApplyOptions(timeout_seconds=120),
            )
        )
    message = failure.value.message
    assert "not ready after" not in message  # failed at once, not at the deadline
    assert message.startswith("statefulset/db in quality-fabric-fullstack-")
    assert "exceeded quota: envspec-quota" in message and "limits.cpu" in message
    failed = recorder.of_type(ObjectFailed)
    assert [f.ref for f in failed] == ["statefulset/db"]
    summary = recorder.of_type(Summary)[-1]
    assert not summary.ok and "exceeded quota" in summary.message


def test_unschedulable_pods_fail_at_once_with_the_schedulers_reason(
    kubeconfig: str, envspec: Callable[..., Run], namespaces_to_delete: list[str]
) -> None:
    name = "unsched-" + uuid.uuid4().hex[:6]
    spec = load_spec("-", {}, stdin_text=json.dumps(web_spec(name, {"web": 8080})))

    def pin_to_no_node(deployment: dict[str, Any]) -> None:
        deployment["spec"]["template"]["spec"]["nodeSelector"] = {"envspec.dev/no-such-node": "true"}

    def build(secrets: Any) -> Plan:
        plan = build_plan(spec, secrets=secrets)
        namespaces_to_delete.append(plan.namespace)
        return changed(plan, "Deployment", pin_to_no_node)

    with pytest.raises(NotReadyError, match=r"deployment/web in .*cannot be scheduled: 0/\d+ nodes are available"):
        anyio.run(partial(up_environment, ClusterTarget(kubeconfig), build, sink=Recorder()))
    status = envspec("status", "--name", name)
    assert status.code == ExitCode.NOT_READY
    assert re.search(r"6\s+deployment/web\s+FAILED\s+pod web-\S+ cannot be scheduled", status.out)
    assert f"error: 1 of 6 objects of {name} are not ready" in status.err


def test_a_refused_object_names_itself_and_quotes_the_api_server(
    kubeconfig: str, namespaces_to_delete: list[str]
) -> None:
    name = "invalid-" + uuid.uuid4().hex[:6]
    spec = load_spec("-", {}, stdin_text=json.dumps(web_spec(name, {"web": 8080})))

    def negative_replicas(deployment: dict[str, Any]) -> None:
        deployment["spec"]["replicas"] = -1

    def build(secrets: Any) -> Plan:
        plan = build_plan(spec, secrets=secrets)
        namespaces_to_delete.append(plan.namespace)
        return changed(plan, "Deployment", negative_replicas)

    recorder = Recorder()
    with pytest.raises(ClusterError) as refused:
        anyio.run(partial(up_environment, ClusterTarget(kubeconfig), build, sink=recorder))
    assert refused.value.exit_code == ExitCode.CLUSTER
    assert refused.value.message == (
        f"applying deployment/web in envspec-{name}: API server says: "
        'Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0'
    )
    assert [(f.ref, f.message) for f in recorder.of_type(ObjectFailed)] == [("deployment/web", refused.value.message)]


def test_two_ids_of_one_spec_coexist(
    envspec: Callable[..., Run], kubectl: Callable[..., str], namespaces_to_delete: list[str]
) -> None:
    first, second = new_id(), new_id()
    namespaces_to_delete.extend(f"envspec-quickstart-{i}" for i in (first, second))
    assert envspec("up", "-f", QUICKSTART, "--id", first).code == 0
    assert envspec("up", "-f", QUICKSTART, "--id", second).code == 0
    listing = envspec("ls", "-o", "json")
    assert listing.code == 0
    rows = {row["name"]: row for row in json.loads(listing.out)}
    for env_id in (first, second):
        row = rows[f"quickstart-{env_id}"]
        assert row["namespace"] == f"envspec-quickstart-{env_id}"
        assert row["ready"] == row["total"] > 1
        assert 3500 < row["expires_in_seconds"] <= 3600
    passwords = {
        secret_value(kubectl, f"envspec-quickstart-{i}", "db-credentials", "password") for i in (first, second)
    }
    assert len(passwords) == 2  # each environment has its own
    table = envspec("ls").out
    assert re.search(rf"quickstart-{first}\s+envspec-quickstart-{first}\s+\d+s\s+59m\s+\d+/\d+", table)


def test_down_deletes_the_namespace_and_waits_until_it_is_gone(
    envspec: Callable[..., Run], kubectl: Callable[..., str], namespaces_to_delete: list[str]
) -> None:
    env_id = new_id()
    namespace = f"envspec-quickstart-{env_id}"
    namespaces_to_delete.append(namespace)
    assert envspec("up", "-f", QUICKSTART, "--id", env_id).code == 0
    run = envspec("down", "-f", QUICKSTART, "--id", env_id)
    assert run.code == 0, run.err
    assert f"deleted   namespace/{namespace} in " in run.out
    assert kubectl("get", "namespace", namespace, "--ignore-not-found", "-o", "name") == ""
    again = envspec("down", "-f", QUICKSTART, "--id", env_id)
    assert again.code == 0 and "not on the cluster: nothing to delete" in again.err
    assert envspec("status", "-f", QUICKSTART, "--id", env_id).code == ExitCode.USER_ERROR


def test_down_and_up_refuse_a_namespace_envspec_does_not_manage(
    envspec: Callable[..., Run], kubectl: Callable[..., str], namespaces_to_delete: list[str], tmp_path: Path
) -> None:
    name = "plain-" + uuid.uuid4().hex[:6]
    namespaces_to_delete.append(f"envspec-{name}")
    kubectl("create", "namespace", f"envspec-{name}")
    refused = envspec("down", "--name", f"envspec-{name}")
    assert refused.code == ExitCode.USER_ERROR
    assert f"refusing to delete namespace envspec-{name}: envspec does not manage it" in refused.err
    taken = envspec("up", "-f", spec_file(tmp_path, "plain", web_spec(name, {"web": 8080})))
    assert taken.code == ExitCode.USER_ERROR
    assert f"namespace envspec-{name} exists and is not managed by envspec" in taken.err
    assert kubectl("get", "namespace", f"envspec-{name}", "-o", "name").strip() == f"namespace/envspec-{name}"
    assert kubectl("get", "all", "-n", f"envspec-{name}", "-o", "name").strip() == ""


def test_no_wait_applies_every_wave_and_returns(envspec: Callable[..., Run], namespaces_to_delete: list[str]) -> None:
    env_id = new_id()
    namespaces_to_delete.append(f"envspec-quickstart-{env_id}")
    run = envspec("up", "-f", QUICKSTART, "--id", env_id, "--no-wait", "-o", "json")
    assert run.code == 0, run.err
    summary = run.summary()
    assert summary["ok"] and not summary["waited"] and summary["created"] > 0
    assert not [e for e in run.events() if e["event"] == "object_progress"]


def test_ctrl_c_stops_cleanly_and_a_re_run_converges(
    kubeconfig: str, envspec: Callable[..., Run], namespaces_to_delete: list[str]
) -> None:
    env_id = new_id()
    namespaces_to_delete.append(f"envspec-large-{env_id}")
    command = [sys.executable, "-m", "envspec", "up", "-f", LARGE, "--id", env_id, "--kubeconfig", kubeconfig]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Interrupt once the first objects are being applied (the namespace exists).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["kubectl", "--kubeconfig", kubeconfig, "get", "namespace", f"envspec-large-{env_id}", "-o", "name"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == ExitCode.INTERRUPTED, (out, err)
    assert "interrupted" in err and "Traceback" not in err + out
    rerun = envspec("up", "-f", LARGE, "--id", env_id, "-o", "json", "--timeout", "3m")
    assert rerun.code == 0, rerun.err
    status = envspec("status", "-f", LARGE, "--id", env_id, "-o", "json")
    report = json.loads(status.out)
    assert status.code == 0 and report["ready"] == report["total"] > 100


def test_an_unreachable_cluster_is_a_clear_error(tmp_path: Path, kubeconfig: str) -> None:
    config = YAML(typ="safe", pure=True).load(Path(kubeconfig).read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    broken = tmp_path / "kubeconfig"
    with broken.open("w") as out:
        YAML(typ="safe", pure=True).dump(config, out)
    done = subprocess.run(
        [sys.executable, "-m", "envspec", "ls", "--kubeconfig", str(broken)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "KUBECONFIG": ""},
    )
    assert done.returncode == ExitCode.CLUSTER
    assert done.stderr.strip() == (f"error: cannot reach the Kubernetes API (kubeconfig {broken}): connection refused")


def test_in_cluster_service_account_authenticates_as_the_pod(
    tmp_path: Path,
    kubeconfig: str,
    kubectl: Callable[..., str],
    namespaces_to_delete: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    namespace = "sa-" + uuid.uuid4().hex[:6]
    namespaces_to_delete.append(namespace)
    kubectl("create", "namespace", namespace)
    kubectl("create", "serviceaccount", "probe", "-n", namespace)
    config = YAML(typ="safe", pure=True).load(Path(kubeconfig).read_text())
    cluster = config["clusters"][0]["cluster"]
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(kubectl("create", "token", "probe", "-n", namespace))
    (account / "ca.crt").write_text(Path(cluster["certificate-authority"]).read_text())
    (account / "namespace").write_text(namespace)
    host, port = cluster["server"].removeprefix("https://").rsplit(":", 1)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("K8S_IN_CLUSTER", "true")
    target = replace(ClusterTarget.from_options(None, None, os.environ), service_account_dir=str(account))
    assert target.in_cluster
    # Authenticated as the service account, which may not list namespaces: the server's own words.
    with pytest.raises(ClusterError) as refused:
        anyio.run(partial(list_environments, target, deadline=Deadline(30)))
    assert refused.value.message == (
        f'listing namespaces: API server says: namespaces is forbidden: User "system:serviceaccount:{namespace}:probe" '
        'cannot list resource "namespaces" in API group "" at the cluster scope'
    )


def job_plan(name: str, job_spec: dict[str, Any] | None = None, pod_spec: dict[str, Any] | None = None) -> Plan:
    """A namespace and a Job (wave 1), built by hand: the compiler emits Jobs only for `envspec test`."""
    labels = {"app.kubernetes.io/managed-by": "envspec", "envspec.dev/environment": name}
    namespace = f"envspec-{name}"
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate", "namespace": namespace, "labels": labels, "annotations": {}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "migrate", "image": "busybox:1.36", "command": ["true"]}],
                    **(pod_spec or {}),
                }
            },
            **(job_spec or {}),
        },
    }
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}}
    return Plan(name, namespace, 600, (PlannedObject(0, manifest), PlannedObject(1, job)))


def test_a_job_is_waited_for_until_complete(kubeconfig: str, namespaces_to_delete: list[str]) -> None:
    plan = job_plan("job-" + uuid.uuid4().hex[:6])
    namespaces_to_delete.append(plan.namespace)
    recorder = Recorder()
    result = anyio.run(partial(up_environment, ClusterTarget(kubeconfig), lambda _: plan, sink=recorder))
    assert result.actions == {f"namespace/{plan.namespace}": "created", "job/migrate": "created"}
    ready = {event.ref: event.message for event in recorder.of_type(ObjectReady)}
    assert ready["job/migrate"] == "complete"


def test_a_job_that_failed_before_fails_the_next_up_at_once(
    kubeconfig: str, kubectl: Callable[..., str], namespaces_to_delete: list[str]
) -> None:
    # Pods that can never be scheduled, and a deadline of a second: the Job fails for good.
    plan = job_plan(
        "failjob-" + uuid.uuid4().hex[:6],
        job_spec={"activeDeadlineSeconds": 1},
        pod_spec={"nodeSelector": {"envspec.dev/no-such-node": "true"}},
    )
    namespaces_to_delete.append(plan.namespace)
    target = ClusterTarget(kubeconfig)
    with pytest.raises(NotReadyError):
        anyio.run(partial(up_environment, target, lambda _: plan, sink=Recorder()))
    kubectl("wait", "--for=condition=Failed", "job/migrate", "-n", plan.namespace, "--timeout=60s")
    recorder = Recorder()
    with pytest.raises(NotReadyError) as failure:
        anyio.run(partial(up_environment, target, lambda _: plan, sink=recorder))
    assert failure.value.message == f"job/migrate in {plan.namespace}: job failed: DeadlineExceeded: " + (
        "Job was active longer than specified deadline"
    )
    assert [e.action for e in recorder.of_type(ObjectApplied) if e.ref == "job/migrate"] == ["unchanged"]


def test_switching_to_ttl_never_removes_an_expiry_that_extend_left(
    envspec: Callable[..., Run], kubectl: Callable[..., str], namespaces_to_delete: list[str], tmp_path: Path
) -> None:
    name = f"never-{new_id()}"
    namespace = f"envspec-{name}"
    namespaces_to_delete.append(namespace)
    spec = web_spec(name, {"web": 8080})
    path = spec_file(tmp_path, name, spec)
    assert envspec("up", "-f", path).code == 0
    extended = envspec("extend", "-f", path, "--ttl", "2h")
    assert extended.code == 0, extended.err
    assert "janitor/expires" in namespace_annotations(kubectl, namespace)

    path = spec_file(tmp_path, name, {**spec, "ttl": "never"})
    run = envspec("up", "-f", path)
    assert run.code == 0, run.err
    annotations = namespace_annotations(kubectl, namespace)
    assert "envspec.dev/expires-at" not in annotations and "janitor/expires" not in annotations
    assert annotations["envspec.dev/ttl"] == "never"


def test_a_rollout_under_an_exact_quota_waits_for_room_instead_of_failing(
    envspec: Callable[..., Run], kubectl: Callable[..., str], namespaces_to_delete: list[str], tmp_path: Path
) -> None:
    # quota `auto` has room for exactly the pods the environment runs: a rollout's new pod is
    # refused while the old one still counts, and that must be waited out, not reported.
    name = f"roll-{new_id()}"
    namespaces_to_delete.append(f"envspec-{name}")
    spec = web_spec(name, {"web": 8080, "api": 8000})
    assert envspec("up", "-f", spec_file(tmp_path, name, spec)).code == 0
    for service in spec["services"].values():
        service["image"] = "nginx:1.28"
        service["env"] = {"VERSION": "2"}
    run = envspec("up", "-f", spec_file(tmp_path, name, spec), "-o", "json")
    assert run.code == 0, run.err + run.out
    images = kubectl("get", "deployments", "-n", f"envspec-{name}", "-o", "jsonpath={..image}")
    assert set(images.split()) == {"nginx:1.28"}
