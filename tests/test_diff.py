"""`envspec diff` presentation: cleaning objects, hiding secret values, unified diffs (pure parts)."""

from __future__ import annotations

import base64
from typing import Any

from envspec.operations.diff import DiffResult, ObjectDiff, normalize, object_diff
from envspec.present import diff_text as render_diff


def live_deployment(replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "api",
            "namespace": "ns",
            "uid": "0b1c",
            "resourceVersion": "4711",
            "generation": 3,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [{"manager": "envspec", "operation": "Apply"}],
            "labels": {"app.kubernetes.io/managed-by": "envspec"},
            "annotations": {
                "envspec.dev/wave": "5",
                "envspec.dev/object-hash": "abc",
                "deployment.kubernetes.io/revision": "1",
            },
        },
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "api", "image": "api:1"}]}}},
        "status": {"readyReplicas": replicas},
    }


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_normalize_drops_server_managed_fields_and_envspec_stamps() -> None:
    cleaned = normalize(live_deployment())
    assert cleaned is not None
    assert "status" not in cleaned
    assert set(cleaned["metadata"]) == {"name", "namespace", "labels", "annotations"}
    assert cleaned["metadata"]["annotations"] == {
        "envspec.dev/wave": "5",
        "deployment.kubernetes.io/revision": "1",
    }


def test_namespace_lease_annotations_are_not_differences() -> None:
    live = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "ns", "annotations": {"envspec.dev/expires-at": "2026-01-01T10:00:00Z"}},
    }
    planned = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "ns", "annotations": {"envspec.dev/expires-at": "2026-01-01T12:00:00Z"}},
    }
    assert object_diff("namespace/ns", live, planned) == ""


def test_identical_objects_have_no_diff_and_a_change_shows_as_unified_diff() -> None:
    assert object_diff("deployment/api", live_deployment(), live_deployment()) == ""
    text = object_diff("deployment/api", live_deployment(2), live_deployment(3))
    assert text.startswith("--- live/deployment/api\n+++ planned/deployment/api\n")
    assert "-  replicas: 2\n" in text and "+  replicas: 3\n" in text
    assert "resourceVersion" not in text and "managedFields" not in text


def test_secret_values_never_appear_only_whether_they_change() -> None:
    live = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db-credentials", "namespace": "ns"},
        "data": {"password": b64("old-password-123"), "host": b64("db"), "gone": b64("x")},
    }
    planned = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db-credentials", "namespace": "ns"},
        "stringData": {"password": "new-password-456", "host": "db", "port": "5432"},
    }
    text = object_diff("secret/db-credentials", live, planned)
    for value in ("old-password-123", "new-password-456", b64("old-password-123"), b64("new-password-456")):
        assert value not in text
    assert "-  password: '<hidden: current value>'" in text
    assert "+  password: '<hidden: new value>'" in text
    assert "   host: <hidden>" in text  # unchanged: context line
    assert "+  port: '<hidden: new value>'" in text
    assert "-  gone: '<hidden: current value>'" in text


def test_a_new_object_diffs_against_nothing() -> None:
    text = object_diff("deployment/api", None, live_deployment())
    assert text.startswith("--- live/deployment/api\n+++ planned/deployment/api\n@@ -0,0 +1,")
    assert all(line.startswith(("+", "-", "@")) for line in text.splitlines())


def test_render_diff_lists_creations_changes_and_prunes_with_a_summary() -> None:
    result = DiffResult(
        "shop",
        "envspec-shop",
        (
            ObjectDiff("configmap/new", "envspec-shop", "create", "--- a\n+++ b\n"),
            ObjectDiff("deployment/api", "envspec-shop", "update", "--- c\n+++ d\n"),
            ObjectDiff("deployment/worker", "envspec-shop", "prune", ""),
        ),
    )
    text = render_diff(result)
    assert "+ configmap/new in envspec-shop would be created\n--- a\n" in text
    assert "~ deployment/api in envspec-shop would be changed\n--- c\n" in text
    assert "- deployment/worker in envspec-shop would be pruned\n" in text
    assert text.endswith("3 difference(s): 1 to create, 1 to change, 1 to prune")
    assert render_diff(DiffResult("shop", "envspec-shop", ())).startswith("no differences")
