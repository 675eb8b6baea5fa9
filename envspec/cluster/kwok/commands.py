"""Pure pieces of the kwok provider: kwokctl's configuration, its command lines, its environment.

Nothing here starts a process or touches the cluster; the provider runs what these build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envspec.cluster.build import ETCD_VERSION, KUBERNETES_VERSION, KWOK_VERSION, Binaries
from envspec.cluster.paths import Layout
from envspec.errors import EnvspecError
from envspec.resources import data_dir

NODE_COUNT = 2
BIND_ADDRESS = "127.0.0.1"
# Served from kwok's CRDs rather than the static configuration, so that tests can point a
# pod's (or a namespace's) container logs at a file while the cluster runs.
LOG_CRDS = ("Logs", "ClusterLogs")


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
            "enableCRDs": list(LOG_CRDS),
        },
    }


def stages() -> list[dict[str, Any]]:
    """kwok's Stage objects from templates/kwok/: nodes and pods as kwokctl's fast defaults,
    plus the pod stages driven by annotations."""
    from ruamel.yaml import YAML  # only needed here; keeps `envspec --help` fast

    documents: list[dict[str, Any]] = []
    for path in sorted((data_dir("templates") / "kwok").glob("*.yaml")):
        documents.extend(d for d in YAML(typ="safe").load_all(path.read_text()) if isinstance(d, dict))
    return documents


def kwokctl_documents(kubectl: str) -> list[dict[str, Any]]:
    """Everything passed with -c: the KwokctlConfiguration, then the Stage objects."""
    return [kwokctl_config(kubectl), *stages()]


def render_documents(documents: list[dict[str, Any]]) -> str:
    """A multi-document YAML stream (each document written as JSON, which is YAML)."""
    return "---\n".join(json.dumps(document, indent=2) + "\n" for document in documents)


def config_fingerprint(documents: list[dict[str, Any]]) -> str:
    """Identifies what a cluster was created with, to recreate clusters of an older configuration.

    The kubectl path is left out: it is found on PATH and changes nothing in the cluster.
    """
    canonical = json.loads(json.dumps(documents))
    for document in canonical:
        if document.get("kind") == "KwokctlConfiguration":
            document.get("options", {}).pop("kubectlBinary", None)
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()[:16]


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


def get_kubeconfig_command(bins: Binaries, config: Path, name: str) -> list[str]:
    return [*kwokctl_base(bins, config, name), "get", "kubeconfig"]


def kubectl_command(kubectl: str, kubeconfig: Path, *args: str) -> list[str]:
    return [kubectl, "--kubeconfig", str(kubeconfig), "--request-timeout=10s", *args]


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
