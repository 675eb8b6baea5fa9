"""The final record of one operation, in the original service's result format.

    {"job_id": "job-uuid", "status": "success" | "error", "namespace": "quality-fabric-test-001",
     "resources_created": ["namespace", "postgres", "deployment", "service"], "duration_ms": 41250,
     "execution_id": "test-001", "operation": "create", "environment": "test-001",
     "time": "2026-01-01T12:00:00.000Z", "error": "..." (only when it failed)}

The worker writes it to `<prefix>:results`, the Redis sink for CLI commands too, and the
REST API answers with the same field names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from envspec.meta import format_instant_ms

STATUS_SUCCESS = "success"
STATUS_ERROR = "error"
# The fixed keys of a record; `extra` may add others but never replace these.
RECORD_KEYS = (
    "job_id",
    "status",
    "namespace",
    "resources_created",
    "duration_ms",
    "execution_id",
    "operation",
    "environment",
    "time",
    "error",
)


@dataclass(frozen=True)
class OperationResult:
    job_id: str  # the request's job_id; for a CLI command, its operation id
    operation: str  # "create", "delete", ... (worker) or "up", "down", ... (CLI)
    ok: bool
    execution_id: str | None = None
    environment: str | None = None
    namespace: str | None = None
    resources_created: tuple[str, ...] = ()
    duration_ms: int = 0
    error: str | None = None  # why it failed; must hold no secret value
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    extra: Mapping[str, Any] = field(default_factory=dict)  # operation-specific (status details, test outcome)

    @property
    def status(self) -> str:
        return STATUS_SUCCESS if self.ok else STATUS_ERROR

    def record(self) -> dict[str, Any]:
        """The JSON object of the result."""
        record: dict[str, Any] = {key: value for key, value in self.extra.items() if key not in RECORD_KEYS}
        record.update(
            {
                "job_id": self.job_id,
                "status": self.status,
                "namespace": self.namespace,
                "resources_created": list(self.resources_created),
                "duration_ms": self.duration_ms,
                "execution_id": self.execution_id,
                "operation": self.operation,
                "environment": self.environment,
                "time": format_instant_ms(self.time),
            }
        )
        if self.error is not None:
            record["error"] = self.error
        return record


# CDEvents' `outcome` of a testCaseRun / testSuiteRun (`success`, `failure`, `cancel`, `error`) for
# envspec's test results: a test that passed its deadline failed (CDEvents has no timeout outcome; its
# `reason` says so, and envspec's own `result` keeps `timed_out`); one the run never got to was cancelled.
CDEVENTS_OUTCOMES: dict[str, str] = {
    "passed": "success",
    "failed": "failure",
    "timed_out": "failure",
    "error": "error",
    "skipped": "cancel",
    "running": "cancel",  # still running when the run stopped
}


def cdevents_outcome(result: str) -> str:
    """The CDEvents outcome of a test result (`passed` -> `success`, ...)."""
    return CDEVENTS_OUTCOMES.get(result, "error")


def run_outcome(*, failed: int, timed_out: int, errors: int, interrupted: bool) -> str:
    """The CDEvents outcome of a whole test run."""
    if interrupted:
        return "cancel"
    if failed or timed_out:
        return "failure"
    return "error" if errors else "success"


def case_record(
    name: str, result: str, *, duration_seconds: float, attempts: int, reason: str | None, cause: str | None
) -> dict[str, Any]:
    """One test in a test operation's result (`tests: [...]`), the same for the CLI and the worker."""
    return {
        "name": name,
        "result": result,
        "outcome": cdevents_outcome(result),
        "duration_seconds": round(duration_seconds, 3),
        "attempts": attempts,
        "reason": reason,
        "cause": cause,
    }


def flat_fields(data: Mapping[str, Any]) -> dict[str, str]:
    """Stream entry fields: strings as they are, any other value JSON-encoded, nulls left out."""
    fields: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        fields[str(key)] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return fields


def result_fields(result: OperationResult) -> dict[str, str]:
    """A `<prefix>:results` entry: the record's flat fields, and the whole record as JSON in `data`
    (the original's consumers read `data`; `redis-cli` readers and filters read the fields)."""
    record = result.record()
    return {**flat_fields(record), "data": json.dumps(record, separators=(",", ":"), default=str)}
