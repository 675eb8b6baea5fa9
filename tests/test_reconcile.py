"""The change set: plan + live inventory -> create / configure / unchanged / prune, with reasons. Pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from envspec.errors import EnvspecError
from envspec.inventory import Inventory
from envspec.meta import (
    ENVIRONMENT_LABEL,
    EXPIRES_AT_ANNOTATION,
    JANITOR_EXPIRES_ANNOTATION,
    MANAGED_BY_LABEL,
    OBJECT_HASH_ANNOTATION,
    PLAN_HASH_ANNOTATION,
    WAVE_ANNOTATION,
)
from envspec.pipeline import build_plan, load_spec
from envspec.plan import Plan
from envspec.reconcile import ChangeSet, reconcile
from tests.conftest import REPO

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
FULLSTACK = REPO / "examples" / "fullstack" / "maestro-env.yaml"


def plan_of(text: str, tmp_path: Any) -> Plan:
    path = tmp_path / "maestro-env.yaml"
    path.write_text(text)
    return build_plan(load_spec(str(path), {}))


def applied(plan: Plan, *, now: datetime = NOW) -> Inventory:
    """The inventory `up` leaves behind after executing the change set of `plan` on an empty cluster."""
    inventory = Inventory()
    for change in reconcile(plan, Inventory(), now=now).changes():
        inventory.put(change.manifest)
    return inventory


def test_an_empty_cluster_creates_everything_and_writes_every_object(tmp_path: Any) -> None:
    plan = plan_of(FULLSTACK.read_text(), tmp_path)
    changes = reconcile(plan, Inventory(), now=NOW)
    assert changes.count("create") == len(plan.objects)
    assert changes.count("configure") == changes.count("unchanged") == 0
    assert {c.reason for c in changes.changes()} == {"not on the cluster"}
    assert changes.writes == len(plan.objects) and changes.changed
    first = next(changes.changes())
    assert first.is_namespace and first.wave == 1  # the namespace is written first
    assert first.manifest["metadata"]["annotations"][EXPIRES_AT_ANNOTATION] == "2026-03-01T14:00:00Z"
    for change in changes.changes():  # every manifest sent carries its hash
        assert change.manifest["metadata"]["annotations"][OBJECT_HASH_ANNOTATION]


def test_an_unchanged_spec_writes_only_the_namespace_lease(tmp_path: Any) -> None:
    plan = plan_of(FULLSTACK.read_text(), tmp_path)
    later = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    changes = reconcile(plan, applied(plan), now=later)
    assert changes.count("unchanged") == len(plan.objects)
    assert not changes.changed and not changes.prunes
    written = [c for c in changes.changes() if c.write]
    assert [c.ref for c in written] == [f"namespace/{plan.namespace}"]
    assert written[0].reason == "lease renewal (now + ttl)"
    assert written[0].manifest["metadata"]["annotations"][JANITOR_EXPIRES_ANNOTATION] == "2026-03-01T14:30:00Z"
    assert changes.writes == 1


def test_a_comment_changes_nothing_and_a_field_configures_the_objects_it_touches(tmp_path: Any) -> None:
    original = FULLSTACK.read_text()
    live = applied(plan_of(original, tmp_path))
    reworded = plan_of(original.replace("# An API", "# A reworded comment about an API"), tmp_path)
    assert not reconcile(reworded, live, now=NOW).changed

    scaled = reconcile(plan_of(original.replace("    replicas: 2\n", "    replicas: 3\n"), tmp_path), live, now=NOW)
    # the automatic quota grows with the replicas; the namespace records the new plan hash
    assert scaled.refs("configure") == ("resourcequota/envspec-quota", "deployment/api")
    change = scaled.find("deployment/api")
    assert change is not None and change.reason.startswith("spec changed (object hash ")
    namespace = next(scaled.changes())
    assert namespace.kind == "unchanged" and namespace.write
    assert namespace.manifest["metadata"]["annotations"][PLAN_HASH_ANNOTATION] == scaled.plan_hash


def test_removed_objects_are_pruned_last_wave_first(tmp_path: Any) -> None:
    original = FULLSTACK.read_text()
    extra = "  extra:\n    image: registry.example.com/extra:1\n    port: 9000\n"
    grown = plan_of(original.replace("  worker:\n", extra + "  worker:\n"), tmp_path)
    added = reconcile(grown, applied(plan_of(original, tmp_path)), now=NOW)
    assert added.refs("create") == ("service/extra", "deployment/extra")
    assert added.refs("configure") == ("resourcequota/envspec-quota",)

    shrunk = reconcile(plan_of(original, tmp_path), applied(grown), now=NOW)
    assert [p.ref for p in shrunk.prunes] == ["deployment/extra", "service/extra"]  # workload before its Service
    assert {p.reason for p in shrunk.prunes} == {"no longer in the spec"}
    assert shrunk.writes == 1 + 1 + 2  # namespace (plan hash), quota, two deletes


def test_only_objects_labelled_for_this_environment_are_pruned(tmp_path: Any) -> None:
    plan = plan_of(FULLSTACK.read_text(), tmp_path)
    live = applied(plan)

    def config_map(name: str, labels: dict[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": plan.namespace,
                "labels": labels,
                "annotations": {WAVE_ANNOTATION: "3"},
            },
        }

    live.put(config_map("ours", {MANAGED_BY_LABEL: "envspec", ENVIRONMENT_LABEL: plan.environment}))
    live.put(config_map("unmanaged", {ENVIRONMENT_LABEL: plan.environment}))
    live.put(config_map("another-env", {MANAGED_BY_LABEL: "envspec", ENVIRONMENT_LABEL: "other"}))
    assert [p.ref for p in reconcile(plan, live, now=NOW).prunes] == ["configmap/ours"]


def test_ttl_never_drops_an_expiry_left_by_extend(tmp_path: Any) -> None:
    text = FULLSTACK.read_text()
    assert "ttl: 2h" in text
    plan = plan_of(text.replace("ttl: 2h", "ttl: never"), tmp_path)
    live = applied(plan)
    assert live.namespace is not None
    live.namespace["metadata"]["annotations"][EXPIRES_AT_ANNOTATION] = "2026-03-01T13:00:00Z"
    changes = reconcile(plan, live, now=NOW)
    assert changes.expires_at is None
    assert changes.drop_expiry == (EXPIRES_AT_ANNOTATION,)
    assert changes.changed and changes.writes == 1  # the patch only: the namespace itself is unchanged


def test_a_namespace_envspec_does_not_own_is_refused(tmp_path: Any) -> None:
    plan = plan_of(FULLSTACK.read_text(), tmp_path)
    live = Inventory({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": plan.namespace}})
    with pytest.raises(EnvspecError, match="not managed by envspec"):
        reconcile(plan, live, now=NOW)


def test_an_object_envspec_did_not_stamp_is_configured(tmp_path: Any) -> None:
    plan = plan_of(FULLSTACK.read_text(), tmp_path)
    live = applied(plan)
    target = next(k for k in live.objects if k[1] == "Deployment")
    del live.objects[target]["metadata"]["annotations"][OBJECT_HASH_ANNOTATION]
    changes: ChangeSet = reconcile(plan, live, now=NOW)
    change = next(c for c in changes.changes() if c.key == target)
    assert (change.kind, change.reason, change.write) == ("configure", "not stamped by envspec yet", True)
