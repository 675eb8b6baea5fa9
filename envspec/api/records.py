"""Operation records on the cluster: what makes an operation's status outlive the server.

While an operation of `envspec serve` runs, its record (the original's result fields,
`status: running`, plus `heartbeat_at`) is written to the annotation
`envspec.dev/operation` of the environment's namespace every `heartbeat_seconds`, and
once more when it ends (`success`, `error`, or `interrupted` when the server stopped
first). The write is a merge patch by its own field manager (`envspec-serve`), so an
`up` never removes it, and only on a namespace envspec manages.

Any server reads the same record: after a restart, or from a second server, the
operation's status is the cluster's. A `running` record whose heartbeat is older than
three beats (plus slack) belonged to a server that died: it reads as `interrupted`.
A delete's record goes with its namespace: a deleted environment answers 404.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from envspec.api.board import INTERRUPTED, STORE_SECONDS, Tracked
from envspec.errors import EnvspecError
from envspec.kube import kinds
from envspec.kube.client import connect
from envspec.kube.deadline import Deadline
from envspec.kube.ssa import get_object, merge_patch
from envspec.meta import annotations_of, format_instant_ms, is_managed, parse_instant
from envspec.service.operations import Service

OPERATION_ANNOTATION = "envspec.dev/operation"
# The create request's `config` or `spec` (never a secret value: passwords are generated
# into Secrets, references stay references), so that `POST /jobs` can run the tests of an
# environment it did not create itself.
REQUEST_ANNOTATION = "envspec.dev/api-request"
FIELD_MANAGER = "envspec-serve"
DEFAULT_HEARTBEAT_SECONDS = 5.0
STALE_BEATS = 3
STALE_SLACK_SECONDS = 2.0  # clocks of two servers and the time one write takes
LIVE_STATES = ("accepted", "running")

logger = logging.getLogger("envspec.api")


class ClusterRecords:
    """Writes operation records to the environment's namespace (an `OperationStore`)."""

    def __init__(self, service: Service, *, server: str, heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS) -> None:
        self.service = service
        self.server = server
        self.heartbeat_seconds = heartbeat_seconds

    async def write(self, tracked: Tracked) -> None:
        if tracked.namespace is None:
            return
        record = tracked.record()
        record["heartbeat_at"] = format_instant_ms(datetime.now(UTC))
        record["heartbeat_seconds"] = self.heartbeat_seconds
        record["server"] = self.server
        annotations = {OPERATION_ANNOTATION: json.dumps(record, separators=(",", ":"))}
        if tracked.document is not None:
            annotations[REQUEST_ANNOTATION] = json.dumps(tracked.document, separators=(",", ":"))
        patch = {"metadata": {"annotations": annotations}}
        deadline = Deadline(STORE_SECONDS)
        try:
            async with connect(self.service.target) as api:
                namespace = await get_object(api, kinds.NAMESPACE, tracked.namespace, None, deadline=deadline)
                if namespace is None or not is_managed(namespace):
                    return  # not there yet (a create's first wave), gone (a delete), or not ours: nothing to write
                await merge_patch(
                    api,
                    kinds.NAMESPACE,
                    tracked.namespace,
                    None,
                    patch,
                    field_manager=FIELD_MANAGER,
                    deadline=deadline,
                    doing=f"recording operation {tracked.job_id} on namespace {tracked.namespace}",
                )
        except EnvspecError as exc:  # the operation goes on; its record is behind until the next beat
            logger.warning("operation %s: its record was not written: %s", tracked.job_id, exc.message)


def stored_record(annotations: Mapping[str, str], *, now: datetime | None = None) -> dict[str, Any] | None:
    """The operation record on a namespace, `interrupted` if its server stopped beating; None if none or unreadable."""
    text = annotations.get(OPERATION_ANNOTATION)
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("job_id"), str):
        return None
    if record.get("status") in LIVE_STATES and _stale(record, now or datetime.now(UTC)):
        record["status"] = INTERRUPTED
        record["error"] = "the server running it stopped before it ended"
    for private in ("heartbeat_at", "heartbeat_seconds", "server"):
        record.pop(private, None)
    return record


def record_of(namespace: Mapping[str, Any]) -> dict[str, Any] | None:
    return stored_record(annotations_of(namespace))


def _stale(record: Mapping[str, Any], now: datetime) -> bool:
    try:
        beat = parse_instant(record.get("heartbeat_at"))
        every = float(record.get("heartbeat_seconds", DEFAULT_HEARTBEAT_SECONDS))
    except (TypeError, ValueError):
        return True
    return (now - beat).total_seconds() > STALE_BEATS * every + STALE_SLACK_SECONDS


def stored_request(annotations: Mapping[str, str]) -> dict[str, Any] | None:
    """The `config` or `spec` the environment was created from through the API; None if unknown."""
    try:
        document = json.loads(annotations.get(REQUEST_ANNOTATION, ""))
    except ValueError:
        return None
    if isinstance(document, dict) and set(document) <= {"config", "spec"} and len(document) == 1:
        return document
    return None
