"""The kwok provider: a real control plane with simulated nodes, run by kwokctl.

kwokctl's binary runtime starts etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok-controller as plain processes from our cached binaries and keeps
their state under KWOK_WORKDIR (<cache>/kwok/clusters/<name>): config (kwok.yaml), pki,
etcd data, logs and pid files. kwok-controller plays the kubelet of the simulated nodes.

kwokctl trusts its pid files blindly: after a crash or reboot a recorded pid may be dead,
a zombie, or reused by an unrelated process, and `kwokctl start` then skips the component
while `kwokctl delete` would kill a stranger. So before every kwokctl call we remove pid
files that do not name a live process started from this cluster's own bin/ directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envspec.cluster.build import ETCD_VERSION, KUBERNETES_VERSION, KWOK_VERSION, Binaries
from envspec.cluster.paths import Layout
from envspec.cluster.proc import (
    describe_failure,
    pid_alive,
    process_argv0,
    read_pid_file,
    rss_bytes,
    run,
    tail,
    wait_port_free,
)
from envspec.cluster.progress import Progress
from envspec.errors import ClusterError, EnvspecError

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")
NODE_COUNT = 2
BIND_ADDRESS = "127.0.0.1"
READY_TIMEOUT = 120.0
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class ClusterInfo:
    """What callers need to talk to a running cluster."""

    name: str
    provider: str
    kubeconfig: str
    server: str


@dataclass(frozen=True)
class ComponentState:
    name: str
    pid: int | None  # None when not running
    rss: int | None = None


@dataclass(frozen=True)
class ClusterStatus:
    name: str
    provider: str
    exists: bool
    running: bool
    kubeconfig: str | None = None
    server: str | None = None
    detail: str = ""
    components: tuple[ComponentState, ...] = ()
    nodes_ready: int | None = None
    nodes_total: int | None = None

    @property
    def rss_total(self) -> int | None:
        values = [c.rss for c in self.components if c.rss is not None]
        return sum(values) if values else None


# --- pure pieces: configuration and command lines ---------------------------------------


def kwokctl_config(kubectl: str) -> dict[str, Any]:
    """Our KwokctlConfiguration, passed with -c so ~/.kwok/kwok.yaml is never read.

    bindAddress is only settable here (kwokctl has no flag for it) and defaults to
    0.0.0.0, which would expose an admin-only API server and an unauthenticated etcd
    to the network.
    """
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": {
            "runtime": "binary",
            "bindAddress": BIND_ADDRESS,
            "kubeVersion": KUBERNETES_VERSION,
            "etcdVersion": ETCD_VERSION.lstrip("v"),
            "kwokVersion": KWOK_VERSION,
            # Left at its default kwokctl would download kubectl; use the one on PATH.
            "kubectlBinary": kubectl,
        },
    }


def component_binaries(bins: Binaries) -> dict[str, Path]:
    """kwokctl component name -> the cached binary it must run."""
    return {
        "etcd": bins.etcd,
        "kube-apiserver": bins.kube_apiserver,
        "kube-controller-manager": bins.kube_controller_manager,
        "kube-scheduler": bins.kube_scheduler,
        "kwok-controller": bins.kwok,
    }


def kwokctl_base(bins: Binaries, config: Path, name: str) -> list[str]:
    return [str(bins.kwokctl), "-c", str(config), "--name", name]


def create_command(bins: Binaries, config: Path, name: str, kubeconfig: Path) -> list[str]:
    return [
        *kwokctl_base(bins, config, name),
        "create",
        "cluster",
        "--runtime",
        "binary",
        # Our own file: kwokctl merges the new context into it, default ~/.kube/config.
        "--kubeconfig",
        str(kubeconfig),
        "--kube-apiserver-binary",
        str(bins.kube_apiserver),
        "--kube-controller-manager-binary",
        str(bins.kube_controller_manager),
        "--kube-scheduler-binary",
        str(bins.kube_scheduler),
        "--etcd-binary",
        str(bins.etcd),
        "--kwok-controller-binary",
        str(bins.kwok),
        # Explicit although they are the defaults: the API server then runs its default
        # admission chain (ResourceQuota, LimitRanger, PodSecurity, ServiceAccount, ...)
        # and RBAC, like a real cluster.
        "--kube-admission=true",
        "--kube-authorization=true",
        "--wait",
        "2m",
        "--timeout",
        "3m",
    ]


def start_command(bins: Binaries, config: Path, name: str) -> list[str]:
    return [*kwokctl_base(bins, config, name), "start", "cluster", "--wait", "1m", "--timeout", "90s"]


def delete_command(bins: Binaries, config: Path, name: str, kubeconfig: Path) -> list[str]:
    # --kubeconfig again: without it kwokctl would remove the context from ~/.kube/config.
    return [*kwokctl_base(bins, config, name), "delete", "cluster", "--kubeconfig", str(kubeconfig)]


def scale_nodes_command(bins: Binaries, config: Path, name: str, replicas: int = NODE_COUNT) -> list[str]:
    return [*kwokctl_base(bins, config, name), "scale", "node", "--replicas", str(replicas)]


def kwok_env(layout: Layout, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of kwokctl and kubectl: our workdir, and none of the user's KWOK_* settings."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith("KWOK_")}
    env["KWOK_WORKDIR"] = str(layout.kwok_workdir)
    env["KUBECACHEDIR"] = str(layout.kube_cache_dir)
    return env


def find_kubectl() -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise EnvspecError(
            "kubectl is not on PATH: install it (https://kubernetes.io/docs/tasks/tools/, "
            "or the `kubectl` package from pkgs.k8s.io); the local cluster uses it for health checks"
        )
    return kubectl


@dataclass(frozen=True)
class KwokConfig:
    """The parts of kwokctl's saved kwok.yaml we rely on."""

    ports: dict[str, list[int]] = field(default_factory=dict)
    apiserver_port: int | None = None


def parse_kwok_config(text: str) -> KwokConfig | None:
    """None when the file is not a usable KwokctlConfiguration (half-written, foreign)."""
    from ruamel.yaml import YAML  # only needed here; keeps `envspec --help` fast

    try:
        # kwok.yaml is a multi-document stream: the configuration plus kwok's Stage objects.
        documents = list(YAML(typ="safe").load_all(text))
    except Exception:
        return None
    data = next((d for d in documents if isinstance(d, dict) and d.get("kind") == "KwokctlConfiguration"), None)
    if data is None:
        return None
    components = data.get("components")
    if not isinstance(components, list) or not components:
        return None
    ports: dict[str, list[int]] = {}
    for component in components:
        if isinstance(component, dict) and isinstance(component.get("name"), str):
            ports[component["name"]] = [
                int(p["port"]) for p in component.get("ports") or [] if isinstance(p, dict) and "port" in p
            ]
    options = data.get("options") or {}
    port = options.get("kubeApiserverPort") if isinstance(options, dict) else None
    return KwokConfig(ports=ports, apiserver_port=int(port) if port else None)


# --- the provider ----------------------------------------------------------------------


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
        pid = read_pid_file(self.cluster_dir / "pids" / f"{component}.pid")
        if pid is None or not pid_alive(pid):
            return None
        # kwokctl execs <cluster dir>/bin/<component> (a symlink into the binary cache);
        # a pid running anything else was reused by another process after we died.
        if process_argv0(pid) != str(self.cluster_dir / "bin" / component):
            return None
        return pid

    def components(self) -> tuple[ComponentState, ...]:
        states = []
        for name in COMPONENTS:
            pid = self.our_pid(name)
            states.append(ComponentState(name, pid, rss_bytes(pid) if pid else None))
        return tuple(states)

    def remove_stale_pid_files(self) -> list[str]:
        removed = []
        pids_dir = self.cluster_dir / "pids"
        for pid_file in sorted(pids_dir.glob("*.pid")) if pids_dir.is_dir() else []:
            if self.our_pid(pid_file.stem) is None:
                pid_file.unlink(missing_ok=True)
                removed.append(pid_file.stem)
        return removed

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
        result = run(
            [kubectl, "--kubeconfig", str(self.kubeconfig), "--request-timeout=10s", *args],
            env=self.env,
            timeout=timeout,
        )
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
        self.config_path.write_text(json.dumps(kwokctl_config(kubectl), indent=2) + "\n")
        reason = self._reuse_or_restart(bins, kubectl)
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
            self._ensure_nodes(bins, kubectl)
            self._wait_ready(kubectl, READY_TIMEOUT)
        server = self.server() or "?"
        return ClusterInfo(self.name, self.provider, str(self.kubeconfig), server)

    def _reuse_or_restart(self, bins: Binaries, kubectl: str) -> str | None:
        """Bring an existing cluster back; return why it must be recreated instead, if so."""
        if not self.exists:
            return "absent"
        config = self.saved_config()
        if config is None:
            return "stale directory without a valid kwok.yaml (half-created)"
        changed = self.binaries_changed(bins)
        if changed:
            return "built for other binaries (" + ", ".join(changed) + ")"
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
        result = self._kwokctl([*kwokctl_base(bins, self.config_path, self.name), "get", "kubeconfig"], timeout=60)
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
        _stop_processes([c.pid for c in self.components() if c.pid is not None])
        shutil.rmtree(self.cluster_dir, ignore_errors=True)

    def _kwokctl(self, cmd: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        result = run(cmd, env=self.env, timeout=timeout)
        with self.log_path.open("a") as log:
            log.write(f"\n$ {' '.join(cmd)}\n# exit {result.returncode}\n{result.stdout}{result.stderr}")
        return result


def _stop_processes(pids: list[int], grace: float = 10.0) -> None:
    """SIGTERM all at once, SIGKILL whatever is left after `grace` seconds."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
