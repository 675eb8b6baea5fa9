"""`down`: delete an environment's namespace (refusing one envspec does not manage) and wait until it is gone."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from envspec.events import Emitter, NamespaceDeleted, NamespaceDeleting
from envspec.kube import kinds
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.ssa import delete_object, list_objects
from envspec.kube.wait import Target, cluster_view, wait_gone
from envspec.meta import belongs_to, environment_of, environment_selector, metadata_of, name_of
from envspec.operations.environments import EnvironmentRef, find_namespace, require_managed


@dataclass(frozen=True)
class DownResult:
    environment: str
    namespace: str | None  # None: there was nothing to delete
    deleted: tuple[str, ...] = ()  # cluster-scoped objects deleted besides the namespace
    seconds: float = 0.0
    waited: bool = True

    def resources(self) -> tuple[str, ...]:
        return ((f"namespace/{self.namespace}",) if self.namespace else ()) + self.deleted


async def down(
    target: ClusterTarget, ref: EnvironmentRef, *, events: Emitter, wait: bool, deadline: Deadline
) -> DownResult:
    """Delete the environment's namespace and its cluster-scoped objects; with `wait`, until the namespace is gone."""
    started = time.monotonic()
    async with connect(target) as api:
        namespace = await find_namespace(api, ref, deadline=deadline)
        if namespace is None:
            return DownResult(ref.environment, None)
        require_managed(namespace, "delete")
        name = name_of(namespace)
        environment = environment_of(namespace) or ref.environment
        events = events.about(environment, name)
        events.emit(NamespaceDeleting(environment, name))
        await delete_object(api, kinds.NAMESPACE, name, None, deadline=deadline, uid=metadata_of(namespace).get("uid"))
        # Cluster-scoped objects of the environment are not inside the namespace: delete them too.
        deleted = await _delete_cluster_scoped(api, environment, deadline=deadline)
        if wait:
            async with cluster_view(api) as view:
                await wait_gone(view, [Target(kinds.NAMESPACE, name, None)], deadline=deadline)
            events.emit(NamespaceDeleted(environment, name, time.monotonic() - started))
        return DownResult(environment, name, deleted, time.monotonic() - started, wait)


async def _delete_cluster_scoped(api: Any, environment: str, *, deadline: Deadline) -> tuple[str, ...]:
    deleted: list[str] = []
    for rtype in kinds.MANAGED_KINDS.values():
        if rtype.namespaced or rtype.kind == "Namespace":
            continue
        listing = await list_objects(
            api, rtype, None, deadline=deadline, label_selector=environment_selector(environment)
        )
        for item in listing.items:
            if belongs_to(item, environment):
                name = name_of(item)
                await delete_object(api, rtype, name, None, deadline=deadline, uid=metadata_of(item).get("uid"))
                deleted.append(rtype.ref(name))
    return tuple(deleted)
