"""Pure parts of `up`: hashes, lease, secrets, ownership, wave order, addresses, cluster target, retry policy."""

from __future__ import annotations

import base64
import errno
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from envspec.errors import ClusterError, EnvspecError
from envspec.inventory import Inventory
from envspec.kube.client import ClusterTarget, service_account_kubeconfig, transport_reason
from envspec.kube.kinds import MANAGED_KINDS
from envspec.kube.ssa import MAX_BACKOFF, backoff_delay, is_transient
from envspec.meta import format_instant, key_of, lease_annotations
from envspec.pipeline import build_plan, load_spec
from envspec.plan import Plan, PlannedObject, SecretSlot
from envspec.reconcile import (
    check_namespace_ownership,
    object_hash,
    plan_hash,
    planned_waves,
    resolve_secrets,
    stamped,
)

EXAMPLES = sorted(Path(__file__).parent.parent.glob("examples/*/maestro-env.yaml"))

MANAGED = {"app.kubernetes.io/managed-by": "envspec", "envspec.dev/environment": "shop"}


def namespace(name: str = "envspec-shop", labels: dict[str, str] | None = None, **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": MANAGED if labels is None else labels, **metadata},
    }


def config_map(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "envspec-shop", "labels": MANAGED},
        "data": data,
    }


def plan_of(*objects: PlannedObject, ttl: int | None = 3600) -> Plan:
    return Plan("shop", "envspec-shop", ttl, tuple(objects))


def test_object_hash_ignores_what_envspec_stamps_but_not_content() -> None:
    manifest = config_map("settings", {"a": "1"})
    base = object_hash(manifest)
    stamped_copy = stamped(
        manifest,
        {
            "envspec.dev/object-hash": base,
            "envspec.dev/expires-at": "2026-01-01T00:00:00Z",
            "janitor/expires": "2026-01-01T00:00:00Z",
            "envspec.dev/plan-hash": "x",
        },
    )
    assert object_hash(stamped_copy) == base
    assert object_hash(config_map("settings", {"a": "2"})) != base
    assert object_hash(dict(reversed(list(manifest.items())))) == base  # key order does not matter
    assert "annotations" not in manifest["metadata"]  # stamping copies


def test_plan_hash_depends_on_every_object() -> None:
    first = {key_of(config_map("a", {})): "1", key_of(config_map("b", {})): "2"}
    assert plan_hash(first) == plan_hash(dict(reversed(list(first.items()))))
    assert plan_hash(first) != plan_hash({**first, key_of(config_map("b", {})): "3"})


def test_lease_is_rfc3339_utc_now_plus_ttl_and_absent_for_never() -> None:
    now = datetime(2026, 3, 1, 10, 30, 15, 999, tzinfo=UTC)
    assert lease_annotations(7200, now) == {
        "envspec.dev/expires-at": "2026-03-01T12:30:15Z",
        "janitor/expires": "2026-03-01T12:30:15Z",
    }
    assert lease_annotations(None, now) == {}
    assert format_instant(datetime.fromisoformat("2026-03-01T12:00:00+02:00")) == "2026-03-01T10:00:00Z"


def test_secrets_keep_live_values_and_generate_only_missing_ones() -> None:
    password, user = SecretSlot("db-credentials", "password"), SecretSlot("db-credentials", "username")
    values = resolve_secrets([password, user], {password: "kept-from-cluster"})
    assert values[password] == "kept-from-cluster"
    assert len(values[user]) >= 24
    again = resolve_secrets([user], {})
    assert again[user] != values[user]  # random, not derived


def test_inventory_reads_secret_values_back_from_live_secrets() -> None:
    inventory = Inventory()
    inventory.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db-credentials", "namespace": "envspec-shop", "labels": MANAGED},
            "data": {"password": base64.b64encode(b"s3cret-value").decode(), "broken": "%%%"},
        }
    )
    slots = [SecretSlot("db-credentials", k) for k in ("password", "broken", "missing")]
    assert inventory.secret_values(slots, "envspec-shop") == {slots[0]: "s3cret-value"}


def test_ownership_refuses_foreign_namespaces() -> None:
    plan = plan_of(PlannedObject(0, namespace()))
    check_namespace_ownership(plan, None)
    check_namespace_ownership(plan, namespace())
    with pytest.raises(EnvspecError, match="not managed by envspec"):
        check_namespace_ownership(plan, namespace(labels={}))
    with pytest.raises(EnvspecError, match="belongs to envspec environment 'other'"):
        check_namespace_ownership(plan, namespace(labels={**MANAGED, "envspec.dev/environment": "other"}))
    with pytest.raises(ClusterError, match="being deleted"):
        check_namespace_ownership(plan, namespace(deletionTimestamp="2026-01-01T00:00:00Z"))


def test_the_namespace_is_applied_first_and_made_up_when_the_plan_has_none() -> None:
    settings = PlannedObject(0, config_map("settings", {}))
    waves = planned_waves(plan_of(settings, PlannedObject(0, namespace()), PlannedObject(2, config_map("b", {}))))
    assert [[o.kind for o in wave] for wave in waves] == [["Namespace", "ConfigMap"], ["ConfigMap"]]
    made_up = planned_waves(plan_of(settings))
    assert [o.kind for o in made_up[0]] == ["Namespace"]
    assert made_up[0][0].manifest["metadata"]["labels"] == MANAGED


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.parent.name)
def test_every_kind_the_compiler_emits_has_an_address(example: Path) -> None:
    """What `up` applies, lists and prunes: every kind a real compile emits, tests included."""
    plan = build_plan(load_spec(str(example), {}), include_tests=True)
    emitted = {(o.api_version, o.kind) for o in plan.objects}
    assert emitted, "the example compiled to nothing"
    assert emitted <= set(MANAGED_KINDS), f"no address for {sorted(emitted - set(MANAGED_KINDS))}"
    for api_version, kind in emitted:
        rtype = MANAGED_KINDS[(api_version, kind)]
        namespaced = {o.namespace is not None for o in plan.objects if o.kind == kind}
        assert namespaced == {rtype.namespaced}, f"{kind}: scope differs between compiler and address"


def test_addresses_of_managed_kinds() -> None:
    deployment = MANAGED_KINDS[("apps/v1", "Deployment")]
    assert deployment.location("api", "ns") == {
        "base": "/apis",
        "version": "apps/v1",
        "namespace": "ns",
        "url": "deployments/api",
    }
    assert MANAGED_KINDS[("v1", "Namespace")].location("ns", "ignored")["namespace"] is None


def test_cluster_target_precedence() -> None:
    environ = {"KUBECONFIG": "/env/config", "K8S_IN_CLUSTER": "true"}
    assert ClusterTarget.from_options("/flag/config", "ctx", environ) == ClusterTarget("/flag/config", "ctx")
    assert ClusterTarget.from_options(None, None, environ) == ClusterTarget("/env/config", None)
    in_cluster = ClusterTarget.from_options(None, None, {"K8S_IN_CLUSTER": "TRUE"})
    assert in_cluster.in_cluster and in_cluster.describe() == "in-cluster service account"
    assert not ClusterTarget.from_options(None, None, {"K8S_IN_CLUSTER": "false"}).in_cluster
    assert ClusterTarget(None, "dev").describe() == "kubeconfig ~/.kube/config, context dev"


def test_service_account_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("tok\n")
    (tmp_path / "ca.crt").write_text("---")
    (tmp_path / "namespace").write_text("envspec-system")
    config = service_account_kubeconfig(
        tmp_path, {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    )
    assert config["clusters"][0]["cluster"] == {
        "server": "https://[fd00::1]:6443",
        "certificate-authority": str(tmp_path / "ca.crt"),
    }
    assert config["users"][0]["user"] == {"token": "tok"}
    assert config["contexts"][0]["context"]["namespace"] == "envspec-system"
    with pytest.raises(ClusterError, match="KUBERNETES_SERVICE_HOST is not set"):
        service_account_kubeconfig(tmp_path, {})
    with pytest.raises(ClusterError, match="token is unreadable"):
        service_account_kubeconfig(tmp_path / "missing", {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})


def test_transport_reasons_are_short_and_human() -> None:
    refused = httpx.ConnectError("boom")
    refused.__cause__ = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    assert transport_reason(refused) == "connection refused"
    reset = httpx.ReadError("boom")
    reset.__context__ = ConnectionResetError(errno.ECONNRESET, "reset")
    assert transport_reason(reset) == "connection reset"
    assert transport_reason(httpx.ReadTimeout("slow")) == "timed out"


def test_retry_policy() -> None:
    assert all(is_transient(code) for code in (429, 500, 502, 503, 504))
    assert not any(is_transient(code) for code in (400, 403, 404, 409, 422, None))
    delays = [backoff_delay(attempt) for attempt in range(1, 10)]
    assert 0.15 <= delays[0] <= 0.25 and delays[1] > delays[0]
    assert max(delays) <= MAX_BACKOFF * 1.2
    assert backoff_delay(1, retry_after=2.0) == 2.0
    assert backoff_delay(1, retry_after=120.0) == MAX_BACKOFF


def test_informer_keeps_the_freshest_copy_of_an_object() -> None:
    from envspec.kube.informer import Informer
    from envspec.kube.kinds import MANAGED_KINDS

    changes: list[int] = []
    informer = Informer(None, MANAGED_KINDS[("apps/v1", "Deployment")], "ns", on_change=lambda: changes.append(1))

    def deployment(generation: int, observed: int, uid: str = "u1") -> dict[str, Any]:
        metadata = {"name": "api", "namespace": "ns", "uid": uid, "generation": generation}
        return {"metadata": metadata, "status": {"observedGeneration": observed}}

    informer.put(deployment(1, 1))
    informer.seed(deployment(2, 1))  # the PATCH answer: new generation, old status
    informer.put(deployment(1, 1))  # a late watch event from before the PATCH: ignored
    assert informer.get("api", "ns") == deployment(2, 1)
    informer.put(deployment(2, 2))  # the controller caught up
    informer.seed(deployment(2, 1))  # a copy read earlier, same generation: not fresher
    assert informer.get("api", "ns") == deployment(2, 2)
    informer.seed(deployment(1, 0, uid="u2"))  # deleted and created again: another object
    assert informer.get("api", "ns") == deployment(1, 0, uid="u2")
    assert len(changes) == 4
