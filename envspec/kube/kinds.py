"""Where each kind envspec handles lives in the API: group/version, plural, scope.

A static table rather than discovery: the kinds are few and known, and looking
them up costs no request. `resource_type` falls back to the API server's
discovery for anything else so a new kind from the compiler still works.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ResourceType:
    """How to address objects of one kind in the REST API."""

    api_version: str  # "v1", "apps/v1"
    kind: str
    plural: str
    namespaced: bool

    @property
    def base(self) -> str:
        """The API root: core kinds live under /api, every group under /apis."""
        return "/api" if "/" not in self.api_version else "/apis"

    def location(self, name: str | None = None, namespace: str | None = None) -> dict[str, str | None]:
        """Keyword arguments for kr8s `Api.call_api` addressing one object or the collection.

        `namespace=None` on a namespaced kind addresses every namespace (list, watch).
        """
        return {
            "base": self.base,
            "version": self.api_version,
            "namespace": namespace if self.namespaced else None,
            "url": self.plural if name is None else f"{self.plural}/{name}",
        }

    def ref(self, name: str) -> str:
        """`deployment/api`, the form kubectl prints."""
        return f"{self.kind.lower()}/{name}"


def _table(*types: ResourceType) -> dict[tuple[str, str], ResourceType]:
    return {(t.api_version, t.kind): t for t in types}


# The kinds the compiler emits, in Helm's install order. `envspec up` lists each of
# them to find objects to prune, so the list also bounds what prune can see.
MANAGED_KINDS: dict[tuple[str, str], ResourceType] = _table(
    ResourceType("v1", "Namespace", "namespaces", namespaced=False),
    ResourceType("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", namespaced=True),
    ResourceType("v1", "ResourceQuota", "resourcequotas", namespaced=True),
    ResourceType("v1", "LimitRange", "limitranges", namespaced=True),
    ResourceType("v1", "ServiceAccount", "serviceaccounts", namespaced=True),
    ResourceType("v1", "Secret", "secrets", namespaced=True),
    ResourceType("v1", "ConfigMap", "configmaps", namespaced=True),
    ResourceType("v1", "PersistentVolumeClaim", "persistentvolumeclaims", namespaced=True),
    ResourceType("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", namespaced=False),
    ResourceType("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
    ResourceType("rbac.authorization.k8s.io/v1", "Role", "roles", namespaced=True),
    ResourceType("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", namespaced=True),
    ResourceType("v1", "Service", "services", namespaced=True),
    ResourceType("apps/v1", "Deployment", "deployments", namespaced=True),
    ResourceType("apps/v1", "StatefulSet", "statefulsets", namespaced=True),
    ResourceType("batch/v1", "Job", "jobs", namespaced=True),
)

# Kinds envspec only reads, to explain why a workload is not ready.
POD = ResourceType("v1", "Pod", "pods", namespaced=True)
REPLICA_SET = ResourceType("apps/v1", "ReplicaSet", "replicasets", namespaced=True)
EVENT = ResourceType("v1", "Event", "events", namespaced=True)
STORAGE_CLASS = ResourceType("storage.k8s.io/v1", "StorageClass", "storageclasses", namespaced=False)
NAMESPACE = MANAGED_KINDS[("v1", "Namespace")]
SECRET = MANAGED_KINDS[("v1", "Secret")]

_KNOWN: dict[tuple[str, str], ResourceType] = {
    **MANAGED_KINDS,
    **_table(POD, REPLICA_SET, EVENT, STORAGE_CLASS),
}


def known_type(api_version: str, kind: str) -> ResourceType | None:
    """The type from the static table, or None for a kind envspec does not know."""
    return _KNOWN.get((api_version, kind))


def type_of(manifest: Mapping[str, Any]) -> ResourceType | None:
    return known_type(str(manifest.get("apiVersion", "")), str(manifest.get("kind", "")))
