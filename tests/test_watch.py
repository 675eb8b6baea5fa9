"""`envspec watch` against the real local control plane, driven by a test that edits the spec file."""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from envspec.cluster import ClusterInfo
from envspec.events import Emitter, LeaseRenewed, WatchCycle, WatchSpecInvalid, WatchStarted, WatchStopped
from envspec.kube.client import ClusterTarget
from envspec.operations.watch import WatchOptions, WatchRequest, watch
from envspec.plan import EXPIRES_AT_ANNOTATION, JANITOR_EXPIRES_ANNOTATION
from envspec.sinks import Recorder as EventLog
from tests.cluster_fixtures import run_kubectl as kubectl

E = TypeVar("E")

SPEC = """\
apiVersion: envspec/v1
kind: Environment
name: {name}
ttl: {ttl}
services:
  web:
    image: registry.example.com/web:1
    port: 8080
    replicas: {replicas}
{extra}"""

API_SERVICE = """\
  api:
    image: registry.example.com/api:1
    port: 9000
"""


def spec_text(name: str, *, replicas: int | str = 1, extra: str = "", ttl: str = "30m") -> str:
    return SPEC.format(name=name, replicas=replicas, extra=extra, ttl=ttl)


def kubectl_json(cluster: ClusterInfo, *args: str) -> Any:
    result = subprocess.run(
        ["kubectl", "--kubeconfig", cluster.kubeconfig, *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return json.loads(result.stdout) if result.returncode == 0 else None


def deployment(cluster: ClusterInfo, namespace: str, name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = kubectl_json(cluster, "get", "deployment", name, "-n", namespace)
    return found


def snapshot(cluster: ClusterInfo, namespace: str) -> dict[str, str]:
    """Every object of the environment with what any envspec write changes: its spec's
    generation, its annotations and envspec's managedFields entries. (Not resourceVersion:
    controllers keep writing status, e.g. a quota's usage.)"""
    listing = kubectl_json(
        cluster, "get", "deployments,services,resourcequotas,limitranges,networkpolicies", "-n", namespace
    )
    ns = kubectl_json(cluster, "get", "namespace", namespace)
    return {f"{item['kind']}/{item['metadata']['name']}": written_by_envspec(item) for item in [*listing["items"], ns]}


def written_by_envspec(item: dict[str, Any]) -> str:
    metadata = item["metadata"]
    entries = [f for f in metadata.get("managedFields", []) if str(f.get("manager", "")).startswith("envspec")]
    return json.dumps([metadata.get("generation"), metadata.get("annotations"), entries], sort_keys=True)


@pytest.fixture
def environment_name(kube_cluster: ClusterInfo) -> Iterator[str]:
    name = f"wt-{secrets.token_hex(3)}"
    yield name
    kubectl(kube_cluster, "delete", "namespace", f"envspec-{name}", "--ignore-not-found", "--wait=false")


class Watching:
    """A watch running in the test's event loop, and helpers to wait for what it reports."""

    def __init__(self, log: EventLog, path: Path) -> None:
        self.log = log
        self.path = path
        self.seen = 0  # events already consumed by `next`

    async def next(self, kind: type[E], timeout: float = 90) -> E:
        """The next event of `kind` after the ones already consumed."""
        with anyio.move_on_after(timeout):
            while True:
                for index in range(self.seen, len(self.log.events)):
                    event = self.log.events[index]
                    if isinstance(event, kind):
                        self.seen = index + 1
                        return event
                await anyio.sleep(0.02)
        recent = "\n".join(f"  {event}" for event in self.log.events[-15:])
        pytest.fail(f"no {kind.__name__} within {timeout:g}s; the last events:\n{recent}", pytrace=False)

    async def edit(self, text: str) -> float:
        """Save the spec; the time it was written (monotonic)."""
        written = time.monotonic()
        self.path.write_text(text)
        return written


@asynccontextmanager
async def watching(
    cluster: ClusterInfo, path: Path, options: WatchOptions | None = None, clock: Any = None
) -> AsyncIterator[Watching]:
    log = EventLog()
    stop = anyio.Event()
    target = ClusterTarget(kubeconfig=cluster.kubeconfig)
    request = WatchRequest(str(path), None, target, {}, options or WatchOptions())
    harness = Watching(log, path)
    async with anyio.create_task_group() as group:
        group.start_soon(
            lambda: watch(
                request, events=Emitter(log, operation="watch"), clock=clock or (lambda: datetime.now(UTC)), stop=stop
            )
        )
        await harness.next(WatchStarted)
        yield harness
        stop.set()
        await harness.next(WatchStopped, timeout=60)


@pytest.mark.cluster
@pytest.mark.anyio
async def test_watch_applies_each_edit_and_leaves_the_environment_alone_on_an_invalid_one(
    kube_cluster: ClusterInfo, environment_name: str, tmp_path: Path, record_property: Any
) -> None:
    namespace = f"envspec-{environment_name}"
    path = tmp_path / "maestro-env.yaml"
    path.write_text(spec_text(environment_name))
    latencies: list[float] = []

    async with watching(kube_cluster, path) as watch:
        web = deployment(kube_cluster, namespace, "web")
        assert web is not None and web["status"].get("readyReplicas") == 1

        # add a service: it appears and is ready
        written = await watch.edit(spec_text(environment_name, extra=API_SERVICE))
        cycle = await watch.next(WatchCycle)
        latencies.append(time.monotonic() - written)
        assert cycle.ok, cycle.message
        assert {"deployment/api", "service/api"} <= set(cycle.created)
        api = deployment(kube_cluster, namespace, "api")
        assert api is not None and api["status"].get("readyReplicas") == 1
        assert kubectl_json(kube_cluster, "get", "service", "api", "-n", namespace) is not None

        # change replicas: updated, and only what changed is written
        written = await watch.edit(spec_text(environment_name, replicas=3, extra=API_SERVICE))
        cycle = await watch.next(WatchCycle)
        latencies.append(time.monotonic() - written)
        assert cycle.ok, cycle.message
        assert "deployment/web" in cycle.configured
        assert "deployment/api" not in cycle.configured and not cycle.created and not cycle.pruned
        web = deployment(kube_cluster, namespace, "web")
        assert web is not None
        assert web["spec"]["replicas"] == 3 and web["status"].get("readyReplicas") == 3

        # an invalid edit: located errors, and not a single write
        before = snapshot(kube_cluster, namespace)
        cycles_before = len(watch.log.of_type(WatchCycle))
        await watch.edit(spec_text(environment_name, replicas="lots", extra=API_SERVICE))
        invalid = await watch.next(WatchSpecInvalid)
        assert any(problem.startswith(f"{path}:9:") and "replicas" in problem for problem in invalid.problems)
        await anyio.sleep(1.0)  # well past the debounce: nothing else may follow
        assert snapshot(kube_cluster, namespace) == before
        assert len(watch.log.of_type(WatchCycle)) == cycles_before

        # remove a service, saved the way editors do (write elsewhere, rename over): pruned
        replacement = tmp_path / ".maestro-env.yaml.swp"
        replacement.write_text(spec_text(environment_name, replicas=3))
        written = time.monotonic()
        os.replace(replacement, path)
        cycle = await watch.next(WatchCycle)
        latencies.append(time.monotonic() - written)
        assert cycle.ok, cycle.message
        assert {"deployment/api", "service/api"} <= set(cycle.pruned)
        assert deployment(kube_cluster, namespace, "api") is None
        assert kubectl_json(kube_cluster, "get", "service", "api", "-n", namespace) is None

    # Stopping leaves the environment up.
    stopped = watch.log.of_type(WatchStopped)[-1]
    assert not stopped.taken_down
    assert deployment(kube_cluster, namespace, "web") is not None
    cycle_seconds = [round(c.seconds, 3) for c in watch.log.of_type(WatchCycle)]
    record_property("edit_to_ready_seconds", [round(s, 3) for s in latencies])
    record_property("cycle_seconds", cycle_seconds)
    print(f"\nwatch edit-to-ready latencies: {[f'{s:.2f}s' for s in latencies]}; cycles: {cycle_seconds}")
    assert len(latencies) == 3 and all(s < 30 for s in latencies)


@pytest.mark.cluster
@pytest.mark.anyio
async def test_a_failed_cycle_is_reported_and_the_next_edit_retries(
    kube_cluster: ClusterInfo, environment_name: str, tmp_path: Path
) -> None:
    namespace = f"envspec-{environment_name}"
    path = tmp_path / "maestro-env.yaml"
    path.write_text(spec_text(environment_name))
    async with watching(kube_cluster, path, WatchOptions(cycle_timeout_seconds=60)) as watch:
        # A quota someone else put on the namespace refuses the new pods: the cycle fails.
        quota = {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "outside", "namespace": namespace},
            "spec": {"hard": {"pods": "1"}},
        }
        assert kubectl(kube_cluster, "create", "-f", "-", stdin=json.dumps(quota)).returncode == 0
        await watch.edit(spec_text(environment_name, replicas=2))
        failed = await watch.next(WatchCycle)
        assert not failed.ok
        assert "outside" in failed.message and "deployment/web" in failed.message
        assert failed.configured and "deployment/web" in failed.configured  # what the edit meant to change

        # The obstacle goes; saving again (even the same text) retries, and watch is still alive.
        assert kubectl(kube_cluster, "delete", "resourcequota", "outside", "-n", namespace).returncode == 0
        await watch.edit(spec_text(environment_name, replicas=2) + "# retry\n")
        retried = await watch.next(WatchCycle)
        assert retried.ok, retried.message
        web = deployment(kube_cluster, namespace, "web")
        assert web is not None and web["status"].get("readyReplicas") == 2


def refuse_more_than_two_replicas(namespace: str) -> list[dict[str, Any]]:
    """An admission policy that makes the API server refuse the apply itself (not a pod)."""
    name = f"{namespace}-max-two"
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["deployments"],
                        }
                    ]
                },
                "validations": [{"expression": "object.spec.replicas <= 2", "message": "at most 2 replicas here"}],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
            },
        },
    ]


@pytest.mark.cluster
@pytest.mark.anyio
async def test_an_api_error_during_a_cycle_is_reported_and_the_next_save_retries(
    kube_cluster: ClusterInfo, environment_name: str, tmp_path: Path
) -> None:
    namespace = f"envspec-{environment_name}"
    path = tmp_path / "maestro-env.yaml"
    path.write_text(spec_text(environment_name))
    policy = json.dumps({"apiVersion": "v1", "kind": "List", "items": refuse_more_than_two_replicas(namespace)})
    try:
        async with watching(kube_cluster, path) as watch:
            assert kubectl(kube_cluster, "create", "-f", "-", stdin=policy).returncode == 0
            # The policy takes a moment to be enforced; save until the API server refuses.
            deadline = time.monotonic() + 30
            while True:
                refused_text = spec_text(environment_name, replicas=3) + f"# {time.monotonic()}\n"
                await watch.edit(refused_text)
                refused = await watch.next(WatchCycle)
                if not refused.ok:
                    break
                assert time.monotonic() < deadline, "the admission policy was never enforced"
                await watch.edit(spec_text(environment_name, replicas=1))
                await watch.next(WatchCycle)
            assert "applying deployment/web" in refused.message and "at most 2 replicas here" in refused.message

            kubectl(kube_cluster, "delete", "-f", "-", stdin=policy)
            deadline = time.monotonic() + 30
            while True:  # the very same text again: after a failed cycle any save retries
                await watch.edit(refused_text)
                retried = await watch.next(WatchCycle)
                if retried.ok:
                    break
                assert time.monotonic() < deadline, retried.message
                await anyio.sleep(0.5)
            web = deployment(kube_cluster, namespace, "web")
            assert web is not None and web["status"].get("readyReplicas") == 3
    finally:
        kubectl(kube_cluster, "delete", "--ignore-not-found", "-f", "-", stdin=policy)


@pytest.mark.cluster
@pytest.mark.anyio
async def test_keep_alive_renews_the_expiry_and_ttl_never_removes_it(
    kube_cluster: ClusterInfo, environment_name: str, tmp_path: Path
) -> None:
    namespace = f"envspec-{environment_name}"
    path = tmp_path / "maestro-env.yaml"
    path.write_text(spec_text(environment_name, ttl="2h"))
    frozen = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    options = WatchOptions(keepalive_seconds=0.5)
    async with watching(kube_cluster, path, options, clock=lambda: frozen) as watch:
        renewed = await watch.next(LeaseRenewed)
        while renewed.expires_at != "2031-01-02T05:04:05Z":  # skip the first up's own renewal
            renewed = await watch.next(LeaseRenewed)
        annotations = kubectl_json(kube_cluster, "get", "namespace", namespace)["metadata"]["annotations"]
        assert annotations[EXPIRES_AT_ANNOTATION] == "2031-01-02T05:04:05Z"
        assert annotations[JANITOR_EXPIRES_ANNOTATION] == "2031-01-02T05:04:05Z"

        await watch.edit(spec_text(environment_name, ttl="never"))
        cycle = await watch.next(WatchCycle)
        assert cycle.ok, cycle.message
        await anyio.sleep(1.5)  # several keep-alive periods: none may write an expiry back
        annotations = kubectl_json(kube_cluster, "get", "namespace", namespace)["metadata"]["annotations"]
        assert EXPIRES_AT_ANNOTATION not in annotations and JANITOR_EXPIRES_ANNOTATION not in annotations
        assert annotations["envspec.dev/ttl"] == "never"


class WatchProcess:
    """`envspec watch` in a child process, its output read by a thread so waits can time out."""

    def __init__(self, cluster: ClusterInfo, path: Path, *flags: str) -> None:
        env = dict(os.environ, KUBECONFIG=cluster.kubeconfig)
        # A file, not a pipe: a full pipe nobody reads would block the child. Lives as long as the process.
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "envspec", "watch", "-f", str(path), *flags],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.out: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def err(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, needle: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.out.append(line)
            if needle in line:
                return
        self.process.kill()
        self.process.wait(timeout=30)
        pytest.fail(f"no line with {needle!r} from envspec watch:\n{''.join(self.out)}\nstderr:\n{self.err()}")

    def interrupt(self, timeout: float = 120) -> tuple[int, str, str]:
        """Ctrl-C; the exit code, all of stdout and stderr."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        while (line := self.lines.get(timeout=10)) is not None:
            self.out.append(line)
        return self.process.returncode, "".join(self.out), self.err()


@pytest.mark.cluster
def test_ctrl_c_leaves_the_environment_up_or_takes_it_down_with_down_on_exit(
    kube_cluster: ClusterInfo, environment_name: str, tmp_path: Path
) -> None:
    namespace = f"envspec-{environment_name}"
    path = tmp_path / "maestro-env.yaml"
    path.write_text(spec_text(environment_name))

    watch = WatchProcess(kube_cluster, path)
    watch.wait_for("watching ")
    code, out, err = watch.interrupt()
    assert code == 0, err
    assert "left running" in out and "Traceback" not in err
    web = deployment(kube_cluster, namespace, "web")
    assert web is not None and web["status"].get("readyReplicas") == 1

    watch = WatchProcess(kube_cluster, path, "--down-on-exit")
    watch.wait_for("watching ")
    code, out, err = watch.interrupt()
    assert code == 0, err
    assert "taken down" in out
    assert kubectl_json(kube_cluster, "get", "namespace", namespace) is None


@pytest.mark.cluster
def test_watch_refuses_an_invalid_spec_at_start(kube_cluster: ClusterInfo, tmp_path: Path) -> None:
    path = tmp_path / "maestro-env.yaml"
    path.write_text(spec_text("wt-bad", replicas="many"))
    result = subprocess.run(
        [sys.executable, "-m", "envspec", "watch", "-f", str(path)],
        env=dict(os.environ, KUBECONFIG=kube_cluster.kubeconfig),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"{path}:9:" in result.stderr and "Traceback" not in result.stderr
