"""Readiness rules: pure functions of live objects, checked on recorded status fixtures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from envspec.kube.readiness import (
    Related,
    assess,
    is_permanent_rejection,
    job_readiness,
    needs_watching,
    pod_problem,
    readiness_of,
)

FIXTURES = Path(__file__).parent / "fixtures" / "readiness"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe", pure=True).load(path.read_text())
    return data


def related_from(section: dict[str, Any] | None) -> Related:
    section = section or {}
    modes: dict[str, str] = {}
    default_class = None
    for storage_class in section.get("storageClasses", []):
        name = storage_class["metadata"]["name"]
        modes[name] = storage_class.get("volumeBindingMode", "Immediate")
        annotations = storage_class["metadata"].get("annotations") or {}
        if annotations.get("storageclass.kubernetes.io/is-default-class") == "true":
            default_class = name
    return Related(
        pods=section.get("pods", []),
        replica_sets=section.get("replicaSets", []),
        events=section.get("events", []),
        storage_binding_modes=modes,
        default_storage_class=default_class,
    )


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("*.yaml")), ids=lambda p: p.stem)
def test_fixture(fixture: Path) -> None:
    case = load(fixture)
    state = assess(case["object"], related_from(case.get("related")))
    expected = case["expect"]
    assert (state.done, state.ok) == (expected["done"], expected["ok"]), case["description"]
    assert expected["message"] in state.message


def test_there_are_fixtures_for_every_kind_with_a_rule() -> None:
    kinds = {load(path)["object"]["kind"] for path in FIXTURES.glob("*.yaml")}
    assert {"Deployment", "StatefulSet", "Job", "PersistentVolumeClaim", "Namespace"} <= kinds


def test_failed_means_done_and_not_ok() -> None:
    state = job_readiness({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True"}]}})
    assert state.failed and state.done and not state.ok


def test_condition_with_status_false_is_ignored() -> None:
    job = {"kind": "Job", "spec": {"completions": 1}, "status": {"conditions": [{"type": "Failed", "status": "False"}]}}
    assert not job_readiness(job).done


def test_statefulset_on_delete_strategy_does_not_wait_for_revisions() -> None:
    sts = {
        "kind": "StatefulSet",
        "metadata": {"generation": 1},
        "spec": {"replicas": 1, "updateStrategy": {"type": "OnDelete"}},
        "status": {"observedGeneration": 1, "readyReplicas": 1, "currentRevision": "a", "updateRevision": "b"},
    }
    assert readiness_of(sts).ok


def test_pvc_without_storage_class_information_waits() -> None:
    pvc = {"kind": "PersistentVolumeClaim", "spec": {"storageClassName": "x"}, "status": {"phase": "Pending"}}
    assert not assess(pvc).done


@pytest.mark.parametrize(
    ("message", "permanent"),
    [
        ('pods "a" is forbidden: exceeded quota: q, requested: pods=1', True),
        # More than the hard limit: no amount of waiting lets it in.
        (
            'pods "db-0" is forbidden: exceeded quota: q, requested: limits.cpu=1, used: limits.cpu=0, '
            "limited: limits.cpu=600m",
            True,
        ),
        # Fits the hard limit but not what is in use: a rollout's old pod still terminating.
        (
            'pods "api-7d9" is forbidden: exceeded quota: q, requested: limits.cpu=500m,limits.memory=512Mi, '
            "used: limits.cpu=3250m,limits.memory=3Gi, limited: limits.cpu=3250m,limits.memory=3Gi",
            False,
        ),
        ('pods "api-7d9" is forbidden: exceeded quota: q, requested: pods=1, used: pods=10, limited: pods=10', False),
        ('pods "a" is forbidden: failed quota: q: must specify limits.cpu for: app', True),
        ('pods "a" is forbidden: minimum memory usage per Pod is 10Mi, but request is 1Mi', True),
        ('pods "a" is forbidden: cpu max limit to request ratio per Container is 2, but provided ratio is 4', True),
        ('pods "a" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true', True),
        (
            'pods "a" is forbidden: error looking up service account ns/default: serviceaccount "default" not found',
            False,
        ),
        ("Internal error occurred: resource quota evaluation timed out", False),
    ],
)
def test_permanent_rejections(message: str, permanent: bool) -> None:
    assert is_permanent_rejection(message) is permanent


def test_err_image_pull_is_terminal_and_names_the_pod() -> None:
    pod = {
        "metadata": {"name": "api-1"},
        "status": {"containerStatuses": [{"name": "api", "state": {"waiting": {"reason": "ErrImagePull"}}}]},
    }
    assert pod_problem(pod) == "pod api-1: container api: ErrImagePull"


def test_a_pod_still_creating_its_container_is_no_problem() -> None:
    pod = {
        "metadata": {"name": "api-1"},
        "status": {"containerStatuses": [{"name": "api", "state": {"waiting": {"reason": "ContainerCreating"}}}]},
    }
    assert pod_problem(pod) is None


def test_only_kinds_whose_readiness_changes_are_watched() -> None:
    assert needs_watching("Deployment") and needs_watching("Namespace")
    assert not needs_watching("ConfigMap") and not needs_watching("Service")


def test_a_quota_refusal_that_fits_the_hard_limit_is_stalled_not_failed() -> None:
    case = load(FIXTURES / "deployment-replicaset-quota.yaml")
    state = assess(case["object"], related_from(case.get("related")))
    assert state.stalled and not state.done


def test_an_old_quota_event_no_longer_stalls_a_workload_whose_pods_exist() -> None:
    statefulset = {
        "kind": "StatefulSet",
        "metadata": {"name": "db", "uid": "s1", "generation": 1},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 0},
    }
    event = {
        "reason": "FailedCreate",
        "involvedObject": {"uid": "s1"},
        "message": 'pods "db-0" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1',
    }
    pod = {"metadata": {"name": "db-0", "ownerReferences": [{"uid": "s1"}]}, "status": {}}
    assert assess(statefulset, Related(events=[event])).stalled
    assert not assess(statefulset, Related(pods=[pod], events=[event])).stalled


def stuck_deployment(condition_time: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "svc05", "namespace": "ns", "generation": 1, "uid": "u"},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": 0,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": 'ReplicaSet "svc05-6f7" has timed out progressing.',
                    "lastUpdateTime": condition_time,
                    "lastTransitionTime": condition_time,
                }
            ],
        },
    }


def test_a_progress_deadline_that_ran_out_before_this_run_is_waited_on_not_terminal() -> None:
    from datetime import UTC, datetime

    from envspec.kube.readiness import Related, assess

    run_began = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    stale = assess(stuck_deployment("2026-03-01T11:59:30Z"), Related(since=run_began))
    assert not stale.failed and not stale.done
    assert "the progress deadline ran out before this run (at 2026-03-01T11:59:30Z)" in stale.message
    same_second = assess(stuck_deployment("2026-03-01T12:00:00Z"), Related(since=run_began))
    assert not same_second.failed  # whole-second timestamps: cannot be told from before the run
    fresh = assess(stuck_deployment("2026-03-01T12:00:05Z"), Related(since=run_began))
    assert fresh.failed and fresh.message.startswith("rollout stuck: ")
    # Without a run start (status of an environment, not a run) the condition is what it says.
    assert assess(stuck_deployment("2026-03-01T11:59:30Z")).failed


def test_the_server_time_of_a_write_comes_from_its_managed_fields_entry() -> None:
    from datetime import UTC, datetime

    from envspec.kube.readiness import server_time_of

    obj = {
        "metadata": {
            "managedFields": [
                {"manager": "kube-controller-manager", "time": "2026-03-01T12:00:09Z"},
                {"manager": "envspec", "operation": "Apply", "time": "2026-03-01T12:00:01Z"},
                {"manager": "envspec-lease", "time": "2026-03-01T12:00:07Z"},
            ]
        }
    }
    assert server_time_of(obj, "envspec") == datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC)
    assert server_time_of({"metadata": {}}, "envspec") is None
