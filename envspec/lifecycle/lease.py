"""`envspec extend` and `watch`'s keep-alive: push an environment's expiry to now + ttl.

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
from envspec.events import LeaseRenewed
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.environments import EnvironmentRef, find_namespace, require_managed
from envspec.lifecycle.expiry import Clock, format_instant, lease_patch, never_expires, parse_expiry
from envspec.lifecycle.output import LifecycleSink
from envspec.lifecycle.requests import merge_patch_namespace
from envspec.plan import ENVIRONMENT_LABEL, EXPIRES_AT_ANNOTATION, TTL_ANNOTATION, labels_of
from envspec.units import format_duration, parse_duration

REQUEST_DEADLINE_SECONDS = 30.0


@dataclass(frozen=True)
class Extension:
    environment: str
    namespace: str
    expires_at: datetime
    ttl_seconds: int
    previous: str | None  # the expiry before, as it was written


async def renew(
    api: Any, namespace: str, ttl_seconds: int, *, clock: Clock, deadline: Deadline, sink: LifecycleSink
) -> datetime:
    """Set the namespace's expiry to now + ttl (one patch); the new expiry."""
    expires_at = clock() + timedelta(seconds=ttl_seconds)
    await merge_patch_namespace(
        api,
        namespace,
        lease_patch(expires_at),
        deadline=deadline,
        doing=f"extending the expiry of namespace/{namespace}",
    )
    sink.emit(LeaseRenewed(namespace, format_instant(expires_at)))
    return expires_at


def ttl_of(namespace: dict[str, Any]) -> int:
    """The ttl the environment was brought up with (`envspec.dev/ttl`), in seconds."""
    metadata = namespace.get("metadata") or {}
    text = str((metadata.get("annotations") or {}).get(TTL_ANNOTATION, ""))
    try:
        return parse_duration(text)
    except ValueError:
        raise EnvspecError(
            f"namespace {metadata.get('name')} has no usable {TTL_ANNOTATION} annotation ({text!r}): give --ttl"
        ) from None


async def extend_environment(
    target: ClusterTarget,
    ref: EnvironmentRef,
    *,
    ttl_seconds: int | None,
    clock: Clock,
    sink: LifecycleSink,
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
        metadata = namespace.get("metadata") or {}
        name = str(metadata["name"])
        environment = labels_of(namespace).get(ENVIRONMENT_LABEL, ref.environment)
        if metadata.get("deletionTimestamp"):
            raise EnvspecError(f"environment {environment} (namespace {name}) is already being deleted")
        if never_expires(namespace):
            raise EnvspecError(f"environment {environment} never expires (ttl: never): there is no expiry to extend")
        ttl = ttl_seconds if ttl_seconds is not None else ttl_of(namespace)
        previous = (metadata.get("annotations") or {}).get(EXPIRES_AT_ANNOTATION)
        expires_at = await renew(api, name, ttl, clock=clock, deadline=deadline, sink=sink)
    return Extension(environment, name, expires_at, ttl, previous)


def describe_extension(extension: Extension) -> str:
    """`extended environment quickstart (namespace ...): expires at 2026-01-01T14:00:00Z, in 2h (was ...)`."""
    text = (
        f"extended environment {extension.environment} (namespace {extension.namespace}): "
        f"expires at {format_instant(extension.expires_at)}, in {format_duration(extension.ttl_seconds)}"
    )
    if extension.previous:
        try:
            before = format_instant(parse_expiry(extension.previous))
        except ValueError:
            before = repr(extension.previous)
        text += f" (was {before})"
    return text


def extend(
    target: ClusterTarget, ref: EnvironmentRef, *, ttl_seconds: int | None, clock: Clock, sink: LifecycleSink
) -> Extension:
    """`envspec extend`: the one `anyio.run` of the command."""
    import anyio

    async def main() -> Extension:
        return await extend_environment(target, ref, ttl_seconds=ttl_seconds, clock=clock, sink=sink)

    return anyio.run(main)
