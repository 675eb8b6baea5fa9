"""The local Kubernetes cluster for development and CI: `envspec cluster up/down/status`.

Two providers: kwok (default without Docker) runs a real control plane built from Go
modules, with simulated nodes; kind runs real nodes in Docker containers. The modules:

    paths     the cache directory layout
    gomod     pure go.mod parsing and wrapper-module generation
    build     building and caching the kwok provider's binaries
    info      what a provider reports (ClusterInfo, ClusterStatus)
    kwok/     the kwok provider (kwokctl, binary runtime): commands, processes, provider
    kind      the kind provider
    provider  provider choice and the up/down/status entry points
"""

from envspec.cluster.info import ClusterInfo, ClusterStatus
from envspec.cluster.paths import DEFAULT_NAME
from envspec.cluster.provider import PROVIDERS, cluster_down, cluster_status, cluster_up, kubeconfig_path

__all__ = [
    "DEFAULT_NAME",
    "PROVIDERS",
    "ClusterInfo",
    "ClusterStatus",
    "cluster_down",
    "cluster_status",
    "cluster_up",
    "kubeconfig_path",
]
