"""Object metadata envspec reads and writes, and time as it appears in it. Pure.

Every label and annotation name, the selectors built from them, the identity of an
object across API versions, and the one parser every reader of an expiry goes
through. Nothing else in envspec spells these names or parses these times.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from envspec.units import NEVER

Manifest = dict[str, Any]

# ---------------------------------------------------------------- names

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "envspec"
ENVIRONMENT_LABEL = "envspec.dev/environment"
WAVE_ANNOTATION = "envspec.dev/wave"
TTL_ANNOTATION = "envspec.dev/ttl"
EXPIRES_AT_ANNOTATION = "envspec.dev/expires-at"
PLAN_HASH_ANNOTATION = "envspec.dev/plan-hash"
OBJECT_HASH_ANNOTATION = "envspec.dev/object-hash"
SPEC_NAME_ANNOTATION = "envspec.dev/spec-name"
JANITOR_EXPIRES_ANNOTATION = "janitor/expires"  # kube-janitor's, kept equal to ours
# On the Jobs (and pods) of `envspec test`: the test and the run that created them.
TEST_LABEL = "envspec.dev/test"
TEST_RUN_LABEL = "envspec.dev/test-run"
RESERVED_ANNOTATION_PREFIX = "envspec.dev/"

# Written on the namespace by every `up`: the lease (both expiries) and the plan hash.
EXPIRY_ANNOTATIONS = (EXPIRES_AT_ANNOTATION, JANITOR_EXPIRES_ANNOTATION)
LEASE_ANNOTATIONS = (*EXPIRY_ANNOTATIONS, PLAN_HASH_ANNOTATION)

MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"


def environment_selector(environment: str) -> str:
    """The label selector of everything envspec manages for one environment."""
    return f"{MANAGED_SELECTOR},{ENVIRONMENT_LABEL}={environment}"


# ---------------------------------------------------------------- reading objects


def metadata_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata: Mapping[str, Any] = obj.get("metadata") or {}
    return metadata


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    labels: Mapping[str, str] = metadata_of(obj).get("labels") or {}
    return labels


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    annotations: Mapping[str, str] = metadata_of(obj).get("annotations") or {}
    return annotations


def name_of(obj: Mapping[str, Any]) -> str:
    return str(metadata_of(obj).get("name", ""))


def is_managed(obj: Mapping[str, Any]) -> bool:
    """True when envspec owns the object (it carries the managed-by label)."""
    return labels_of(obj).get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE


def environment_of(obj: Mapping[str, Any]) -> str | None:
    return labels_of(obj).get(ENVIRONMENT_LABEL)


def belongs_to(obj: Mapping[str, Any], environment: str) -> bool:
    """Managed by envspec and labelled for this environment: the only objects envspec deletes."""
    return is_managed(obj) and environment_of(obj) == environment


def is_test_run_object(obj: Mapping[str, Any]) -> bool:
    """An object a test run created (a Job or its pods): not part of the environment's plan.

    Reconcile never prunes these, and status and diff do not list them: they stay for
    inspection until a later run prunes them or the environment is deleted.
    """
    return is_managed(obj) and bool(labels_of(obj).get(TEST_RUN_LABEL))


def wave_of(obj: Mapping[str, Any]) -> int | None:
    try:
        return int(annotations_of(obj).get(WAVE_ANNOTATION, ""))
    except ValueError:
        return None


# (API group, kind, namespace, name): the identity of an object across API versions.
ObjectKey = tuple[str, str, str | None, str]


def key_of(obj: Mapping[str, Any]) -> ObjectKey:
    metadata = metadata_of(obj)
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    namespace = metadata.get("namespace")
    return (group, str(obj.get("kind")), None if namespace is None else str(namespace), str(metadata["name"]))


def ref_of(obj: Mapping[str, Any]) -> str:
    """`kind/name` in kubectl's lower-case form, e.g. `deployment/api`."""
    return f"{str(obj.get('kind', '')).lower()}/{metadata_of(obj).get('name')}"


# ---------------------------------------------------------------- time

# RFC 3339 date-time: seconds required, fraction optional, offset required.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
# kube-janitor's other two formats, both read as UTC.
_JANITOR_MINUTES = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")
_JANITOR_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def format_instant(instant: datetime) -> str:
    """`2026-01-01T12:00:00Z`: RFC 3339, UTC, whole seconds (also kube-janitor's first format)."""
    if instant.tzinfo is None:
        raise ValueError("an instant must be an aware datetime")
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_instant_ms(instant: datetime) -> str:
    """`2026-01-01T12:00:00.123Z`: the event timestamps."""
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(text: object) -> datetime:
    """An expiry or timestamp as an aware UTC datetime; ValueError if unreadable.

    Accepts RFC 3339 (`2026-01-01T12:00:00Z`, `...12:00:00.5+02:00`; `t`/`z` in either
    case) and kube-janitor's `YYYY-MM-DDTHH:MM` and `YYYY-MM-DD` (midnight), both UTC.
    Anything else, including a time with seconds but no offset, is refused rather
    than guessed: gc must never delete on a misread date.
    """
    if not isinstance(text, str):
        raise ValueError(f"not a string: {text!r}")
    value = text.strip()
    upper = value.upper()
    try:
        if _RFC3339.match(upper):
            parsed = datetime.fromisoformat(upper.replace("Z", "+00:00"))
        elif _JANITOR_MINUTES.match(value) or _JANITOR_DATE.match(value):
            parsed = datetime.fromisoformat(value).replace(tzinfo=UTC)
        else:
            raise ValueError("unrecognised form")
    except ValueError:
        raise ValueError(
            f"{text!r} is not an RFC 3339 time such as 2026-01-01T12:00:00Z "
            "(nor kube-janitor's YYYY-MM-DDTHH:MM or YYYY-MM-DD)"
        ) from None
    return parsed.astimezone(UTC)


def format_span(seconds: float) -> str:
    """Coarse human duration: `45s`, `12m`, `1h59m`, `2d3h`."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        hours, minutes = divmod(whole // 60, 60)
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(whole // 3600, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def timestamp_of(value: object) -> datetime | None:
    """A Kubernetes timestamp (creationTimestamp, ...), or None when absent or unreadable."""
    try:
        return parse_instant(value)
    except ValueError:
        return None


def expiry_of(obj: Mapping[str, Any]) -> datetime | None:
    """The namespace's expiry; None when it has none. ValueError when it has an unreadable one."""
    raw = annotations_of(obj).get(EXPIRES_AT_ANNOTATION)
    return None if raw is None else parse_instant(raw)


def readable_expiry(obj: Mapping[str, Any]) -> datetime | None:
    """The expiry for display: None when absent or unreadable (gc reports unreadable ones)."""
    try:
        return expiry_of(obj)
    except ValueError:
        return None


def never_expires(obj: Mapping[str, Any]) -> bool:
    return annotations_of(obj).get(TTL_ANNOTATION, "").strip() == NEVER


def expiry_after(now: datetime, ttl_seconds: int | None) -> datetime | None:
    """now + ttl, or None for `never`."""
    return None if ttl_seconds is None else now + timedelta(seconds=ttl_seconds)


def lease_annotations(ttl_seconds: int | None, now: datetime) -> dict[str, str]:
    """The expiry stamped on the namespace by every `up`; nothing for `ttl: never`."""
    expires = expiry_after(now, ttl_seconds)
    if expires is None:
        return {}
    text = format_instant(expires)
    return dict.fromkeys(EXPIRY_ANNOTATIONS, text)


def lease_patch(expires_at: datetime) -> dict[str, Any]:
    """A merge patch setting both expiry annotations of a namespace to `expires_at`."""
    return {"metadata": {"annotations": dict.fromkeys(EXPIRY_ANNOTATIONS, format_instant(expires_at))}}


def drop_expiry_patch(keys: tuple[str, ...] = EXPIRY_ANNOTATIONS) -> dict[str, Any]:
    """A merge patch removing expiry annotations (an environment switched to `ttl: never`)."""
    return {"metadata": {"annotations": dict.fromkeys(keys)}}
