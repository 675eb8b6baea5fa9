"""`envspec gc --print-manifests`: strict Kubernetes 1.34 schema, real RBAC on the local cluster,
and the Dockerfile's install step carrying the templates the janitor needs."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from envspec.cluster import ClusterInfo
from envspec.lifecycle.janitor import JANITOR_NAME, janitor_manifests
from envspec.plan import MANAGED_BY_LABEL
from tests.cluster_fixtures import printed_manifests
from tests.cluster_fixtures import run_kubectl as kubectl

REPO = Path(__file__).resolve().parent.parent


def print_manifests(*args: str) -> list[dict[str, Any]]:
    return printed_manifests("gc", *args)


def test_printed_manifests_pass_strict_schema_validation() -> None:
    manifests = print_manifests("--image", "registry.example.com/envspec:0.1.0", "--interval", "1m")
    assert [m["kind"] for m in manifests] == [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
    ]
    for manifest in manifests:
        kubernetes_validate.validate(manifest, "1.34", strict=True)
    deployment = manifests[-1]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/envspec:0.1.0"
    assert container["args"][:4] == ["gc", "--loop", "--interval", "1m"]
    assert {"name": "K8S_IN_CLUSTER", "value": "true"} in container["env"]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == JANITOR_NAME
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_cluster_role_allows_get_list_delete_of_namespaces_and_nothing_else() -> None:
    role = next(m for m in janitor_manifests() if m["kind"] == "ClusterRole")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "delete"]}]


def test_no_janitor_object_carries_envspec_managed_by_label() -> None:
    # gc deletes only namespaces with that label: its own home must never qualify.
    for manifest in janitor_manifests():
        assert MANAGED_BY_LABEL not in (manifest["metadata"].get("labels") or {})


def test_json_output_is_a_list_of_the_same_objects() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "envspec", "gc", "--print-manifests", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert listing["kind"] == "List"
    assert listing["items"] == janitor_manifests()


@pytest.fixture
def janitor_namespace(kube_cluster: ClusterInfo) -> Iterator[str]:
    namespace = f"envspec-janitor-test-{secrets.token_hex(3)}"
    yield namespace
    cleanup = print_manifests("--janitor-namespace", namespace)
    kubectl(
        kube_cluster,
        "delete",
        "--ignore-not-found",
        "--wait=false",
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": cleanup}),
    )


@pytest.mark.cluster
def test_applied_janitor_can_delete_namespaces_and_cannot_read_secrets(
    kube_cluster: ClusterInfo, janitor_namespace: str
) -> None:
    manifests = print_manifests("--janitor-namespace", janitor_namespace)
    applied = kubectl(
        kube_cluster, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests})
    )
    assert applied.returncode == 0, applied.stderr
    assert "deployment.apps/envspec-janitor" in applied.stdout

    account = f"system:serviceaccount:{janitor_namespace}:{JANITOR_NAME}"

    def can(*request: str) -> str:
        answer = kubectl(kube_cluster, "auth", "can-i", f"--as={account}", *request)
        return answer.stdout.strip()

    for allowed in (("delete", "namespaces"), ("list", "namespaces"), ("get", "namespaces")):
        assert can(*allowed) == "yes", allowed
    for denied in (
        ("get", "secrets"),
        ("list", "secrets", "--all-namespaces"),
        ("get", "secrets", "-n", janitor_namespace),
        ("patch", "namespaces"),
        ("create", "namespaces"),
        ("delete", "deployments", "--all-namespaces"),
        ("delete", "pods", "-n", "kube-system"),
        ("get", "configmaps", "--all-namespaces"),
    ):
        assert can(*denied) == "no", denied


def test_the_dockerfile_installs_a_package_that_carries_the_janitor_templates(tmp_path: Path) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile.splitlines()
    assert "RUN pip install ." in dockerfile
    # What the image's `pip install .` builds: the wheel must ship templates/janitor/.
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    wheel = next(tmp_path.glob("envspec-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in ("namespace", "serviceaccount", "clusterrole", "clusterrolebinding", "deployment"):
        assert f"envspec/_data/templates/janitor/{template}.yaml" in names
    for template in ("clusterrole", "deployment"):  # `envspec worker --print-manifests` reuses the rest
        assert f"envspec/_data/templates/worker/{template}.yaml" in names
    assert "envspec/operations/gc.py" in names


def test_a_bad_janitor_namespace_or_image_is_refused_with_a_message() -> None:
    for args, message in (
        (("--janitor-namespace", "Bad_Namespace"), "--janitor-namespace 'Bad_Namespace'"),
        (("--image", "two words"), "--image 'two words'"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "envspec", "gc", "--print-manifests", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1
        assert message in result.stderr and "Traceback" not in result.stderr
        assert result.stdout == ""
