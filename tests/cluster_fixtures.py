"""Fixtures for tests that need the local Kubernetes cluster (marked `cluster`).

`kube_cluster` (session) ensures the cluster named by $ENVSPEC_TEST_CLUSTER (default
envspec-test): it reuses a running one (`make test` starts it beforehand), repairs or
creates it otherwise, and leaves it running afterwards so the next run is quick. If the
cluster cannot be started, every test using it FAILS with the reason: never skipped.

`kube_namespace` (function) gives a test its own freshly created namespace, with the
default service account in place (pods are admitted only after it exists), and deletes
it afterwards, waiting for the deletion to complete.

`served_logs` (function) sets what the API server's real `pods/{name}/log` returns on a
kwok cluster: a file of ours, served by kwok-controller (playing the kubelet) through
kwok's `Logs` (one pod) or `ClusterLogs` (every pod of a namespace) objects, which the
cluster's kwok configuration enables as CRDs. The file is in the CRI log format that a
real kubelet serves from (`<RFC 3339 time> stdout F <line>`), so `timestamps`,
`sinceTime`, `tailLines` and `follow` behave as on a real node. Lines appended to the
file reach a following reader. In kwok v0.7 a follow stream never ends by itself, not
even when the pod completes: kwok answers the log reader's "is the container still
running?" with Unavailable, which the reader takes for "running"; the client must close.
A pod given no file has no log at all: 400 BadRequest, `no logs found for container ...`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from envspec.cluster import ClusterInfo, cluster_up
from envspec.cluster.paths import Layout
from envspec.cluster.progress import Progress
from envspec.cluster.provider import read_record
from envspec.errors import EnvspecError

# conftest.py star-imports this module: export only the fixtures.
__all__ = ["kube_cluster", "kube_namespace", "served_logs"]

TEST_CLUSTER_ENV = "ENVSPEC_TEST_CLUSTER"
# Provider for a test cluster that does not exist yet; an existing one keeps its own.
TEST_PROVIDER_ENV = "ENVSPEC_TEST_PROVIDER"


def cluster_name_for_tests() -> str:
    return os.environ.get(TEST_CLUSTER_ENV, "envspec-test")


def run_kubectl(
    cluster: ClusterInfo, *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run kubectl against the test cluster and return what it did, whatever its exit code."""
    env = dict(os.environ, KUBECACHEDIR=str(Layout.from_env().kube_cache_dir))
    return subprocess.run(
        ["kubectl", "--kubeconfig", cluster.kubeconfig, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def kubectl(cluster: ClusterInfo, *args: str, stdin: str | None = None, timeout: float = 60, check: bool = True) -> str:
    """Run kubectl against the test cluster; return stdout, fail the test on error if `check`."""
    result = run_kubectl(cluster, *args, stdin=stdin, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}", pytrace=False)
    return result.stdout


@pytest.fixture(scope="session")
def kube_cluster() -> ClusterInfo:
    name = cluster_name_for_tests()
    provider = read_record(Layout.from_env(), name) or os.environ.get(TEST_PROVIDER_ENV, "kwok")
    try:
        return cluster_up(name, provider, progress=Progress())
    except EnvspecError as exc:
        pytest.fail(f"the test cluster {name!r} could not be started: {exc.message}", pytrace=False)


def _namespace_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"t-{slug}-{secrets.token_hex(3)}"


@pytest.fixture
def kube_namespace(kube_cluster: ClusterInfo, request: pytest.FixtureRequest) -> Iterator[str]:
    name = _namespace_name(request.node.name)
    kubectl(kube_cluster, "create", "namespace", name)
    kubectl(kube_cluster, "label", "namespace", name, "envspec.test/fixture=kube_namespace")
    deadline = time.monotonic() + 60
    while not kubectl(kube_cluster, "get", "serviceaccount", "default", "-n", name, "-o", "name", check=False):
        if time.monotonic() > deadline:
            pytest.fail(f"namespace {name}: no default service account after 60s", pytrace=False)
        time.sleep(0.2)
    yield name
    kubectl(
        kube_cluster, "delete", "namespace", name, "--ignore-not-found", "--wait=true", "--timeout=120s", timeout=150
    )


def cri_log(lines: Sequence[str], *, start: datetime | None = None, step: timedelta = timedelta(seconds=1)) -> str:
    """Lines in the CRI log format kwok (as a kubelet) reads: one timestamp per line, `step` apart."""
    first = start or datetime.now(UTC)
    return "".join(
        f"{(first + i * step).strftime('%Y-%m-%dT%H:%M:%S.%f')}000Z stdout F {line}\n" for i, line in enumerate(lines)
    )


@dataclass
class ServedLogs:
    """Point container logs of pods at files; everything created is removed after the test."""

    cluster: ClusterInfo
    directory: Path
    _objects: list[tuple[str, ...]] = field(default_factory=list)

    def _file(self, lines: Sequence[str], start: datetime | None) -> Path:
        path = self.directory / f"served-{secrets.token_hex(4)}.log"
        path.write_text(cri_log(lines, start=start))
        return path

    def _apply(self, document: Mapping[str, object], reference: tuple[str, ...]) -> None:
        kubectl(self.cluster, "apply", "-f", "-", stdin=json.dumps(document))
        self._objects.append(reference)

    def for_pod(
        self,
        namespace: str,
        pod: str,
        lines: Sequence[str],
        *,
        containers: Sequence[str] = (),
        start: datetime | None = None,
    ) -> Path:
        """Serve `lines` as the log of the pod's containers (all, or those named); returns the file."""
        path = self._file(lines, start)
        log: dict[str, object] = {"logsFile": str(path)}
        if containers:
            log["containers"] = list(containers)
        document = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Logs",
            "metadata": {"name": pod, "namespace": namespace},
            "spec": {"logs": [log]},
        }
        self._apply(document, ("logs.kwok.x-k8s.io", pod, "-n", namespace))
        return path

    def for_namespace(
        self, namespace: str, lines: Sequence[str], *, containers: Sequence[str] = (), start: datetime | None = None
    ) -> Path:
        """Serve `lines` as the log of every pod in `namespace` (e.g. a Job's pods, named at random)."""
        path = self._file(lines, start)
        log: dict[str, object] = {"logsFile": str(path)}
        if containers:
            log["containers"] = list(containers)
        name = f"served-logs-{namespace}"
        document = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterLogs",
            "metadata": {"name": name},
            "spec": {"selector": {"matchNamespaces": [namespace]}, "logs": [log]},
        }
        self._apply(document, ("clusterlogs.kwok.x-k8s.io", name))
        return path

    @staticmethod
    def append(path: Path, lines: Sequence[str], *, start: datetime | None = None) -> None:
        """More lines at the end of a served file, as a running container would write them."""
        with path.open("a") as handle:
            handle.write(cri_log(lines, start=start))

    def remove_all(self) -> None:
        for reference in reversed(self._objects):
            kubectl(self.cluster, "delete", "--ignore-not-found", *reference, check=False)
        self._objects.clear()


@pytest.fixture
def served_logs(kube_cluster: ClusterInfo, tmp_path: Path) -> Iterator[ServedLogs]:
    served = ServedLogs(kube_cluster, tmp_path)
    yield served
    served.remove_all()


ENVSPEC = [sys.executable, "-m", "envspec"]


def envspec_env(cluster: ClusterInfo) -> dict[str, str]:
    """The environment of an envspec process aimed at the test cluster (its kubeconfig, not a service account)."""
    env = dict(os.environ, KUBECONFIG=cluster.kubeconfig)
    env.pop("K8S_IN_CLUSTER", None)
    return env


def printed_manifests(command: str, *args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The documents `envspec COMMAND --print-manifests ARGS` prints (gc, worker, serve); no cluster needed."""
    result = subprocess.run(
        [*ENVSPEC, command, "--print-manifests", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in YAML(typ="safe").load_all(result.stdout) if doc]


def run_envspec(cluster: ClusterInfo, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the envspec command (a fresh process, as a user would) against the test cluster."""
    return subprocess.run(
        [*ENVSPEC, *args], env=envspec_env(cluster), capture_output=True, text=True, timeout=timeout, check=False
    )
