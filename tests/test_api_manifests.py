"""`envspec serve --print-manifests`: strict Kubernetes 1.34 schema, and on the local cluster the
printed RBAC is enough for the API to create, read and delete an environment (a server runs
with the service account's own token) while it cannot create RBAC or exec into pods."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from envspec.api.manifests import API_NAME, serve_manifests
from envspec.cluster import ClusterInfo
from envspec.plan import MANAGED_BY_LABEL
from tests.api_fixtures import ApiFactory, json_of
from tests.cluster_fixtures import kubectl, printed_manifests, run_kubectl

REPO = Path(__file__).resolve().parent.parent


def print_manifests(*args: str) -> list[dict[str, Any]]:
    return printed_manifests("serve", *args)


def test_printed_manifests_pass_strict_schema_validation() -> None:
    manifests = print_manifests("--image", "registry.example.com/envspec:0.1.0")
    assert [m["kind"] for m in manifests] == [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
    ]
    for manifest in manifests:
        kubernetes_validate.validate(manifest, "1.34", strict=True)
        assert MANAGED_BY_LABEL not in (manifest["metadata"].get("labels") or {})  # gc never sees them
    deployment, service = manifests[-2], manifests[-1]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/envspec:0.1.0"
    assert container["args"] == ["serve", "--host", "0.0.0.0", "--port", "8004"]
    assert container["ports"] == [{"name": "http", "containerPort": 8004}]
    env = {e["name"]: e for e in container["env"]}
    assert env["K8S_IN_CLUSTER"]["value"] == "true"
    assert env["ENVSPEC_API_TOKENS"]["valueFrom"] == {"secretKeyRef": {"name": "envspec-api-tokens", "key": "tokens"}}
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/v1/k8s-execution/health"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert service["spec"]["ports"] == [{"name": "http", "port": 8004, "targetPort": "http"}]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    json_out = subprocess.run(
        [sys.executable, "-m", "envspec", "serve", "--print-manifests", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(json_out.stdout)["items"] == serve_manifests()


def test_the_role_writes_only_what_specs_compile_to_and_never_rbac() -> None:
    role = next(m for m in serve_manifests() if m["kind"] == "ClusterRole")
    verbs: dict[str, set[str]] = {}
    for rule in role["rules"]:
        for resource in rule["resources"]:
            verbs.setdefault(resource, set()).update(rule["verbs"])
    for rbac in ("clusterroles", "clusterrolebindings", "roles", "rolebindings"):
        assert verbs[rbac] == {"get", "list", "watch", "delete"}
    assert verbs["pods"] == {"get", "list", "watch"} and verbs["pods/log"] == {"get"}
    assert "create" in verbs["namespaces"] and "patch" in verbs["namespaces"]
    assert not any({"escalate", "bind", "impersonate", "*"} & v for v in verbs.values())
    assert "pods/exec" not in verbs and "nodes" not in verbs and "update" not in set().union(*verbs.values())


def test_a_bad_namespace_image_or_secret_name_is_refused() -> None:
    for args, message in (
        (("--api-namespace", "Bad_NS"), "--api-namespace 'Bad_NS'"),
        (("--image", "two words"), "--image 'two words'"),
        (("--tokens-secret", "x/y"), "--tokens-secret 'x/y'"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "envspec", "serve", "--print-manifests", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr


def test_the_wheel_carries_the_serve_templates_and_the_dockerfile_runs_any_of_the_three(tmp_path: Path) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    for command in ("envspec serve", "envspec worker", "envspec gc --loop"):
        assert command in dockerfile, command
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    names = set(zipfile.ZipFile(next(tmp_path.glob("envspec-*.whl"))).namelist())
    assert {"envspec/_data/templates/serve/deployment.yaml", "envspec/_data/templates/serve/service.yaml"} <= names


@pytest.fixture
def api_namespace(kube_cluster: ClusterInfo) -> Iterator[str]:
    namespace = f"envspec-api-test-{secrets.token_hex(3)}"
    yield namespace
    run_kubectl(
        kube_cluster,
        "delete",
        "--ignore-not-found",
        "--wait=false",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": print_manifests("--api-namespace", namespace)}),
    )


def service_account_kubeconfig(cluster: ClusterInfo, namespace: str, path: Path) -> Path:
    """A kubeconfig for the API's service account: the cluster's server and CA, the account's token."""
    token = kubectl(cluster, "create", "token", API_NAME, "-n", namespace, "--duration", "30m").strip()
    admin = YAML(typ="safe").load(Path(cluster.kubeconfig).read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"][:1],
        "users": [{"name": API_NAME, "user": {"token": token}}],
        "contexts": [{"name": API_NAME, "context": {"cluster": admin["clusters"][0]["name"], "user": API_NAME}}],
        "current-context": API_NAME,
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


@pytest.mark.cluster
def test_the_printed_rbac_is_enough_for_the_api_and_no_more(
    kube_cluster: ClusterInfo, api_namespace: str, api_factory: ApiFactory, tmp_path: Path
) -> None:
    manifests = print_manifests("--api-namespace", api_namespace)
    applied = kubectl(
        kube_cluster, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests})
    )
    assert "deployment.apps/envspec-api created" in applied
    account = f"system:serviceaccount:{api_namespace}:{API_NAME}"
    for denied in (
        ("create", "clusterroles"),
        ("create", "rolebindings", "-n", "default"),
        ("create", "pods/exec", "-n", "kube-system"),
        ("update", "deployments", "-n", "default"),
        ("escalate", "clusterroles"),
        ("get", "nodes"),
    ):
        answer = run_kubectl(kube_cluster, "auth", "can-i", f"--as={account}", *denied).stdout.strip()
        assert answer == "no", denied

    # The API itself, as that service account: the whole create -> status -> delete works.
    kubeconfig = service_account_kubeconfig(kube_cluster, api_namespace, tmp_path / "api.kubeconfig")
    server = api_factory(kubeconfig=str(kubeconfig))
    execution_id = f"rbac-{uuid.uuid4().hex[:6]}"
    config = {"app_image": "myapp:latest", "app_port": 8000, "database": "postgresql"}
    with server.client() as client:
        assert client.post("/environments", json={"execution_id": execution_id, "config": config}).status_code == 202
        try:
            status = json_of(client.get(f"/environments/{execution_id}", params={"wait": 120}))
            assert status["status"] == "ready" and status["operation"]["status"] == "success", status
            assert any(row["name"] == execution_id for row in json_of(client.get("/environments")))
            assert client.post(f"/environments/{execution_id}/extend", json={"ttl_minutes": 10}).status_code == 200
            assert client.post("/cleanup", json={"dry_run": True}).status_code == 200
        finally:
            assert client.delete(f"/environments/{execution_id}").status_code == 202
        assert client.get(f"/environments/{execution_id}", params={"wait": 120}).status_code == 404
    assert "forbidden" not in server.output().lower()
