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

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from envspec.events import format_span
from envspec.plan import (
    ENVIRONMENT_LABEL,
    EXPIRES_AT_ANNOTATION,
    JANITOR_EXPIRES_ANNOTATION,
    TTL_ANNOTATION,
    is_managed,
)
from envspec.units import NEVER

Clock = Callable[[], datetime]
"""Returns the current time as an aware datetime; tests pass a fixed one."""

# How long a namespace may stay Terminating before gc reports what holds it. Deleting
# an environment's namespace takes seconds; minutes mean a finalizer or an
# unreachable API group is blocking it.
DEFAULT_STUCK_AFTER_SECONDS = 300.0

# RFC 3339 date-time: seconds required, fraction optional, offset required.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
# kube-janitor's other two formats, both read as UTC.
_JANITOR_MINUTES = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")
_JANITOR_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

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


def format_instant(instant: datetime) -> str:
    """`2026-01-01T12:00:00Z`: RFC 3339, UTC, whole seconds (also kube-janitor's format)."""
    if instant.tzinfo is None:
        raise ValueError("an expiry must be an aware datetime")
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_expiry(text: str) -> datetime:
    """The instant of an expiry annotation, as an aware UTC datetime; ValueError if unreadable.

    Accepts RFC 3339 (`2026-01-01T12:00:00Z`, `...12:00:00.5+02:00`; `t`/`z` in either
    case) and kube-janitor's `YYYY-MM-DDTHH:MM` and `YYYY-MM-DD` (midnight), both UTC.
    Anything else, including a time without an offset but with seconds, is refused
    rather than guessed: gc must never delete on a misread date.
    """
    if not isinstance(text, str):
        raise ValueError(f"not a string: {text!r}")
    value = text.strip()
    upper = value.upper()
    if _RFC3339.match(upper):
        parsed = datetime.fromisoformat(upper.replace("Z", "+00:00"))
    elif _JANITOR_MINUTES.match(value) or _JANITOR_DATE.match(value):
        parsed = datetime.fromisoformat(value).replace(tzinfo=UTC)
    else:
        raise ValueError(
            f"{text!r} is not an RFC 3339 time such as 2026-01-01T12:00:00Z "
            "(nor kube-janitor's YYYY-MM-DDTHH:MM or YYYY-MM-DD)"
        )
    return parsed.astimezone(UTC)


def expiry_after(now: datetime, ttl_seconds: int | None) -> datetime | None:
    """now + ttl, or None for `never`."""
    return None if ttl_seconds is None else now + timedelta(seconds=ttl_seconds)


def lease_patch(expires_at: datetime) -> dict[str, Any]:
    """A merge patch setting both expiry annotations of a namespace to `expires_at`."""
    text = format_instant(expires_at)
    return {"metadata": {"annotations": {EXPIRES_AT_ANNOTATION: text, JANITOR_EXPIRES_ANNOTATION: text}}}


def never_expires(namespace: Mapping[str, Any]) -> bool:
    return _annotations(namespace).get(TTL_ANNOTATION, "").strip() == NEVER


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
    metadata = namespace.get("metadata") or {}
    name = str(metadata.get("name", ""))
    environment = str((metadata.get("labels") or {}).get(ENVIRONMENT_LABEL, ""))
    created = _timestamp(metadata.get("creationTimestamp"))
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
    deleting_since = _timestamp(metadata.get("deletionTimestamp"))
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
    raw = _annotations(namespace).get(EXPIRES_AT_ANNOTATION)
    if raw is None:
        return verdict(Action.MISSING, f"no {EXPIRES_AT_ANNOTATION} annotation and ttl is not 'never'")
    try:
        expires = parse_expiry(raw)
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


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    annotations: Mapping[str, str] = (obj.get("metadata") or {}).get("annotations") or {}
    return annotations


def _timestamp(value: Any) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339), or None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return parse_expiry(value)
    except ValueError:
        return None


def _span(seconds: float) -> str:
    """`45s`, `12m`, `1h59m`, `2d3h`: coarse, for people (the formatter every command uses)."""
    return format_span(max(0.0, seconds))
