"""The kwok provider, in three parts:

commands   pure: kwokctl's configuration, command lines and environment
processes  which control-plane processes are ours, stopping them, logged kwokctl runs
provider   KwokCluster: reuse, restart or recreate a cluster and wait until it is ready
"""

from envspec.cluster.info import ClusterInfo, ClusterStatus, ComponentState
from envspec.cluster.kwok.commands import (
    BIND_ADDRESS,
    NODE_COUNT,
    KwokConfig,
    config_fingerprint,
    create_command,
    delete_command,
    kwok_env,
    kwokctl_config,
    kwokctl_documents,
    parse_kwok_config,
    render_documents,
    scale_nodes_command,
    start_command,
)
from envspec.cluster.kwok.processes import COMPONENTS
from envspec.cluster.kwok.provider import KwokCluster

__all__ = [
    "BIND_ADDRESS",
    "COMPONENTS",
    "NODE_COUNT",
    "ClusterInfo",
    "ClusterStatus",
    "ComponentState",
    "KwokCluster",
    "KwokConfig",
    "config_fingerprint",
    "create_command",
    "delete_command",
    "kwok_env",
    "kwokctl_config",
    "kwokctl_documents",
    "parse_kwok_config",
    "render_documents",
    "scale_nodes_command",
    "start_command",
]
