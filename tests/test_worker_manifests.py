"""`envspec worker --print-manifests`: strict Kubernetes 1.34 schema, and the RBAC applied to the local
cluster: its service account really runs `up` and `down` of an environment, and is refused what the
pipeline does not need."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from envspec.cluster import ClusterInfo
from envspec.plan import MANAGED_BY_LABEL
from envspec.worker.manifests import WORKER_NAME, worker_manifests
from tests.cluster_fixtures import envspec_env, printed_manifests
from tests.cluster_fixtures import run_kubectl as kubectl

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "examples" / "quickstart" / "maestro-env.yaml"


def print_manifests(*args: str) -> list[dict[str, Any]]:
    return printed_manifests("worker", *args, env={"PATH": "/usr/bin:/bin", "K8S_NAMESPACE_PREFIX": "quality-fabric"})


def test_printed_manifests_pass_strict_schema_validation() -> None:
    manifests = print_manifests("--image", "registry.example.com/envspec:0.1.0", "--replicas", "3")
    assert [m["kind"] for m in manifests] == [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
    ]
    for manifest in manifests:
        kubernetes_validate.validate(manifest, "1.34", strict=True)
        assert MANAGED_BY_LABEL not in (manifest["metadata"].get("labels") or {})
    deployment = manifests[-1]
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example.com/envspec:0.1.0"
    assert container["args"][:3] == ["worker", "--consumer", "$(CONSUMER_NAME)"]
    env = {item["name"]: item for item in container["env"]}
    assert env["K8S_IN_CLUSTER"]["value"] == "true"
    assert env["K8S_NAMESPACE_PREFIX"]["value"] == "quality-fabric"
    # The Redis URL (it may hold a password) only by reference to a Secret.
    assert env["REDIS_URL"] == {
        "name": "REDIS_URL",
        "valueFrom": {"secretKeyRef": {"name": "envspec-worker-redis", "key": "url"}},
    }
    assert pod["serviceAccountName"] == WORKER_NAME
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_a_bad_namespace_or_image_is_refused_with_a_message() -> None:
    for args, message in (
        (("--manifests-namespace", "Bad_Namespace"), "--manifests-namespace 'Bad_Namespace'"),
        (("--image", "two words"), "--image 'two words'"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "envspec", "worker", "--print-manifests", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def worker_namespace(kube_cluster: ClusterInfo) -> Iterator[str]:
    namespace = f"envspec-worker-test-{secrets.token_hex(3)}"
    yield namespace
    listing = {"apiVersion": "v1", "kind": "List", "items": worker_manifests(namespace=namespace)}
    kubectl(kube_cluster, "delete", "--ignore-not-found", "--wait=false", "-f", "-", stdin=json.dumps(listing))


@pytest.mark.cluster
def test_the_worker_account_runs_up_and_down_and_is_refused_the_rest(
    kube_cluster: ClusterInfo, worker_namespace: str, tmp_path: Path
) -> None:
    manifests = print_manifests("--manifests-namespace", worker_namespace, "--replicas", "0")
    listing = json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests})
    applied = kubectl(kube_cluster, "apply", "-f", "-", stdin=listing)
    assert applied.returncode == 0, applied.stderr
    account = f"system:serviceaccount:{worker_namespace}:{WORKER_NAME}"

    def can(*request: str) -> str:
        return kubectl(kube_cluster, "auth", "can-i", f"--as={account}", *request).stdout.strip()

    for allowed in (
        ("create", "namespaces"),
        ("patch", "namespaces"),
        ("delete", "namespaces"),
        ("patch", "deployments.apps", "-n", "quality-fabric-x"),
        ("create", "statefulsets.apps", "-n", "quality-fabric-x"),
        ("get", "secrets", "-n", "quality-fabric-x"),
        ("watch", "pods", "-n", "quality-fabric-x"),
    ):
        assert can(*allowed) == "yes", allowed
    for denied in (
        ("create", "pods", "-n", "quality-fabric-x"),
        ("create", "pods/exec", "-n", "quality-fabric-x"),
        ("get", "nodes"),
        ("create", "clusterroles"),
        ("create", "rolebindings", "-n", "quality-fabric-x"),
        ("delete", "configmaps", "-n", "kube-system"),
        ("impersonate", "serviceaccounts"),
        ("escalate", "clusterroles"),
    ):
        assert can(*denied) == "no", denied

    # The real proof: `envspec up` and `down` with a kubeconfig of that service account's token.
    token = kubectl(kube_cluster, "create", "token", WORKER_NAME, "-n", worker_namespace, "--duration", "1h")
    assert token.returncode == 0, token.stderr
    admin = YAML(typ="safe").load(Path(kube_cluster.kubeconfig).read_text())
    cluster_entry = admin["clusters"][0]
    kubeconfig = tmp_path / "worker.kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster_entry],
                "users": [{"name": "worker", "user": {"token": token.stdout.strip()}}],
                "contexts": [{"name": "worker", "context": {"cluster": cluster_entry["name"], "user": "worker"}}],
                "current-context": "worker",
            }
        )
    )
    env = dict(envspec_env(kube_cluster), KUBECONFIG=str(kubeconfig))
    env_id = "rb" + uuid.uuid4().hex[:5]
    spec = ["-f", str(QUICKSTART), "--id", env_id]

    def envspec(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "envspec", *args], env=env, capture_output=True, text=True, timeout=180, check=False
        )

    up = envspec("up", *spec)
    try:
        assert up.returncode == 0, up.stderr
        assert envspec("status", *spec).returncode == 0
    finally:
        down = envspec("down", *spec)
    assert down.returncode == 0, down.stderr
    refused = envspec("down", "--name", "kube-system")
    assert refused.returncode == 1 and "envspec does not manage it" in refused.stderr
