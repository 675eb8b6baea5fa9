"""The API server's timestamps (RFC 3339, UTC, whole seconds), read and written the client layer's way.

`envspec.meta` has the full parser of user-written expiries; the client layer may not
import it, and needs only the server's one form.
"""

from __future__ import annotations

from datetime import UTC, datetime


def parse_server_time(value: object) -> datetime | None:
    """A timestamp as the server writes it (`2026-01-01T12:00:00Z`), or None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_server_time(instant: datetime) -> str:
    """`2026-01-01T12:00:00Z`: what the server writes, and what `sinceTime` takes."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
