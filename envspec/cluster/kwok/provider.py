"""The kwok provider: a real control plane with simulated nodes, run by kwokctl.

kwokctl's binary runtime starts etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok-controller as plain processes from our cached binaries and keeps
their state under KWOK_WORKDIR (<cache>/kwok/clusters/<name>): config (kwok.yaml), pki,
etcd data, logs and pid files. kwok-controller plays the kubelet of the simulated nodes.
This module decides (reuse, restart, recreate, wait); the command lines come from
`commands`, the handling of the processes from `processes`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from envspec.cluster.build import Binaries
from envspec.cluster.info import ClusterInfo, ClusterStatus, ComponentState
from envspec.cluster.kwok.commands import (
    BIND_ADDRESS,
    NODE_COUNT,
    KwokConfig,
    component_binaries,
    config_fingerprint,
    create_command,
    delete_command,
    find_kubectl,
    get_kubeconfig_command,
    kubectl_command,
    kwok_env,
    kwokctl_documents,
    parse_kwok_config,
    render_documents,
    scale_nodes_command,
    start_command,
)
from envspec.cluster.kwok.processes import ClusterProcesses, run_logged
from envspec.cluster.paths import Layout
from envspec.cluster.proc import describe_failure, run, tail, wait_port_free
from envspec.cluster.progress import Progress
from envspec.errors import ClusterError

READY_TIMEOUT = 120.0
START_TIMEOUT = 60.0


class KwokCluster:
    """One named kwok cluster under our cache directory."""

    provider = "kwok"

    def __init__(self, name: str, layout: Layout, progress: Progress) -> None:
        self.name = name
        self.layout = layout
        self.progress = progress
        self.cluster_dir = layout.kwok_workdir / "clusters" / name
        self.kubeconfig = layout.kubeconfig(name)
        self.config_path = layout.cluster_dir(name) / "kwokctl.yaml"
        self.log_path = layout.logs_dir / f"kwokctl-{name}.log"
        self.env = kwok_env(layout)
        self.processes = ClusterProcesses(self.cluster_dir)
        # Written after a successful create, inside kwokctl's directory so that it lives
        # and dies with the cluster.
        self.fingerprint_path = self.cluster_dir / "envspec-config-fingerprint"

    # -- inspection ---------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        return self.cluster_dir.exists()

    def saved_config(self) -> KwokConfig | None:
        try:
            return parse_kwok_config((self.cluster_dir / "kwok.yaml").read_text())
        except OSError:
            return None

    def server(self, config: KwokConfig | None = None) -> str | None:
        config = config or self.saved_config()
        if config is None or config.apiserver_port is None:
            return None
        return f"https://{BIND_ADDRESS}:{config.apiserver_port}"

    def our_pid(self, component: str) -> int | None:
        """The pid of `component` if it is alive and really ours, else None."""
        return self.processes.our_pid(component)

    def components(self) -> tuple[ComponentState, ...]:
        return self.processes.components()

    def remove_stale_pid_files(self) -> list[str]:
        return self.processes.remove_stale_pid_files()

    def binaries_changed(self, bins: Binaries) -> list[str]:
        changed = []
        for component, wanted in component_binaries(bins).items():
            link = self.cluster_dir / "bin" / component
            try:
                current = os.readlink(link)
            except OSError:
                current = None
            if current != str(wanted):
                changed.append(component)
        return changed

    def kubectl(self, kubectl: str, *args: str, timeout: float = 20) -> tuple[int, str, str]:
        result = run(kubectl_command(kubectl, self.kubeconfig, *args), env=self.env, timeout=timeout)
        return result.returncode, result.stdout, result.stderr

    def readiness_problem(self, kubectl: str) -> str | None:
        """None when the cluster is usable: API ready, nodes Ready, controllers working."""
        code, _, err = self.kubectl(kubectl, "get", "--raw", "/readyz")
        if code != 0:
            return f"API server not ready: {tail(err, 3) or 'no answer'}"
        ready, total = self.node_counts(kubectl)
        if ready < NODE_COUNT:
            return f"{ready} of {total} nodes Ready (want {NODE_COUNT})"
        # The service account controller (in kube-controller-manager) creates it: proof
        # that the controllers run, and pods can be admitted in `default`.
        code, _, err = self.kubectl(kubectl, "get", "serviceaccount", "default", "-n", "default", "-o", "name")
        if code != 0:
            return f"kube-controller-manager has not created the default service account yet ({tail(err, 1)})"
        return None

    def node_counts(self, kubectl: str) -> tuple[int, int]:
        code, out, _ = self.kubectl(kubectl, "get", "nodes", "-o", "json")
        if code != 0:
            return 0, 0
        try:
            items = json.loads(out).get("items", [])
        except json.JSONDecodeError:
            return 0, 0
        ready = sum(
            1
            for node in items
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in node.get("status", {}).get("conditions", [])
            )
        )
        return ready, len(items)

    def status(self) -> ClusterStatus:
        kubeconfig = str(self.kubeconfig) if self.kubeconfig.exists() else None
        if not self.exists:
            return ClusterStatus(self.name, self.provider, exists=False, running=False, detail="not created")
        config = self.saved_config()
        components = self.components()
        down = [c.name for c in components if c.pid is None]
        common: dict[str, Any] = {
            "kubeconfig": kubeconfig,
            "server": self.server(config),
            "components": components,
        }
        if config is None:
            return ClusterStatus(self.name, self.provider, True, False, detail="half-created (no kwok.yaml)", **common)
        if down:
            return ClusterStatus(
                self.name, self.provider, True, False, detail="not running: " + ", ".join(down), **common
            )
        kubectl = find_kubectl()
        problem = self.readiness_problem(kubectl) if kubeconfig else "our kubeconfig is missing"
        ready, total = self.node_counts(kubectl) if kubeconfig else (0, 0)
        return ClusterStatus(
            self.name,
            self.provider,
            True,
            problem is None,
            detail=problem or "running",
            nodes_ready=ready,
            nodes_total=total,
            **common,
        )

    # -- changes ------------------------------------------------------------------------

    def up(self, bins: Binaries) -> ClusterInfo:
        kubectl = find_kubectl()
        self.layout.logs_dir.mkdir(parents=True, exist_ok=True)
        # kwokctl writes the admin key world-readable (0644): keep other local users out
        # of the directories holding keys and kubeconfigs.
        for private in (self.layout.kwok_workdir, self.config_path.parent.parent):
            private.mkdir(parents=True, exist_ok=True)
            private.chmod(0o700)
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        documents = kwokctl_documents(kubectl)
        self.config_path.write_text(render_documents(documents))
        fingerprint = config_fingerprint(documents)
        reason = self._reuse_or_restart(bins, kubectl, fingerprint)
        if reason is None:
            self._ensure_nodes(bins, kubectl)
            problem = self._wait_ready(kubectl, START_TIMEOUT, fail=False)
            if problem is not None:
                reason = f"unhealthy ({problem})"
        if reason is not None:
            if self.exists:
                self.progress.step(f"cluster {self.name}: {reason}; recreating it")
                self.destroy(bins)
            self._create(bins)
            self.fingerprint_path.write_text(fingerprint + "\n")
            self._ensure_nodes(bins, kubectl)
            self._wait_ready(kubectl, READY_TIMEOUT)
        server = self.server() or "?"
        return ClusterInfo(self.name, self.provider, str(self.kubeconfig), server)

    def saved_fingerprint(self) -> str | None:
        try:
            return self.fingerprint_path.read_text().strip()
        except OSError:
            return None

    def _reuse_or_restart(self, bins: Binaries, kubectl: str, fingerprint: str) -> str | None:
        """Bring an existing cluster back; return why it must be recreated instead, if so."""
        if not self.exists:
            return "absent"
        config = self.saved_config()
        if config is None:
            return "stale directory without a valid kwok.yaml (half-created)"
        changed = self.binaries_changed(bins)
        if changed:
            return "built for other binaries (" + ", ".join(changed) + ")"
        if self.saved_fingerprint() != fingerprint:
            # Stages and the log CRDs are read by kwok-controller only when the cluster
            # is created: an older cluster would silently ignore the annotations.
            return "created with an older configuration (kwok pod stages, log serving)"
        stale = self.remove_stale_pid_files()
        down = [c.name for c in self.components() if c.pid is None]
        if not down:
            if not self.kubeconfig.exists():
                self._rewrite_kubeconfig(bins)
            self.progress.step(f"cluster {self.name}: running at {self.server(config)}, reusing it")
            return None
        taken = [
            f"{port} ({component})"
            for component in down
            for port in config.ports.get(component, [])
            if not wait_port_free(port)
        ]
        if taken:
            return "ports taken by other processes: " + ", ".join(taken)
        note = " (stale pid files removed)" if stale else ""
        self.progress.step(
            f"cluster {self.name}: {', '.join(down)} not running{note}; restarting (kwokctl start cluster)"
        )
        result = self._kwokctl(start_command(bins, self.config_path, self.name), timeout=START_TIMEOUT + 60)
        if result.returncode != 0:
            return describe_failure(result, "kwokctl start cluster").splitlines()[0]
        if not self.kubeconfig.exists():
            self._rewrite_kubeconfig(bins)
        problem = self._poll_api(kubectl, START_TIMEOUT)
        if problem is not None:
            return f"restart failed ({problem}; logs in {self.cluster_dir / 'logs'})"
        self.progress.step(f"cluster {self.name}: restarted at {self.server()}")
        return None

    def _create(self, bins: Binaries) -> None:
        self.progress.step(f"cluster {self.name}: creating (kwokctl, binary runtime, bound to {BIND_ADDRESS})")
        last = ""
        # A second attempt covers a port grabbed by someone else between kwokctl's
        # free-port scan and the server binding it.
        for attempt in (1, 2):
            result = self._kwokctl(create_command(bins, self.config_path, self.name, self.kubeconfig), timeout=300)
            if result.returncode == 0:
                self.progress.step(f"cluster {self.name}: control plane serving at {self.server()}")
                return
            last = describe_failure(result, "kwokctl create cluster")
            if attempt == 1:
                self.progress.step(f"cluster {self.name}: creation failed, retrying once: {last.splitlines()[0]}")
            self.destroy(bins)
        raise ClusterError(f"{last}\nkwokctl log: {self.log_path}")

    def _ensure_nodes(self, bins: Binaries, kubectl: str) -> None:
        _, total = self.node_counts(kubectl)
        if total >= NODE_COUNT:
            return
        result = self._kwokctl(scale_nodes_command(bins, self.config_path, self.name), timeout=120)
        if result.returncode != 0:
            raise ClusterError(describe_failure(result, "kwokctl scale node") + f"\nkwokctl log: {self.log_path}")
        self.progress.step(f"cluster {self.name}: {NODE_COUNT} simulated nodes created")

    def _poll_api(self, kubectl: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while True:
            code, _, err = self.kubectl(kubectl, "get", "--raw", "/readyz")
            if code == 0:
                return None
            if time.monotonic() > deadline:
                return f"API server not ready after {timeout:.0f}s: {tail(err, 2)}"
            time.sleep(0.5)

    def _wait_ready(self, kubectl: str, timeout: float, *, fail: bool = True) -> str | None:
        """Wait until readiness_problem() is None; raise (or return the problem) on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            problem = self.readiness_problem(kubectl)
            if problem is None:
                ready, _ = self.node_counts(kubectl)
                self.progress.step(f"cluster {self.name}: ready, {ready} nodes Ready")
                return None
            if time.monotonic() > deadline:
                if not fail:
                    return problem
                raise ClusterError(
                    f"cluster {self.name} is not ready after {timeout:.0f}s: {problem}\n"
                    f"component logs: {self.cluster_dir / 'logs'}"
                )
            time.sleep(0.5)

    def _rewrite_kubeconfig(self, bins: Binaries) -> None:
        # Someone deleted our kubeconfig while the cluster ran: ask kwokctl for it again.
        result = self._kwokctl(get_kubeconfig_command(bins, self.config_path, self.name), timeout=60)
        if result.returncode != 0 or not result.stdout.strip():
            raise ClusterError(describe_failure(result, "kwokctl get kubeconfig"))
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        # It holds the admin client key: readable by its owner only.
        fd = os.open(self.kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(result.stdout)
        self.progress.step(f"cluster {self.name}: kubeconfig was missing, wrote it again")

    def destroy(self, bins: Binaries | None = None) -> None:
        """Stop every process of ours and remove the cluster directory, whatever its state."""
        if not self.exists:
            return
        self.remove_stale_pid_files()
        if bins is not None and self.saved_config() is not None and bins.kwokctl.exists():
            result = self._kwokctl(delete_command(bins, self.config_path, self.name, self.kubeconfig), timeout=120)
            if result.returncode != 0:
                self.progress.step(f"cluster {self.name}: kwokctl delete failed; stopping processes directly")
        self.processes.stop_all()
        shutil.rmtree(self.cluster_dir, ignore_errors=True)

    def _kwokctl(self, cmd: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return run_logged(cmd, env=self.env, timeout=timeout, log_path=self.log_path)
