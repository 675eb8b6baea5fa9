"""`envspec gc` and `envspec extend` against the real local control plane.

Every namespace a test creates carries a random prefix, and assertions look only at
those: the cluster may hold other tests' environments, which gc sees too (it never
deletes one that has not expired, and no test here moves the clock forward outside
a dry run).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from envspec.cluster import ClusterInfo
from envspec.errors import EnvspecError
from envspec.events import Emitter, GcDeleted, GcSkipped, GcStuck, GcSweepFinished, LeaseRenewed
from envspec.kube import kinds
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.ssa import ChangedSinceRead, delete_object
from envspec.meta import format_instant
from envspec.operations.environments import EnvironmentRef
from envspec.operations.extend import extend as extend_environment
from envspec.operations.gc import GcOptions, SweepReport, sweep
from envspec.plan import (
    ENVIRONMENT_LABEL,
    EXPIRES_AT_ANNOTATION,
    JANITOR_EXPIRES_ANNOTATION,
    MANAGED_BY_LABEL,
    TTL_ANNOTATION,
)
from envspec.sinks import Recorder as EventLog
from tests.cluster_fixtures import ENVSPEC, envspec_env, run_envspec
from tests.cluster_fixtures import kubectl as fixture_kubectl

REPO = Path(__file__).resolve().parent.parent


def kubectl(cluster: ClusterInfo, *args: str, stdin: str | None = None, check: bool = True) -> str:
    return fixture_kubectl(cluster, *args, stdin=stdin, check=check, timeout=120)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Namespaces:
    """Namespaces made for one test, all named `<prefix>-<suffix>`, removed afterwards."""

    cluster: ClusterInfo
    prefix: str

    def create(
        self,
        suffix: str,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        finalizers: list[str] | None = None,
    ) -> str:
        name = f"{self.prefix}-{suffix}"
        metadata: dict[str, Any] = {"name": name, "labels": labels or {}, "annotations": annotations or {}}
        if finalizers:
            metadata["finalizers"] = finalizers
        kubectl(
            self.cluster,
            "create",
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}),
        )
        return name

    def managed(self, suffix: str, *, expires: str | None, ttl: str | None = "1h") -> str:
        annotations = {}
        if expires is not None:
            annotations[EXPIRES_AT_ANNOTATION] = expires
            annotations[JANITOR_EXPIRES_ANNOTATION] = expires
        if ttl is not None:
            annotations[TTL_ANNOTATION] = ttl
        labels = {MANAGED_BY_LABEL: "envspec", ENVIRONMENT_LABEL: f"{self.prefix}-{suffix}"}
        return self.create(suffix, labels=labels, annotations=annotations)

    def existing(self) -> dict[str, dict[str, Any]]:
        """Our namespaces still present (Terminating ones included), by name."""
        listing = json.loads(kubectl(self.cluster, "get", "namespaces", "-o", "json"))
        return {
            item["metadata"]["name"]: item
            for item in listing["items"]
            if item["metadata"]["name"].startswith(self.prefix + "-")
        }

    def cleanup(self) -> None:
        for name, item in self.existing().items():
            if item["metadata"].get("finalizers"):
                kubectl(
                    self.cluster,
                    "patch",
                    "namespace",
                    name,
                    "--type=merge",
                    "-p",
                    '{"metadata":{"finalizers":null}}',
                    check=False,
                )
            kubectl(self.cluster, "delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def namespaces(kube_cluster: ClusterInfo) -> Iterator[Namespaces]:
    made = Namespaces(kube_cluster, f"gct-{secrets.token_hex(3)}")
    yield made
    made.cleanup()


def target_of(cluster: ClusterInfo) -> ClusterTarget:
    return ClusterTarget(kubeconfig=cluster.kubeconfig)


class CountingApi:
    """Wraps kr8s's Api and counts every request envspec sends through `call_api`."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.requests: list[tuple[str, str]] = []  # (method, url)

    def call_api(self, method: str, **kwargs: Any) -> Any:
        self.requests.append((method, str(kwargs.get("url", ""))))
        return self.api.call_api(method, **kwargs)

    def count(self, method: str, url: str) -> int:
        return sum(1 for m, u in self.requests if m == method and u == url)


def run_sweep(
    cluster: ClusterInfo, *, clock: Callable[[], datetime] = utc_now, **options: Any
) -> tuple[SweepReport, EventLog, CountingApi]:
    log = EventLog()

    async def main() -> tuple[SweepReport, CountingApi]:
        async with connect(target_of(cluster)) as api:
            counting = CountingApi(api)
            report = await sweep(
                counting, clock=clock, events=Emitter(log, operation="gc"), options=GcOptions(**options)
            )
            return report, counting

    report, counting = anyio.run(main)
    return report, log, counting


def ours(names: list[str], made: Namespaces) -> set[str]:
    return {n for n in names if n.startswith(made.prefix + "-")}


@pytest.mark.cluster
def test_gc_deletes_expired_environments_and_spares_everything_else(
    kube_cluster: ClusterInfo, namespaces: Namespaces
) -> None:
    now = utc_now()
    past, future = format_instant(now - timedelta(minutes=5)), format_instant(now + timedelta(hours=1))
    expired = namespaces.managed("expired", expires=past)
    expired_janitor_format = namespaces.managed("expired-date", expires="2020-01-01")
    unexpired = namespaces.managed("unexpired", expires=future)
    never = namespaces.managed("never", expires=None, ttl="never")
    never_with_stale_expiry = namespaces.managed("never-stale", expires=past, ttl="never")
    no_expiry = namespaces.managed("no-expiry", expires=None, ttl="1h")
    unparsable = namespaces.managed("unparsable", expires="tomorrow-ish")
    # Decoys without the managed-by label, however expired they look.
    similar_name = namespaces.create(
        "expired-x", labels={ENVIRONMENT_LABEL: "x"}, annotations={EXPIRES_AT_ANNOTATION: past}
    )
    other_manager = namespaces.create(
        "helm", labels={MANAGED_BY_LABEL: "Helm"}, annotations={EXPIRES_AT_ANNOTATION: past}
    )

    report, log, _ = run_sweep(kube_cluster)

    deleted = {e.namespace: e for e in log.of_type(GcDeleted) if e.namespace.startswith(namespaces.prefix)}
    assert set(deleted) == {expired, expired_janitor_format}
    assert not any(e.dry_run for e in deleted.values())
    assert deleted[expired].expired_at == past
    assert 300 <= deleted[expired].expired_seconds_ago < 400
    age = deleted[expired].age_seconds
    assert age is not None and age < 120
    skipped = {e.namespace: e.reason for e in log.of_type(GcSkipped) if e.namespace.startswith(namespaces.prefix)}
    assert set(skipped) == {no_expiry, unparsable}
    assert "'tomorrow-ish'" in skipped[unparsable]
    assert ours(report.deleted, namespaces) == {expired, expired_janitor_format}
    assert log.of_type(GcSweepFinished)[-1].deleted == len(report.deleted)

    live = namespaces.existing()
    for gone in (expired, expired_janitor_format):
        assert gone not in live or live[gone]["metadata"].get("deletionTimestamp"), f"{gone} was not deleted"
    for spared in (unexpired, never, never_with_stale_expiry, no_expiry, unparsable, similar_name, other_manager):
        assert spared in live, f"{spared} was deleted"
        assert not live[spared]["metadata"].get("deletionTimestamp"), f"{spared} is being deleted"


@pytest.mark.cluster
def test_dry_run_deletes_nothing_even_with_the_clock_moved_forward(
    kube_cluster: ClusterInfo, namespaces: Namespaces
) -> None:
    now = utc_now()
    expired = namespaces.managed("expired", expires=format_instant(now - timedelta(minutes=1)))
    later = namespaces.managed("later", expires=format_instant(now + timedelta(hours=1)))

    # The injected clock is two hours ahead: both have expired by then.
    _, log, counting = run_sweep(kube_cluster, clock=lambda: now + timedelta(hours=2), dry_run=True)

    would = {e.namespace for e in log.of_type(GcDeleted) if e.namespace.startswith(namespaces.prefix)}
    assert would == {expired, later}
    assert all(e.dry_run for e in log.of_type(GcDeleted))
    assert counting.count("DELETE", f"namespaces/{expired}") == 0
    assert not any(method == "DELETE" for method, _ in counting.requests)
    live = namespaces.existing()
    assert expired in live and later in live
    assert not any(item["metadata"].get("deletionTimestamp") for item in live.values())
    assert log.of_type(GcSweepFinished)[-1].dry_run


@pytest.mark.cluster
def test_a_sweep_over_many_environments_makes_one_list_call_and_one_delete_per_expired(
    kube_cluster: ClusterInfo, namespaces: Namespaces
) -> None:
    now = utc_now()
    past, future = format_instant(now - timedelta(minutes=1)), format_instant(now + timedelta(hours=1))
    expired = {namespaces.managed(f"e{i}", expires=past) for i in range(10)}
    for i in range(20):
        namespaces.managed(f"k{i}", expires=future)

    report, _, counting = run_sweep(kube_cluster)

    assert counting.count("GET", "namespaces") == 1  # one list (pages of 500)
    deletes = [url for method, url in counting.requests if method == "DELETE"]
    assert len(deletes) == len(report.deleted)
    assert ours(report.deleted, namespaces) == expired
    assert len(counting.requests) == 1 + len(deletes)


@pytest.mark.cluster
def test_a_namespace_changed_since_it_was_listed_is_not_deleted(
    kube_cluster: ClusterInfo, namespaces: Namespaces
) -> None:
    name = namespaces.managed("raced", expires="2020-01-01T00:00:00Z")
    listed = namespaces.existing()[name]["metadata"]
    # Someone extends it after gc listed it.
    kubectl(kube_cluster, "annotate", "--overwrite", "namespace", name, f"{EXPIRES_AT_ANNOTATION}=2099-01-01T00:00:00Z")

    async def delete() -> bool:
        async with connect(target_of(kube_cluster)) as api:
            return await delete_object(
                api,
                kinds.NAMESPACE,
                name,
                None,
                uid=listed["uid"],
                resource_version=listed["resourceVersion"],
                deadline=Deadline(30),
            )

    with pytest.raises(ChangedSinceRead):
        anyio.run(delete)
    assert not namespaces.existing()[name]["metadata"].get("deletionTimestamp")


@pytest.mark.cluster
def test_a_namespace_stuck_terminating_is_reported_with_what_blocks_it(
    kube_cluster: ClusterInfo, namespaces: Namespaces
) -> None:
    name = namespaces.managed("stuck", expires="2020-01-01T00:00:00Z", ttl="1h")
    hold = "envspec.dev/test-hold"
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": name, "finalizers": [hold]},
    }
    kubectl(kube_cluster, "create", "-f", "-", stdin=json.dumps(configmap))
    try:
        first, _, _ = run_sweep(kube_cluster)
        assert name in first.deleted
        # The namespace controller cannot remove the ConfigMap: the namespace stays Terminating.
        deadline = time.monotonic() + 60
        while True:
            report, log, _ = run_sweep(kube_cluster, stuck_after_seconds=0)
            stuck = [e for e in log.of_type(GcStuck) if e.namespace == name]
            if stuck and any("NamespaceFinalizersRemaining" in b for b in stuck[0].blockers):
                break
            assert time.monotonic() < deadline, f"no stuck report with its blocker: {stuck}"
            time.sleep(1)
        assert any(hold in blocker for blocker in stuck[0].blockers)
        assert name not in report.deleted  # never deleted twice
        # Below the limit it is only "terminating", not reported.
        _, calm, _ = run_sweep(kube_cluster, stuck_after_seconds=3600)
        assert not [e for e in calm.of_type(GcStuck) if e.namespace == name]
    finally:
        kubectl(
            kube_cluster,
            "patch",
            "configmap",
            "held",
            "-n",
            name,
            "--type=merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
            check=False,
        )


# ---------------------------------------------------------------- the command


@pytest.mark.cluster
def test_gc_command_one_shot_table_and_json(kube_cluster: ClusterInfo, namespaces: Namespaces) -> None:
    expired = namespaces.managed("cli", expires="2020-01-01T00:00:00Z")
    dry = run_envspec(kube_cluster, "gc", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert any(line.startswith("would delete") and expired in line for line in dry.stdout.splitlines())
    assert expired in namespaces.existing()

    real = run_envspec(kube_cluster, "gc", "-o", "json")
    assert real.returncode == 0, real.stderr
    records = [json.loads(line) for line in real.stdout.splitlines()]
    assert {"event": "gc_deleted", "namespace": expired}.items() <= next(
        r for r in records if r.get("namespace") == expired
    ).items()
    assert [r["event"] for r in records[-2:]] == ["gc_sweep_finished", "operation_finished"]
    assert records[-1]["ok"] is True and records[-1]["exit_code"] == 0
    assert records[0]["event"] == "operation_started"
    assert len({r["operation_id"] for r in records}) == 1 and {r["operation"] for r in records} == {"gc"}


@pytest.mark.cluster
def test_gc_loop_sweeps_until_sigterm_and_exits_cleanly(kube_cluster: ClusterInfo, namespaces: Namespaces) -> None:
    process = subprocess.Popen(
        [*ENVSPEC, "gc", "--loop", "--interval", "1s"],
        env=envspec_env(kube_cluster),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        expired = namespaces.managed("loop", expires="2020-01-01T00:00:00Z")  # created while the loop runs
        deadline = time.monotonic() + 30
        while expired in namespaces.existing() and not namespaces.existing()[expired]["metadata"].get(
            "deletionTimestamp"
        ):
            assert time.monotonic() < deadline, "the loop did not delete an environment that expired meanwhile"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    lines = out.splitlines()
    assert sum(1 for line in lines if " gc: " in line) >= 2  # several sweeps, each with a summary
    assert any(expired in line and " deleted " in line for line in lines)
    assert "Traceback" not in err


def test_gc_loop_survives_an_unreachable_api_server_and_stops_on_sigterm(tmp_path: Path) -> None:
    # A kubeconfig for a port nothing listens on: every sweep fails.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "down", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "down", "context": {"cluster": "down", "user": "u"}}],
                "current-context": "down",
            }
        )
    )
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    process = subprocess.Popen(
        [*ENVSPEC, "gc", "--loop", "--interval", "1s"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    try:
        # Two failed sweeps in a row, read as they are printed (however slow the machine is):
        # the loop survives the first one.
        assert process.stdout is not None
        while sum("gc: sweep failed" in line for line in seen) < 2:
            line = process.stdout.readline()
            assert line, f"gc --loop ended when the API server was unreachable: {''.join(seen)}"
            seen.append(line)
        assert process.poll() is None, "gc --loop died when the API server was unreachable"
        process.send_signal(signal.SIGTERM)
        rest, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    out = "".join(seen) + rest
    failures = [line for line in out.splitlines() if "gc: sweep failed" in line]
    assert len(failures) >= 2
    assert "connection refused" in failures[0] and "trying again in 1.0s" in failures[0]
    assert "Traceback" not in err


# ---------------------------------------------------------------- extend


@pytest.mark.cluster
def test_extend_pushes_both_expiry_annotations_to_now_plus_ttl(
    kube_cluster: ClusterInfo, namespaces: Namespaces
) -> None:
    name = namespaces.managed("ext", expires="2020-01-01T00:00:00Z", ttl="1h")
    environment = f"{namespaces.prefix}-ext"
    frozen = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    log = EventLog()

    async def main() -> Any:
        return await extend_environment(
            target_of(kube_cluster),
            EnvironmentRef(environment),
            ttl_seconds=7200,
            clock=lambda: frozen,
            events=Emitter(log, operation="extend"),
        )

    extension = anyio.run(main)
    assert extension.namespace == name and extension.previous == "2020-01-01T00:00:00Z"
    annotations = namespaces.existing()[name]["metadata"]["annotations"]
    assert annotations[EXPIRES_AT_ANNOTATION] == "2031-05-06T09:08:09Z"
    assert annotations[JANITOR_EXPIRES_ANNOTATION] == "2031-05-06T09:08:09Z"
    assert log.of_type(LeaseRenewed) == [LeaseRenewed(name, "2031-05-06T09:08:09Z", "2020-01-01T00:00:00Z")]

    # Without --ttl: the environment's own ttl (envspec.dev/ttl: 1h).
    anyio.run(
        lambda: extend_environment(
            target_of(kube_cluster),
            EnvironmentRef(environment),
            ttl_seconds=None,
            clock=lambda: frozen,
            events=Emitter(log, operation="extend"),
        )
    )
    assert namespaces.existing()[name]["metadata"]["annotations"][EXPIRES_AT_ANNOTATION] == "2031-05-06T08:08:09Z"


@pytest.mark.cluster
def test_extend_refuses_unmanaged_and_never_expiring_namespaces(
    kube_cluster: ClusterInfo, namespaces: Namespaces
) -> None:
    unmanaged = namespaces.create("plain", annotations={EXPIRES_AT_ANNOTATION: "2020-01-01T00:00:00Z"})
    never = namespaces.managed("never", expires=None, ttl="never")
    refused = run_envspec(kube_cluster, "extend", "--name", unmanaged, "--ttl", "2h")
    assert refused.returncode == 1
    assert "envspec does not manage it" in refused.stderr and "Traceback" not in refused.stderr
    assert namespaces.existing()[unmanaged]["metadata"]["annotations"] == {
        EXPIRES_AT_ANNOTATION: "2020-01-01T00:00:00Z"
    }

    forever = run_envspec(kube_cluster, "extend", "--name", f"{namespaces.prefix}-never")
    assert forever.returncode == 1 and "never expires" in forever.stderr
    assert EXPIRES_AT_ANNOTATION not in namespaces.existing()[never]["metadata"]["annotations"]

    missing = run_envspec(kube_cluster, "extend", "--name", f"{namespaces.prefix}-nothing", "--ttl", "1h")
    assert missing.returncode == 1 and "not on the cluster" in missing.stderr

    with pytest.raises(EnvspecError):
        anyio.run(
            lambda: extend_environment(
                target_of(kube_cluster),
                EnvironmentRef(unmanaged),
                ttl_seconds=60,
                clock=utc_now,
                events=Emitter(EventLog(), operation="extend"),
            )
        )
