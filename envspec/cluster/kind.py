"""The kind provider: the ecosystem's usual local cluster, for machines with Docker.

Real nodes run in containers, so pods really run: images must be pullable, or be loaded
from the local Docker daemon with `kind load docker-image` (see load_image_command).
The kubeconfig goes to our own file, never to ~/.kube/config.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from envspec.cluster.info import ClusterInfo, ClusterStatus
from envspec.cluster.paths import Layout
from envspec.cluster.proc import describe_failure, run
from envspec.cluster.progress import Progress
from envspec.errors import ClusterError

WAIT = "120s"  # kind waits for the control-plane node to be Ready

Runner = Callable[..., subprocess.CompletedProcess[str]]


def list_command() -> list[str]:
    return ["kind", "get", "clusters"]


def create_command(name: str, kubeconfig: Path) -> list[str]:
    return ["kind", "create", "cluster", "--name", name, "--kubeconfig", str(kubeconfig), "--wait", WAIT]


def export_kubeconfig_command(name: str, kubeconfig: Path) -> list[str]:
    return ["kind", "export", "kubeconfig", "--name", name, "--kubeconfig", str(kubeconfig)]


def delete_command(name: str, kubeconfig: Path) -> list[str]:
    return ["kind", "delete", "cluster", "--name", name, "--kubeconfig", str(kubeconfig)]


def load_image_command(name: str, image: str) -> list[str]:
    """How images built locally reach the nodes.

    kind nodes cannot see the host's Docker images. When `envspec up` (later work) builds
    an image for a kind cluster, it must run this before applying the manifests that use
    it, and reference the image by a tag other than `latest` (imagePullPolicy would make
    the node try a registry). kwok needs nothing: its pods never pull.
    """
    return ["kind", "load", "docker-image", image, "--name", name]


def server_command(kubeconfig: Path) -> list[str]:
    jsonpath = "jsonpath={.clusters[0].cluster.server}"
    return ["kubectl", "--kubeconfig", str(kubeconfig), "config", "view", "--minify", "-o", jsonpath]


class KindCluster:
    """One kind cluster; `runner` is injectable so unit tests can check the commands."""

    provider = "kind"

    def __init__(
        self,
        name: str,
        layout: Layout,
        progress: Progress,
        runner: Runner = run,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.progress = progress
        self.kubeconfig = layout.kubeconfig(name)
        self.runner = runner
        self.env = env

    def _run(self, cmd: Sequence[str], what: str, timeout: float = 600) -> str:
        result = self.runner(cmd, env=self.env, timeout=timeout)
        if result.returncode != 0:
            raise ClusterError(describe_failure(result, what))
        return str(result.stdout)

    def exists(self) -> bool:
        return self.name in self._run(list_command(), "kind get clusters", timeout=60).split()

    def up(self) -> ClusterInfo:
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        if self.exists():
            self.progress.step(f"cluster {self.name}: kind cluster exists, reusing it")
            self._run(export_kubeconfig_command(self.name, self.kubeconfig), "kind export kubeconfig", timeout=60)
        else:
            self.progress.step(f"cluster {self.name}: creating with kind (pulls the node image on first use)")
            self._run(create_command(self.name, self.kubeconfig), "kind create cluster", timeout=900)
        server = self._run(server_command(self.kubeconfig), "kubectl config view", timeout=30).strip()
        self.progress.step(f"cluster {self.name}: ready at {server}")
        return ClusterInfo(self.name, self.provider, str(self.kubeconfig), server)

    def down(self) -> None:
        if self.exists():
            self._run(delete_command(self.name, self.kubeconfig), "kind delete cluster", timeout=300)

    def load_image(self, image: str) -> None:
        self._run(load_image_command(self.name, image), "kind load docker-image")

    def status(self) -> ClusterStatus:
        if not self.exists():
            return ClusterStatus(self.name, self.provider, exists=False, running=False, detail="not created")
        ready = self.runner(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), "--request-timeout=10s", "get", "--raw", "/readyz"],
            env=self.env,
            timeout=30,
        )
        running = ready.returncode == 0
        return ClusterStatus(
            self.name,
            self.provider,
            exists=True,
            running=running,
            kubeconfig=str(self.kubeconfig) if self.kubeconfig.exists() else None,
            detail="running" if running else "API server not ready",
        )
