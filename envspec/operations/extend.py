"""`extend` and `watch`'s keep-alive: push an environment's expiry to now + ttl.

A renewal is one JSON merge patch of the namespace's two expiry annotations
(`envspec.dev/expires-at` and kube-janitor's `janitor/expires`, the same instant).
`extend` first checks that envspec manages the namespace and that it can expire at
all; the keep-alive of `watch` renews the environment it has just brought up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from envspec.errors import EnvspecError
from envspec.events import Emitter, LeaseRenewed
from envspec.kube import kinds
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.ssa import merge_patch
from envspec.lifecycle.expiry import Clock
from envspec.meta import (
    EXPIRES_AT_ANNOTATION,
    TTL_ANNOTATION,
    annotations_of,
    environment_of,
    format_instant,
    lease_patch,
    metadata_of,
    name_of,
    never_expires,
)
from envspec.operations.environments import EnvironmentRef, find_namespace, require_managed
from envspec.runner import LEASE_FIELD_MANAGER
from envspec.units import parse_duration

REQUEST_DEADLINE_SECONDS = 30.0


@dataclass(frozen=True)
class Extension:
    environment: str
    namespace: str
    expires_at: datetime
    ttl_seconds: int
    previous: str | None  # the expiry before, as it was written

    def resources(self) -> tuple[str, ...]:
        return (f"namespace/{self.namespace}",)


async def renew(
    api: Any,
    namespace: str,
    ttl_seconds: int,
    *,
    clock: Clock,
    deadline: Deadline,
    events: Emitter,
    previous: str | None = None,
) -> datetime:
    """Set the namespace's expiry to now + ttl (one patch); the new expiry."""
    expires_at = clock() + timedelta(seconds=ttl_seconds)
    await merge_patch(
        api,
        kinds.NAMESPACE,
        namespace,
        None,
        lease_patch(expires_at),
        field_manager=LEASE_FIELD_MANAGER,
        deadline=deadline,
        doing=f"extending the expiry of namespace/{namespace}",
    )
    events.emit(LeaseRenewed(namespace, format_instant(expires_at), previous))
    return expires_at


def ttl_of(namespace: dict[str, Any]) -> int:
    """The ttl the environment was brought up with (`envspec.dev/ttl`), in seconds."""
    text = str(annotations_of(namespace).get(TTL_ANNOTATION, ""))
    try:
        return parse_duration(text)
    except ValueError:
        raise EnvspecError(
            f"namespace {name_of(namespace)} has no usable {TTL_ANNOTATION} annotation ({text!r}): give --ttl"
        ) from None


async def extend(
    target: ClusterTarget,
    ref: EnvironmentRef,
    *,
    ttl_seconds: int | None,
    clock: Clock,
    events: Emitter,
) -> Extension:
    """`envspec extend`: expiry := now + ttl (the environment's own ttl when `ttl_seconds` is None).

    Refused (EnvspecError): a namespace envspec does not manage, one already being
    deleted, and an environment with `ttl: never`, which has no expiry to push.
    """
    deadline = Deadline(REQUEST_DEADLINE_SECONDS)
    async with connect(target) as api:
        namespace = await find_namespace(api, ref, deadline=deadline)
        if namespace is None:
            raise EnvspecError(f"{ref.describe()} is not on the cluster")
        require_managed(namespace, "extend")
        name = name_of(namespace)
        environment = environment_of(namespace) or ref.environment
        if metadata_of(namespace).get("deletionTimestamp"):
            raise EnvspecError(f"environment {environment} (namespace {name}) is already being deleted")
        if never_expires(namespace):
            raise EnvspecError(f"environment {environment} never expires (ttl: never): there is no expiry to extend")
        ttl = ttl_seconds if ttl_seconds is not None else ttl_of(namespace)
        previous = annotations_of(namespace).get(EXPIRES_AT_ANNOTATION)
        expires_at = await renew(
            api, name, ttl, clock=clock, deadline=deadline, events=events.about(environment, name), previous=previous
        )
    return Extension(environment, name, expires_at, ttl, previous)
