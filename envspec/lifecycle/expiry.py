"""When an environment expires, and what gc decides about a namespace. Pure: no I/O, no clock.

An environment's namespace carries its expiry as an instant, written by `up`, `extend`
and `watch`'s keep-alive:

- `envspec.dev/expires-at: 2026-01-01T12:00:00Z` (RFC 3339, UTC, whole seconds): the one
  envspec reads;
- `janitor/expires` with the same text, so a cluster that runs kube-janitor deletes the
  namespace at the same moment (the text is kube-janitor's first accepted format).

`envspec.dev/ttl` holds the spec's ttl as written (`2h`, `never`). `never` always wins:
such a namespace is never deleted, even if an older expiry was left behind on it.

Times are passed in (`now`), so every decision can be tested to the second; callers
take them from a `Clock`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from envspec.meta import (
    EXPIRES_AT_ANNOTATION,
    annotations_of,
    environment_of,
    format_instant,
    format_span,
    is_managed,
    metadata_of,
    never_expires,
    parse_instant,
    timestamp_of,
)

Clock = Callable[[], datetime]
"""Returns the current time as an aware datetime; tests pass a fixed one."""

# How long a namespace may stay Terminating before gc reports what holds it. Deleting
# an environment's namespace takes seconds; minutes mean a finalizer or an
# unreachable API group is blocking it.
DEFAULT_STUCK_AFTER_SECONDS = 300.0

# Namespace conditions the namespace controller sets while deletion cannot finish.
_BLOCKING_CONDITIONS = (
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
    "NamespaceDeletionContentFailure",
    "NamespaceContentRemaining",
    "NamespaceFinalizersRemaining",
)


def system_clock() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- gc's decision


class Action(StrEnum):
    """What gc does with one namespace."""

    DELETE = "delete"  # a valid expiry in the past
    KEEP = "keep"  # a valid expiry in the future
    NEVER = "never"  # ttl: never
    MISSING = "missing-expiry"  # managed, no expiry and not `never`: reported, left alone
    INVALID = "invalid-expiry"  # an expiry envspec cannot read: reported, left alone
    TERMINATING = "terminating"  # already being deleted
    STUCK = "stuck"  # Terminating for longer than the limit: reported with its blockers
    UNMANAGED = "unmanaged"  # no managed-by label: never touched, whatever else it carries


@dataclass(frozen=True)
class Verdict:
    namespace: str
    environment: str
    uid: str
    resource_version: str
    action: Action
    reason: str  # one human sentence
    expires_at: datetime | None = None
    age_seconds: float | None = None
    expired_seconds_ago: float | None = None
    terminating_seconds: float | None = None
    blockers: tuple[str, ...] = ()

    @property
    def expires_text(self) -> str:
        return format_instant(self.expires_at) if self.expires_at is not None else ""


def judge(namespace: Mapping[str, Any], now: datetime, *, stuck_after: float = DEFAULT_STUCK_AFTER_SECONDS) -> Verdict:
    """gc's decision about one live namespace at `now`.

    The managed-by label is checked here again although gc lists by that label: a
    decision to delete must not depend on how the caller happened to list.
    """
    metadata = metadata_of(namespace)
    name = str(metadata.get("name", ""))
    environment = environment_of(namespace) or ""
    created = timestamp_of(metadata.get("creationTimestamp"))
    age = (now - created).total_seconds() if created is not None else None

    def verdict(action: Action, reason: str, **details: Any) -> Verdict:
        return Verdict(
            namespace=name,
            environment=environment,
            uid=str(metadata.get("uid", "")),
            resource_version=str(metadata.get("resourceVersion", "")),
            action=action,
            reason=reason,
            age_seconds=age,
            **details,
        )

    if not is_managed(namespace):
        return verdict(Action.UNMANAGED, "not managed by envspec")
    deleting_since = timestamp_of(metadata.get("deletionTimestamp"))
    if metadata.get("deletionTimestamp") is not None:
        terminating = (now - deleting_since).total_seconds() if deleting_since is not None else 0.0
        if terminating >= stuck_after:
            blockers = deletion_blockers(namespace)
            return verdict(
                Action.STUCK,
                f"Terminating for {_span(terminating)}: " + ("; ".join(blockers) or "no condition says why"),
                terminating_seconds=terminating,
                blockers=blockers,
            )
        return verdict(Action.TERMINATING, "already being deleted", terminating_seconds=terminating)
    if never_expires(namespace):
        return verdict(Action.NEVER, "ttl never: never expires")
    raw = annotations_of(namespace).get(EXPIRES_AT_ANNOTATION)
    if raw is None:
        return verdict(Action.MISSING, f"no {EXPIRES_AT_ANNOTATION} annotation and ttl is not 'never'")
    try:
        expires = parse_instant(raw)
    except ValueError as exc:
        return verdict(Action.INVALID, f"{EXPIRES_AT_ANNOTATION}: {exc}")
    left = (expires - now).total_seconds()
    if left > 0:
        return verdict(Action.KEEP, f"expires in {_span(left)}", expires_at=expires)
    age_text = f", age {_span(age)}" if age is not None else ""
    return verdict(
        Action.DELETE,
        f"expired at {format_instant(expires)} ({_span(-left)} ago){age_text}",
        expires_at=expires,
        expired_seconds_ago=-left,
    )


def deletion_blockers(namespace: Mapping[str, Any]) -> tuple[str, ...]:
    """What holds a Terminating namespace: the controller's failure conditions, then finalizers."""
    blockers: list[str] = []
    for condition in (namespace.get("status") or {}).get("conditions") or []:
        if condition.get("type") in _BLOCKING_CONDITIONS and condition.get("status") == "True":
            message = condition.get("message") or condition.get("reason") or ""
            blockers.append(f"{condition['type']}: {message}".rstrip(": "))
    metadata_finalizers = (namespace.get("metadata") or {}).get("finalizers") or []
    if metadata_finalizers:
        blockers.append("metadata.finalizers: " + ", ".join(map(str, metadata_finalizers)))
    spec_finalizers = (namespace.get("spec") or {}).get("finalizers") or []
    if spec_finalizers and not blockers:
        # `kubernetes` stays in spec.finalizers until the content is gone; it explains
        # the wait only when nothing more specific does.
        blockers.append("spec.finalizers: " + ", ".join(map(str, spec_finalizers)))
    return tuple(blockers)


def _span(seconds: float) -> str:
    """`45s`, `12m`, `1h59m`, `2d3h`: coarse, for people (the formatter every command uses)."""
    return format_span(max(0.0, seconds))
