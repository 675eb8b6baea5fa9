"""The compiler: a pure function from a validated spec to the ordered plan."""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from envspec.compiler import SECRET_PLACEHOLDER, compile_plan, namespace_name, secret_slots
from envspec.defaults import ValidSpec
from envspec.errors import EnvspecError
from envspec.loader import load_text
from envspec.pipeline import build_plan, check_id
from envspec.plan import Plan, SecretSlot
from envspec.render import plan_text
from envspec.validation import validate

REPO = Path(__file__).resolve().parent.parent
HEAD = "apiVersion: envspec/v1\nname: demo\n"

FULL = """\
apiVersion: envspec/v1
name: shop
namespacePrefix: qa
ttl: 2h
labels: {team: payments, tier: gold}
podSecurity: restricted
databases:
  db: {engine: postgresql, database: orders}
  docs: {engine: mongodb}
  rel: {engine: mysql, storage: 1Gi}
  cache: {engine: redis}
services:
  api:
    image: "shop/api:${env.TAG:-dev}"
    port: 8000
    replicas: 2
    command: ["serve", "--name", "${environment.name}"]
    args: "--db-host ${db.host} --literal $${HOME}"
    env:
      DATABASE_URL: ${db.url}
      DB_PASSWORD: ${db.password}
      DSN: "host=${db.host} port=${db.port} dbname=${db.database} user=${db.user} password=${db.password}"
      TWICE: "${db.password}:${db.password}"
      MONGO: ${docs.url}
      MYSQL: "mysql ${rel.url} as ${rel.user}"
      REDIS: ${cache.url}
      REDIS_HOST: ${cache.host}
      NS: ${environment.namespace}
      FLAG: ${env.FLAG:-off}
      LITERAL: "$${not.a.ref}"
    health: /health
    dependsOn: [db, cache]
  worker:
    image: shop/worker
    env: {API: "${api.url}", API_HOST: "${api.host}", API_PORT: "${api.port}"}
    dependsOn: [api]
  lone:
    image: shop/lone
    dependsOn: []
tests:
  e2e:
    image: shop/e2e
    command: pytest -x
    env: {API: "${api.url}", DB: "${db.url}"}
    timeout: 10m
    retries: 2
  smoke:
    image: curl
"""


def valid_spec(text: str, environ: Mapping[str, str] | None = None) -> ValidSpec:
    return validate(load_text(text, "spec.yaml"), dict(environ or {}))


def plan_of(text: str, environ: Mapping[str, str] | None = None, **kwargs: Any) -> Plan:
    return compile_plan(valid_spec(text, environ), **kwargs)


def walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_strings(item)
    elif isinstance(value, str):
        yield value


def container_of(plan: Plan, kind: str, name: str) -> dict[str, Any]:
    obj = plan.find(kind, name)
    assert obj is not None, f"{kind}/{name} missing"
    containers: list[dict[str, Any]] = obj.manifest["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(plan: Plan, kind: str, name: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = container_of(plan, kind, name)["env"]
    return env


# --- order -------------------------------------------------------------------------------------


def test_waves_and_order() -> None:
    plan = plan_of(FULL, include_tests=True)
    assert plan.ordering_text() == (
        "0 Namespace/qa-shop\n"
        "1 LimitRange/envspec-defaults\n"
        "1 NetworkPolicy/envspec-isolation\n"
        "1 ResourceQuota/envspec-quota\n"
        "2 Secret/cache-credentials\n"
        "2 Secret/db-credentials\n"
        "2 Secret/docs-credentials\n"
        "2 Secret/rel-credentials\n"
        "3 Service/api\n"
        "3 Service/cache\n"
        "3 Service/db\n"
        "3 Service/docs\n"
        "3 Service/rel\n"
        "4 StatefulSet/cache\n"
        "4 StatefulSet/db\n"
        "4 StatefulSet/docs\n"
        "4 StatefulSet/rel\n"
        "5 Deployment/api\n"
        "5 Deployment/lone\n"
        "6 Deployment/worker\n"
        "7 Job/e2e\n"
        "7 Job/smoke\n"
    )
    assert plan.wave_count == 8
    assert [wave for wave, _ in plan.waves()] == list(range(8))


def test_within_a_wave_objects_are_sorted_by_kind_then_name() -> None:
    plan = plan_of(FULL, include_tests=True)
    for _, objects in plan.waves():
        keys = [(o.kind, o.name) for o in objects]
        assert keys == sorted(keys)
    # the spec's own order does not matter
    reordered = HEAD + "services:\n  zeta: {image: z, port: 1}\n  alpha: {image: a, port: 2}\n"
    assert [o.name for o in plan_of(reordered).objects if o.kind == "Service"] == ["alpha", "zeta"]


def test_depends_on_layers_become_waves_five_six_and_on() -> None:
    text = (
        HEAD
        + "services:\n"
        + "  gateway: {image: g, dependsOn: [catalog]}\n"
        + "  catalog: {image: c, port: 81, dependsOn: [inventory]}\n"
        + "  inventory: {image: i, port: 80}\n"
        + "  side: {image: s}\n"
        + "  top: {image: t, dependsOn: [gateway, side]}\n"
        + "tests:\n  t: {image: x}\n"
    )
    plan = plan_of(text, include_tests=True)
    deployments = {o.name: o.wave for o in plan.objects if o.kind == "Deployment"}
    assert deployments == {"inventory": 5, "side": 5, "catalog": 6, "gateway": 7, "top": 8}
    assert plan.find("Job", "t") is not None and plan.find("Job", "t").wave == 9  # type: ignore[union-attr]


def test_jobs_only_with_include_tests() -> None:
    without = plan_of(FULL)
    assert [o for o in without.objects if o.kind == "Job"] == []
    with_tests = plan_of(FULL, include_tests=True)
    assert sorted(o.name for o in with_tests.objects if o.kind == "Job") == ["e2e", "smoke"]
    # everything else is the same
    assert [o for o in with_tests.objects if o.kind != "Job"] == list(without.objects)


def test_jobs_without_services_come_after_the_databases() -> None:
    plan = plan_of(HEAD + "databases:\n  db: {engine: redis}\ntests:\n  t: {image: x}\n", include_tests=True)
    assert plan.find("Job", "t").wave == 5  # type: ignore[union-attr]


def test_isolation_none_has_no_network_policy() -> None:
    assert plan_of(HEAD).find("NetworkPolicy", "envspec-isolation") is not None
    assert plan_of(HEAD + "isolation: none\n").find("NetworkPolicy", "envspec-isolation") is None


def test_empty_environment() -> None:
    plan = plan_of(HEAD)
    assert plan.ordering_text() == (
        "0 Namespace/envspec-demo\n"
        "1 LimitRange/envspec-defaults\n"
        "1 NetworkPolicy/envspec-isolation\n"
        "1 ResourceQuota/envspec-quota\n"
    )


# --- labels and annotations --------------------------------------------------------------------


def test_labels_and_annotations_on_every_object() -> None:
    plan = plan_of(FULL, include_tests=True, env_id="pr-7")
    components = {"db", "docs", "rel", "cache", "api", "worker", "lone", "e2e", "smoke"}
    for obj in plan.objects:
        metadata = obj.manifest["metadata"]
        labels = metadata["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "envspec"
        assert labels["envspec.dev/environment"] == "shop-pr-7"
        assert labels["team"] == "payments" and labels["tier"] == "gold"
        assert metadata["annotations"]["envspec.dev/wave"] == str(obj.wave)
        if obj.kind == "Namespace":
            assert "namespace" not in metadata
        else:
            assert metadata["namespace"] == "qa-shop-pr-7"
        component = obj.name.removesuffix("-credentials")
        if component in components:
            assert labels["app.kubernetes.io/name"] == component
            role = {"db": "database", "docs": "database", "rel": "database", "cache": "database"}.get(component)
            role = role or ("test" if component in ("e2e", "smoke") else "service")
            assert labels["app.kubernetes.io/component"] == role
        else:
            assert "app.kubernetes.io/name" not in labels
        template = obj.manifest.get("spec", {}).get("template")
        if template is not None:
            pod_labels = template["metadata"]["labels"]
            assert pod_labels["envspec.dev/environment"] == "shop-pr-7"
            assert pod_labels["app.kubernetes.io/name"] == obj.name
            assert pod_labels["team"] == "payments"


def test_selectors_match_pod_labels() -> None:
    plan = plan_of(FULL)
    for obj in plan.objects:
        if obj.kind in ("Deployment", "StatefulSet"):
            selector = obj.manifest["spec"]["selector"]["matchLabels"]
            pod_labels = obj.manifest["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= pod_labels.items()
        if obj.kind == "Service":
            workload = plan.find("Deployment", obj.name) or plan.find("StatefulSet", obj.name)
            assert workload is not None
            pod_labels = workload.manifest["spec"]["template"]["metadata"]["labels"]
            assert obj.manifest["spec"]["selector"].items() <= pod_labels.items()


@pytest.mark.parametrize("level", ["privileged", "baseline", "restricted"])
def test_namespace_pod_security_labels_and_ttl_annotation(level: str) -> None:
    plan = plan_of(HEAD + f"podSecurity: {level}\nttl: 90m\n")
    namespace = plan.objects[0].manifest
    assert namespace["kind"] == "Namespace"
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == level
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"
    assert namespace["metadata"]["annotations"]["envspec.dev/ttl"] == "1h30m"
    assert plan.ttl_seconds == 5400


def test_ttl_never() -> None:
    plan = plan_of(HEAD + "ttl: never\n")
    assert plan.objects[0].manifest["metadata"]["annotations"]["envspec.dev/ttl"] == "never"
    assert plan.ttl_seconds is None


def test_container_security() -> None:
    plan = plan_of(FULL, include_tests=True)
    for obj in plan.objects:
        template = obj.manifest.get("spec", {}).get("template")
        if template is None:
            continue
        pod = template["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]  # restricted
            assert set(container["resources"]) == {"requests", "limits"}


def test_database_statefulsets() -> None:
    plan = plan_of(FULL)
    images = {name: container_of(plan, "StatefulSet", name)["image"] for name in ("db", "docs", "rel", "cache")}
    assert images == {"db": "postgres:15", "docs": "mongo:7", "rel": "mysql:8.0", "cache": "redis:7"}
    probes = {
        name: " ".join(container_of(plan, "StatefulSet", name)["readinessProbe"]["exec"]["command"]) for name in images
    }
    assert "pg_isready" in probes["db"]
    assert "mysqladmin ping" in probes["rel"]
    assert probes["docs"].startswith("mongosh") and "ping" in probes["docs"]
    assert probes["cache"].startswith("redis-cli") and "ping" in probes["cache"]
    db = plan.find("StatefulSet", "db").manifest  # type: ignore[union-attr]
    assert db["spec"]["template"]["spec"]["volumes"] == [
        {"name": "data", "emptyDir": {}},
        {"name": "var-run-postgresql", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    rel = plan.find("StatefulSet", "rel").manifest  # type: ignore[union-attr]
    # the data is on the claim; the run-time paths stay emptyDirs
    assert rel["spec"]["template"]["spec"]["volumes"] == [
        {"name": "var-run-mysqld", "emptyDir": {}},
        {"name": "tmp", "emptyDir": {}},
    ]
    claim = rel["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    pg_env = {e["name"]: e for e in container_of(plan, "StatefulSet", "db")["env"]}
    assert pg_env["POSTGRES_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "db-credentials", "key": "password"}}


WRITABLE_PATHS = {
    "db": ["/var/lib/postgresql/data", "/var/run/postgresql", "/tmp"],
    "rel": ["/var/lib/mysql", "/var/run/mysqld", "/tmp"],
    "docs": ["/data/db", "/tmp"],
    "cache": ["/data", "/tmp"],
}


def test_database_containers_have_a_read_only_root_and_volumes_where_the_engine_writes() -> None:
    """What each official image writes besides its data: its socket/pid directory and /tmp."""
    plan = plan_of(FULL)
    for name, paths in WRITABLE_PATHS.items():
        container = container_of(plan, "StatefulSet", name)
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert [m["mountPath"] for m in container["volumeMounts"]] == paths
        statefulset = plan.find("StatefulSet", name)
        assert statefulset is not None
        pod = statefulset.manifest["spec"]["template"]["spec"]
        volumes = {v["name"] for v in pod.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in statefulset.manifest["spec"].get("volumeClaimTemplates", [])}
        assert {m["name"] for m in container["volumeMounts"]} == volumes | claims
        # every emptyDir is writable by the engine's user through the pod's fsGroup
        assert pod["securityContext"]["fsGroup"] == container["securityContext"]["runAsUser"] == 999
    for container in (
        c for o in plan.objects if o.kind == "Deployment" for c in o.manifest["spec"]["template"]["spec"]["containers"]
    ):
        assert "readOnlyRootFilesystem" not in container["securityContext"]  # an arbitrary image may write anywhere


def test_database_containers_have_liveness_after_startup() -> None:
    plan = plan_of(FULL)
    for name in WRITABLE_PATHS:
        container = container_of(plan, "StatefulSet", name)
        assert container["livenessProbe"]["exec"]["command"] == container["readinessProbe"]["exec"]["command"]
        assert container["livenessProbe"]["failureThreshold"] * container["livenessProbe"]["periodSeconds"] == 60
        # liveness only starts once the startup probe (the readiness check's whole budget) passed
        assert container["startupProbe"] == container["readinessProbe"]


def test_database_image_override_and_version() -> None:
    text = (
        HEAD
        + "databases:\n  a: {engine: postgresql, version: '16'}\n"
        + "  b: {engine: mysql, image: 'mirror/mysql:${env.V:-8}'}\n"
    )
    plan = plan_of(text)
    assert container_of(plan, "StatefulSet", "a")["image"] == "postgres:16"
    assert container_of(plan, "StatefulSet", "b")["image"] == "mirror/mysql:8"


def test_deployment_and_job_details() -> None:
    plan = plan_of(FULL, {"TAG": "1.2.3"}, include_tests=True)
    api = plan.find("Deployment", "api").manifest  # type: ignore[union-attr]
    assert api["spec"]["replicas"] == 2
    container = container_of(plan, "Deployment", "api")
    assert container["image"] == "shop/api:1.2.3"
    assert container["command"] == ["serve", "--name", "shop"]
    assert container["args"] == ["--db-host", "db", "--literal", "${HOME}"]
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8000}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": 8000}
    job = plan.find("Job", "e2e").manifest  # type: ignore[union-attr]
    assert job["spec"]["activeDeadlineSeconds"] == 600
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert container_of(plan, "Job", "e2e")["command"] == ["pytest", "-x"]
    smoke = plan.find("Job", "smoke").manifest  # type: ignore[union-attr]
    assert smoke["spec"]["activeDeadlineSeconds"] == 1800
    assert smoke["spec"]["backoffLimit"] == 0


def test_service_objects() -> None:
    plan = plan_of(FULL)
    api = plan.find("Service", "api").manifest  # type: ignore[union-attr]
    assert api["spec"]["ports"][0]["port"] == 8000
    assert plan.find("Service", "worker") is None  # no port, no Service
    db = plan.find("Service", "db").manifest  # type: ignore[union-attr]
    assert db["spec"]["ports"][0]["port"] == 5432


# --- namespace and id --------------------------------------------------------------------------


def test_namespace_name() -> None:
    assert plan_of(HEAD).namespace == "envspec-demo"
    assert plan_of(HEAD, env_id="pr-42").namespace == "envspec-demo-pr-42"
    assert plan_of(HEAD, env_id="pr-42").environment == "demo-pr-42"
    assert plan_of(HEAD, {"K8S_NAMESPACE_PREFIX": "ci"}).namespace == "ci-demo"


def test_long_namespace_names_are_shortened_deterministically_with_a_hash() -> None:
    prefix, name = "p" * 40, "n" * 40
    text = f"apiVersion: envspec/v1\nname: {name}\nnamespacePrefix: {prefix}\n"
    first = plan_of(text, env_id="a" * 20)
    second = plan_of(text, env_id="a" * 20)
    other = plan_of(text, env_id="a" * 19 + "b")
    for plan in (first, other):
        assert len(plan.namespace) <= 63
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", plan.namespace)
        assert re.search(r"-[0-9a-f]{8}$", plan.namespace)
        assert plan.namespace.startswith("p" * 40 + "-")
    assert first.namespace == second.namespace
    assert first.namespace != other.namespace
    assert all(o.namespace in (None, first.namespace) for o in first.objects)
    assert first.objects[0].name == first.namespace
    # names that fit are kept as they are
    assert namespace_name("a" * 63) == "a" * 63
    assert len(namespace_name("a" * 64)) == 63
    # a cut that would end in '-' drops it rather than producing '--'
    assert "--" not in namespace_name("a" * 53 + "-" + "b" * 20)


@pytest.mark.parametrize("good", [None, "a", "pr-42", "x" * 20, "1"])
def test_check_id_accepts(good: str | None) -> None:
    assert check_id(good) == good


@pytest.mark.parametrize("bad", ["", "PR", "-a", "a-", "a_b", "x" * 21, "a.b", "é", "pr\n"])
def test_check_id_refuses(bad: str) -> None:
    with pytest.raises(EnvspecError, match="--id"):
        check_id(bad)
    with pytest.raises(EnvspecError):
        build_plan(valid_spec(HEAD), env_id=bad)


# --- secrets -----------------------------------------------------------------------------------


def test_secret_slots() -> None:
    valid = valid_spec(FULL)
    assert secret_slots(valid) == (
        SecretSlot("db-credentials", "password"),
        SecretSlot("docs-credentials", "password"),
        SecretSlot("rel-credentials", "password"),
        SecretSlot("rel-credentials", "root-password"),
    )
    assert compile_plan(valid).secret_slots == secret_slots(valid)


def test_placeholder_by_default_is_where_the_api_server_refuses_it() -> None:
    """A review render must not be appliable with the public placeholder as a password:
    placeholder-bearing keys are under `data` (base64 only), which `<` can never be in."""
    plan = plan_of(FULL)
    secret = plan.find("Secret", "db-credentials").manifest  # type: ignore[union-attr]
    unset = secret["data"]
    assert unset["password"] == SECRET_PLACEHOLDER == "<generated-at-apply>"
    assert unset["url"] == f"postgresql://envspec:{SECRET_PLACEHOLDER}@db:5432/orders"
    assert set(unset) == {"password", "url"}
    for value in unset.values():
        with pytest.raises(binascii.Error):
            base64.b64decode(value, validate=True)
    data = secret["stringData"]
    assert data == {"database": "orders", "host": "db", "port": "5432", "username": "envspec"}
    rel = plan.find("Secret", "rel-credentials").manifest  # type: ignore[union-attr]
    assert rel["data"]["root-password"] == SECRET_PLACEHOLDER
    assert "root-password" not in rel["stringData"]
    cache = plan.find("Secret", "cache-credentials").manifest  # type: ignore[union-attr]
    assert "data" not in cache
    cache = cache["stringData"]
    assert cache == {"host": "cache", "port": "6379", "url": "redis://cache:6379/0"}


PASSWORDS = {
    SecretSlot("db-credentials", "password"): "Pg-Secret-Value-0123456789abcdef",
    SecretSlot("docs-credentials", "password"): "Mongo-Secret-Value-0123456789abc",
    SecretSlot("rel-credentials", "password"): "MySQL-Secret-Value-0123456789abc",
    SecretSlot("rel-credentials", "root-password"): "MySQL-Root-Value-0123456789abcde",
}


def test_values_from_the_secrets_argument() -> None:
    plan = plan_of(FULL, secrets=PASSWORDS)
    db = plan.find("Secret", "db-credentials").manifest["stringData"]  # type: ignore[union-attr]
    assert db["password"] == PASSWORDS[SecretSlot("db-credentials", "password")]
    assert db["url"] == "postgresql://envspec:Pg-Secret-Value-0123456789abcdef@db:5432/orders"
    docs = plan.find("Secret", "docs-credentials").manifest["stringData"]  # type: ignore[union-attr]
    assert docs["url"] == "mongodb://envspec:Mongo-Secret-Value-0123456789abc@docs:27017/docs?authSource=admin"
    rel = plan.find("Secret", "rel-credentials").manifest["stringData"]  # type: ignore[union-attr]
    assert rel["root-password"] == "MySQL-Root-Value-0123456789abcde"
    assert rel["url"] == "mysql://envspec:MySQL-Secret-Value-0123456789abc@rel:3306/rel"


def test_passwords_never_appear_outside_their_secret() -> None:
    plan = plan_of(FULL, secrets=PASSWORDS, include_tests=True)
    for obj in plan.objects:
        serialized = json.dumps(obj.manifest) + plan_text(
            Plan(plan.environment, plan.namespace, plan.ttl_seconds, (obj,)), "yaml"
        )
        for slot, password in PASSWORDS.items():
            if obj.kind == "Secret" and obj.name == slot.secret:
                assert password in serialized
            else:
                assert password not in serialized, f"{slot} leaked into {obj.kind}/{obj.name}"
    # and in the whole stream it appears only in Secret documents
    for document in plan_text(plan, "yaml").split("---\n"):
        if any(password in document for password in PASSWORDS.values()):
            assert "\nkind: Secret\n" in "\n" + document


def test_whole_value_secret_references_become_secret_key_refs() -> None:
    env = {e["name"]: e for e in env_of(plan_of(FULL), "Deployment", "api")}
    assert env["DATABASE_URL"] == {
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "db-credentials", "key": "url"}},
    }
    assert env["DB_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "db-credentials", "key": "password"}}
    assert env["MONGO"]["valueFrom"] == {"secretKeyRef": {"name": "docs-credentials", "key": "url"}}
    assert "value" not in env["DATABASE_URL"]


def test_embedded_secret_references_use_helper_variables() -> None:
    env = env_of(plan_of(FULL), "Deployment", "api")
    names = [e["name"] for e in env]
    by_name = {e["name"]: e for e in env}
    helper = by_name["ENVSPEC_DB_PASSWORD"]
    assert helper["valueFrom"] == {"secretKeyRef": {"name": "db-credentials", "key": "password"}}
    # Kubernetes expands $(VAR) only from variables defined earlier in the list
    assert names.index("ENVSPEC_DB_PASSWORD") < names.index("DSN")
    assert by_name["DSN"]["value"] == "host=db port=5432 dbname=orders user=envspec password=$(ENVSPEC_DB_PASSWORD)"
    # one helper per secret, however often it is used
    assert names.count("ENVSPEC_DB_PASSWORD") == 1
    assert by_name["TWICE"]["value"] == "$(ENVSPEC_DB_PASSWORD):$(ENVSPEC_DB_PASSWORD)"
    assert by_name["ENVSPEC_REL_URL"]["valueFrom"] == {"secretKeyRef": {"name": "rel-credentials", "key": "url"}}
    assert by_name["MYSQL"]["value"] == "mysql $(ENVSPEC_REL_URL) as envspec"
    assert len(names) == len(set(names))


def test_plain_references_are_inlined() -> None:
    plan = plan_of(FULL, {"FLAG": "on"})
    api = {e["name"]: e.get("value") for e in env_of(plan, "Deployment", "api")}
    assert api["REDIS_HOST"] == "cache"
    assert api["NS"] == "qa-shop"
    assert api["FLAG"] == "on"
    assert api["LITERAL"] == "${not.a.ref}"
    worker = {e["name"]: e["value"] for e in env_of(plan, "Deployment", "worker")}
    assert worker == {"API": "http://api:8000", "API_HOST": "api", "API_PORT": "8000"}
    assert {e["name"]: e.get("value") for e in env_of(plan_of(FULL), "Deployment", "api")}["FLAG"] == "off"


def test_helper_variable_names_for_names_with_dashes() -> None:
    text = (
        HEAD
        + "databases:\n  my-db: {engine: postgresql}\nservices:\n  a:\n    image: x\n    env: {U: 'x ${my-db.url}'}\n"
    )
    env = env_of(plan_of(text), "Deployment", "a")
    assert env[0]["name"] == "ENVSPEC_MY_DB_URL"
    assert env[1] == {"name": "U", "value": "x $(ENVSPEC_MY_DB_URL)"}


# --- determinism and purity --------------------------------------------------------------------


def test_same_input_gives_byte_identical_output() -> None:
    first = plan_text(plan_of(FULL, {"TAG": "1"}, include_tests=True, env_id="x", secrets=PASSWORDS), "yaml")
    second = plan_text(plan_of(FULL, {"TAG": "1"}, include_tests=True, env_id="x", secrets=PASSWORDS), "yaml")
    assert first == second
    assert plan_text(plan_of(FULL), "json") == plan_text(plan_of(FULL), "json")


def test_compile_plan_does_not_read_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    valid = valid_spec(FULL, {"TAG": "1"})
    before = plan_text(compile_plan(valid, include_tests=True), "yaml")
    for name, value in {
        "TAG": "changed",
        "FLAG": "changed",
        "K8S_TTL_MINUTES": "5",
        "K8S_NAMESPACE_PREFIX": "other",
        "DEFAULT_CPU_LIMIT": "7",
        "DEFAULT_MEMORY_LIMIT": "7Gi",
    }.items():
        monkeypatch.setenv(name, value)
    assert plan_text(compile_plan(valid, include_tests=True), "yaml") == before

    class Untouchable(dict[str, str]):
        def __getitem__(self, key: str) -> str:
            raise AssertionError(f"compile_plan read os.environ[{key!r}]")

        def get(self, key: str, default: Any = None) -> Any:
            raise AssertionError(f"compile_plan read os.environ[{key!r}]")

    monkeypatch.setattr(os, "environ", Untouchable())
    assert plan_text(compile_plan(valid, include_tests=True), "yaml") == before


def test_compile_plan_does_not_mutate_its_input() -> None:
    valid = valid_spec(FULL)
    snapshot = valid.spec.model_dump()
    compile_plan(valid, include_tests=True, secrets=PASSWORDS)
    assert valid.spec.model_dump() == snapshot
    # and the cached templates are not mutated either: a second compile is the same
    assert plan_text(compile_plan(valid), "yaml") == plan_text(compile_plan(valid), "yaml")


# --- resources ---------------------------------------------------------------------------------


def test_quota_auto_equals_the_computed_need() -> None:
    text = (
        HEAD
        + "resources:\n  defaults:\n    limits: {cpu: 500m, memory: 512Mi}\n  quota: {pods: 20}\n"
        + "databases:\n  db: {engine: postgresql}\n"
        + "services:\n  api: {image: a, replicas: 3, resources: {limits: {cpu: '1', memory: 1Gi}}}\n  w: {image: w}\n"
        + "tests:\n  big: {image: t, resources: {limits: {cpu: '2', memory: 2Gi}}}\n  small: {image: t}\n"
    )
    plan = plan_of(text)
    hard = plan.find("ResourceQuota", "envspec-quota").manifest["spec"]["hard"]  # type: ignore[union-attr]
    # cpu: db 500m + api 3 x 1 + w 500m + largest test 2 = 6; memory: 512Mi + 3Gi + 512Mi + 2Gi = 6Gi
    assert hard == {"limits.cpu": "6", "limits.memory": "6Gi", "pods": "20"}
    # the quota needs exactly the limits the containers are given
    total_cpu = 0.0
    for obj in plan_of(text, include_tests=True).objects:
        if obj.kind in ("Deployment", "StatefulSet"):
            limit = container_of(plan, obj.kind, obj.name)["resources"]["limits"]["cpu"]
            cores = float(limit[:-1]) / 1000 if limit.endswith("m") else float(limit)
            total_cpu += cores * obj.manifest["spec"].get("replicas", 1)
    assert total_cpu + 2 == 6


def test_explicit_quota_is_rendered_as_written() -> None:
    plan = plan_of(HEAD + "resources:\n  quota: {cpu: '4', memory: 8Gi, pods: 5}\n")
    hard = plan.find("ResourceQuota", "envspec-quota").manifest["spec"]["hard"]  # type: ignore[union-attr]
    assert hard == {"limits.cpu": "4", "limits.memory": "8Gi", "pods": "5"}


def test_limit_range_defaults() -> None:
    plan = plan_of(HEAD + "resources:\n  defaults:\n    requests: {cpu: 50m}\n    limits: {memory: 512Mi}\n")
    limit_range = plan.find("LimitRange", "envspec-defaults").manifest  # type: ignore[union-attr]
    assert limit_range["spec"]["limits"] == [
        {
            "type": "Container",
            "default": {"cpu": "1000m", "memory": "512Mi"},
            "defaultRequest": {"cpu": "50m", "memory": "256Mi"},
        }
    ]


def test_default_resources_precedence_spec_over_env_var_over_builtin() -> None:
    environ = {"DEFAULT_CPU_LIMIT": "2", "DEFAULT_MEMORY_LIMIT": "3Gi"}
    spec = HEAD + "resources:\n  defaults:\n    limits: {cpu: 750m}\nservices:\n  a: {image: x}\n"

    def defaults(plan: Plan) -> dict[str, str]:
        limit_range = plan.find("LimitRange", "envspec-defaults").manifest  # type: ignore[union-attr]
        result: dict[str, str] = limit_range["spec"]["limits"][0]["default"]
        return result

    assert defaults(plan_of(HEAD + "services:\n  a: {image: x}\n")) == {"cpu": "1000m", "memory": "1Gi"}
    assert defaults(plan_of(HEAD + "services:\n  a: {image: x}\n", environ)) == {"cpu": "2", "memory": "3Gi"}
    plan = plan_of(spec, environ)
    assert defaults(plan) == {"cpu": "750m", "memory": "3Gi"}
    assert container_of(plan, "Deployment", "a")["resources"]["limits"] == {"cpu": "750m", "memory": "3Gi"}


def test_container_resources_override_defaults() -> None:
    text = HEAD + "services:\n  a:\n    image: x\n    resources: {requests: {memory: 64Mi}, limits: {cpu: 200m}}\n"
    resources = container_of(plan_of(text), "Deployment", "a")["resources"]
    assert resources == {
        "requests": {"cpu": "100m", "memory": "64Mi"},
        "limits": {"cpu": "200m", "memory": "1Gi"},
    }


@pytest.mark.parametrize("example", sorted(p.parent.name for p in (REPO / "examples").glob("*/maestro-env.yaml")))
def test_examples_compile_and_keep_secrets_in_secrets(example: str) -> None:
    path = REPO / "examples" / example / "maestro-env.yaml"
    valid = validate(load_text(path.read_text(encoding="utf-8"), str(path)), {})
    secrets = {slot: f"S3cret-{slot.secret}-{slot.key}-xxxxxxxxxxxx" for slot in secret_slots(valid)}
    plan = compile_plan(valid, secrets=secrets, include_tests=True)
    for obj in plan.objects:
        if obj.kind == "Secret":
            continue
        text = json.dumps(obj.manifest)
        assert "S3cret-" not in text, f"{obj.kind}/{obj.name}"
        assert all("S3cret-" not in s for s in walk_strings(obj.manifest))


def test_plans_validate_strictly_against_kubernetes_1_34() -> None:
    odd = (
        "apiVersion: envspec/v1\nname: d\nisolation: none\npodSecurity: privileged\n"
        "services:\n  a: {image: x, replicas: 0, health: {path: /h, port: 81}, command: '', args: []}\n"
        "tests:\n  t: {image: x, timeout: 1w}\n"
    )
    for plan in (
        plan_of(FULL, {"TAG": "1"}, include_tests=True, env_id="abc", secrets=PASSWORDS),
        plan_of(odd, include_tests=True),
    ):
        for manifest in plan.manifests():
            kubernetes_validate.validate(manifest, "1.34", strict=True)
