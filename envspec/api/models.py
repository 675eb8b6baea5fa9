"""The REST API's bodies, as the OpenAPI document describes them.

Request bodies reuse the one request model (`envspec.service.requests`): a create body
is a `Request` without `operation`. Responses use the original service's field names
(`job_id`, `execution_id`, `environment_id`, `namespace`, `status`,
`resources_created`, `duration_ms`) next to what `envspec ls/status -o json` print.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from envspec.service.requests import EnvironmentConfig

EnvironmentState = Literal["creating", "deleting", "ready", "not_ready", "failed"]
OperationStatus = Literal["accepted", "running", "success", "error", "interrupted"]


class CreateEnvironment(BaseModel):
    """`{"execution_id", "config": {...}}` (the original) or `{"execution_id", "spec": {...}}`."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "execution_id": "test-001",
                    "config": {"app_image": "myapp:latest", "app_port": 8000, "database": "postgresql"},
                }
            ]
        },
    )

    execution_id: str = Field(min_length=1, max_length=63, description="Names the environment (a DNS label).")
    job_id: str | None = Field(None, min_length=1, max_length=200, description="The operation's id; made up if absent.")
    config: EnvironmentConfig | None = None
    spec: dict[str, Any] | None = Field(None, description="A whole maestro-env document instead of `config`.")


class RunTests(BaseModel):
    """`{"environment_id", "test_command", "test_image"}` (the original) or `{"environment_id", "tests": [names]}`."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"environment_id": "test-001", "test_image": "myapp-tests:latest", "test_command": "pytest"}]
        },
    )

    environment_id: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    job_id: str | None = Field(None, min_length=1, max_length=200)
    test_image: str | None = Field(None, min_length=1)
    test_command: str | list[str] | None = None
    tests: list[str] | None = Field(None, description="Names of the spec's tests; all of them if absent.")


class ExtendEnvironment(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ttl_minutes: int | None = Field(
        None, gt=0, le=10_000_000, description="New time to live from now; the environment's own TTL if absent."
    )


class Cleanup(BaseModel):
    model_config = ConfigDict(extra="ignore")

    dry_run: bool = Field(False, description="Say what would be deleted, delete nothing.")


class Problem(BaseModel):
    path: str = Field(description="JSON path of the offending value in the body (`spec.services.api.replicas`).")
    message: str


class ErrorBody(BaseModel):
    detail: str
    problems: list[Problem] = Field(default_factory=list)


class Operation(BaseModel):
    """One operation, in the original's result format."""

    model_config = ConfigDict(extra="allow")

    job_id: str
    operation: str
    status: OperationStatus
    execution_id: str | None
    environment: str | None
    namespace: str | None
    resources_created: list[str]
    duration_ms: int
    time: str
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None


class Accepted(BaseModel):
    """What a long operation answers at once (202); `Location` says where its status is."""

    job_id: str
    operation: str
    status: OperationStatus
    execution_id: str
    environment_id: str
    namespace: str | None
    location: str


class ObjectRow(BaseModel):
    wave: int | None
    kind: str
    name: str
    namespace: str | None
    present: bool
    ready: bool
    failed: bool
    message: str


class EnvironmentSummary(BaseModel):
    """One environment as `envspec ls -o json` shows it, plus the original's names."""

    name: str
    execution_id: str
    environment_id: str
    namespace: str
    phase: str
    status: EnvironmentState
    created_at: str | None
    age_seconds: int | None
    expires_at: str | None
    expires_in_seconds: int | None
    ready: int
    total: int


class EnvironmentStatus(BaseModel):
    """One environment as `envspec status -o json` shows it, plus the original's names and its last operation."""

    environment: str
    execution_id: str
    environment_id: str
    namespace: str | None
    phase: str
    status: EnvironmentState
    expires_at: str | None
    expires_in_seconds: int | None
    ready: int
    total: int
    objects: list[ObjectRow]
    operation: Operation | None = Field(
        None, description="Its last operation: from this server, or the record on its namespace (any server's)."
    )


class ClusterHealth(BaseModel):
    reachable: bool
    version: str | None = None
    error: str | None = None


class RedisHealth(BaseModel):
    reachable: bool
    url: str = Field(description="With its password masked.")
    error: str | None = None


class Health(BaseModel):
    status: Literal["healthy", "degraded"]
    version: str
    kubernetes: ClusterHealth
    redis: RedisHealth | None = None


class CleanupResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    job_id: str
    operation: str
    status: OperationStatus
    dry_run: bool
    deleted: list[str]
    examined: int
    failed: dict[str, str]
    duration_ms: int
    error: str | None = None
