"""`envspec serve`'s application: the original service's REST API over the shared operations.

Every endpoint lives under `/api/v1/k8s-execution` and calls `envspec.service.operations`
(the module the worker uses too): nothing here applies, waits or deletes by itself.
Environments are read from the cluster on every request; the operations this server
started (creates and deletes run in the background and answer `202 Accepted`) are
kept by the `Board`.

Errors are JSON everywhere: `{"detail": "...", "problems": [{"path", "message"}]}`.
422 lists every problem of a body with its JSON path, 413 refuses bodies over 1 MiB,
404/405 for unknown routes, 503 when the Kubernetes API cannot be reached, and 500
(`internal error`, no traceback) for a bug, which is logged.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol
from urllib.parse import parse_qs

import anyio
from fastapi import Depends, FastAPI, Query, Response
from fastapi import Path as PathParam
from fastapi import Request as HttpRequest
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from envspec import __version__
from envspec.api import models
from envspec.api.auth import Access, Tokens
from envspec.api.board import INTERRUPTED, Board, Tracked, wait_for
from envspec.api.dashboard import COOKIE as DASHBOARD_COOKIE
from envspec.api.dashboard import dashboard_page, login_page
from envspec.api.records import DEFAULT_HEARTBEAT_SECONDS, LIVE_STATES, ClusterRecords, stored_record, stored_request
from envspec.defaults import ValidSpec
from envspec.errors import ClusterError, EnvspecError, ExitCode
from envspec.events import Emitter, envelope_to_dict
from envspec.pipeline import build_plan
from envspec.report.results import OperationResult
from envspec.service.operations import (
    Service,
    cluster_version,
    find_environment,
    list_environments,
    lookup_namespace,
    namespace_annotations,
    serve,
)
from envspec.service.requests import (
    MAX_REQUEST_BYTES,
    Request,
    RequestError,
    RequestProblem,
    check_request,
    parse_request,
    validate_request_spec,
)
from envspec.service.settings import Settings
from envspec.sinks import Recorder

PREFIX = "/api/v1/k8s-execution"
DOCS_ASSETS = "/docs/assets"
MAX_WAIT_SECONDS = 600.0
DEFAULT_MAX_REPLICAS = 50
DASHBOARD_OPERATIONS = 20
NO_STORE = {"Cache-Control": "no-store"}
ENVIRONMENT_ID = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# `key=value` of a label filter: an optional DNS prefix, a name, a value (Kubernetes' syntax).
LABEL_FILTER = re.compile(
    r"(?:[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
    r"=([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?"
)

logger = logging.getLogger("envspec.api")

EnvironmentId = Annotated[
    str,
    PathParam(
        min_length=1, max_length=63, pattern=ENVIRONMENT_ID, description="The environment's id (its execution_id)."
    ),
]
BEARER = HTTPBearer(auto_error=False, description="A token of ENVSPEC_API_TOKENS or --token-file.")
# Module level: FastAPI resolves these annotations by name, which it cannot do for a local.
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
Wait = Annotated[
    float,
    Query(ge=0, le=MAX_WAIT_SECONDS, description="Block up to this many seconds until the running operation ends."),
]


class ResultReporter(Protocol):
    """Where the results of operations go besides the answers (the Redis sink has this shape)."""

    async def start(self) -> None: ...

    def publish_result(self, result: OperationResult) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class ApiConfig:
    service: Service
    tokens: Tokens
    auth: bool = True  # False only with --no-auth on a loopback host (the CLI checks that)
    redis_url: str | None = None  # for /health and for reporting results
    redis_masked: str | None = None  # the URL as shown (password masked)
    max_running: int = 4
    heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS  # how often a running operation's record is renewed
    server_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{secrets.token_hex(3)}")
    max_replicas: int = DEFAULT_MAX_REPLICAS  # per service: one request must not flood the cluster with pods
    reporter: ResultReporter | None = None  # --report-redis: every operation's result to `<prefix>:results`
    redis_check: Callable[[], Awaitable[str | None]] | None = None  # None: reachable, else why not


class ApiError(Exception):
    """An answer other than 2xx, with the problems to list."""

    def __init__(
        self,
        status: int,
        detail: str,
        problems: list[RequestProblem] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problems = problems or []
        self.headers = dict(headers or {})


def error_response(
    status: int, detail: str, problems: list[RequestProblem] | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = {"detail": detail, "problems": [{"path": p.path, "message": p.message} for p in problems or []]}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": models.ErrorBody, "description": "No token, or one the server does not know."},
    403: {"model": models.ErrorBody, "description": "A read-only token on a write."},
    413: {"model": models.ErrorBody, "description": "The body is over 1 MiB."},
    422: {"model": models.ErrorBody, "description": "Every problem of the request, with its JSON path."},
    503: {"model": models.ErrorBody, "description": "The Kubernetes API cannot be reached."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": models.ErrorBody, "description": "No such environment."}}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": models.ErrorBody, "description": "Not managed by envspec, or an operation is running on it."}
}


class BodyLimit:
    """Refuses request bodies over `limit` bytes with 413: by Content-Length, or while reading a chunked one.

    The body is read here, before the application sees it (at most `limit` bytes are
    held), so the application never starts on a body that turns out too large.
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the application see it
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)

    async def _refuse(self, scope: Any, receive: Any, send: Any) -> None:
        response = error_response(413, f"the request body is over {self.limit} bytes")
        await response(scope, receive, send)


def _replay(messages: list[Any], receive: Any) -> Callable[[], Awaitable[Any]]:
    """A `receive` that gives `messages` first, then whatever the connection says next (a disconnect)."""
    pending = list(messages)

    async def replayed() -> Any:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def create_app(config: ApiConfig) -> FastAPI:
    """The application; operations run in a task group that lives as long as the server."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reporter = config.reporter
        if reporter is not None:
            await reporter.start()
        try:
            async with anyio.create_task_group() as group:
                publish = reporter.publish_result if reporter is not None else None
                store = ClusterRecords(service, server=config.server_id, heartbeat_seconds=config.heartbeat_seconds)
                app.state.board = Board(group, max_running=config.max_running, on_result=publish, store=store)
                yield
                # Stopping: running operations are cancelled (each says so in its last event).
                group.cancel_scope.cancel()
        finally:
            if reporter is not None:
                await reporter.close()

    app = FastAPI(
        title="envspec",
        version=__version__,
        description="Ephemeral Kubernetes test environments: the k8s-execution service's REST API.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.add_middleware(BodyLimit, limit=MAX_REQUEST_BYTES)
    install_error_handlers(app, config.service.settings)
    install_docs(app)
    service = config.service

    def need(access: Access) -> Callable[..., Awaitable[None]]:
        async def check(credentials: Credentials) -> None:
            if not config.auth:
                return
            granted = config.tokens.access(credentials.credentials if credentials else None)
            if granted is Access.NONE:
                raise ApiError(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
            if access is Access.WRITE and granted is Access.READ:
                raise ApiError(403, "this token may only read")

        return check

    read = [Depends(need(Access.READ))]
    write = [Depends(need(Access.WRITE))]

    def board(request: HttpRequest) -> Board:
        found: Board = request.app.state.board
        return found

    @app.get(f"{PREFIX}/health", response_model=models.Health, tags=["service"])
    async def health() -> models.Health:
        """Liveness, and whether the Kubernetes API (and Redis, when configured) can be reached. No token needed."""
        try:
            version = await cluster_version(service)
            kubernetes = models.ClusterHealth(reachable=True, version=version)
        except EnvspecError as exc:
            kubernetes = models.ClusterHealth(reachable=False, error=exc.message)
        redis: models.RedisHealth | None = None
        if config.redis_url is not None and config.redis_check is not None:
            problem = await config.redis_check()
            redis = models.RedisHealth(reachable=problem is None, url=config.redis_masked or "", error=problem)
        healthy = kubernetes.reachable and (redis is None or redis.reachable)
        return models.Health(
            status="healthy" if healthy else "degraded", version=__version__, kubernetes=kubernetes, redis=redis
        )

    @app.post(
        f"{PREFIX}/environments",
        status_code=202,
        response_model=models.Accepted,
        dependencies=write,
        responses={**ERRORS, **CONFLICT},
        tags=["environments"],
    )
    async def create_environment(body: models.CreateEnvironment, request: HttpRequest, response: Response) -> Any:
        """Create (or update) an environment from the original `config` shorthand or a whole `spec`.

        Answers 202 at once; the environment's status (`Location`) says how the create goes.
        """
        data = body.model_dump(exclude_none=True)
        data["operation"] = "create"
        parsed = _parse(data, service)
        valid = _validated(parsed, service)
        _check_size(parsed, valid, config.max_replicas)
        draft = build_plan(valid, secrets=None)
        environment = parsed.environment()
        operations = board(request)
        if operations.running(environment) is not None:
            raise ApiError(409, f"an operation is running on environment {environment}: wait for it to end")
        existing = await lookup_namespace(service, draft.namespace)
        if existing is not None and not existing.managed:
            raise ApiError(409, f"namespace {draft.namespace} exists and envspec does not manage it")
        if existing is not None and existing.environment not in ("", environment):
            raise ApiError(409, f"namespace {draft.namespace} belongs to environment {existing.environment}")
        if existing is not None:
            await _refuse_if_busy(environment, operations, existing.annotations)
        job_id = parsed.job_id or secrets.token_hex(8)
        tracked = Tracked(job_id, "create", environment, draft.namespace)
        tracked.document = {"config": body.config.model_dump(exclude_none=True)} if body.config else {"spec": body.spec}
        operations.start(tracked, _runner(parsed, service, job_id))
        return _accepted(tracked, response)

    @app.get(
        f"{PREFIX}/environments",
        response_model=list[models.EnvironmentSummary],
        dependencies=read,
        responses=ERRORS,
        tags=["environments"],
    )
    async def list_all(
        request: HttpRequest,
        label: Annotated[
            list[str] | None, Query(description="`key=value`: only environments with this label (repeatable).")
        ] = None,
    ) -> Any:
        """Every environment, as `envspec ls -o json` lists them."""
        filters = label or []
        bad = [
            RequestProblem(f"query.label[{i}]", "expected key=value with a label's name and value")
            for i, text in enumerate(filters)
            if not LABEL_FILTER.fullmatch(text)
        ]
        if bad:
            raise ApiError(422, "invalid request", bad)
        selector = ",".join(filters) or None
        rows = await list_environments(service, label_selector=selector)
        records = await namespace_annotations(service, label_selector=selector)
        return [_summary(row, board(request), records.get(str(row["namespace"]), {})) for row in rows]

    @app.get(
        f"{PREFIX}/environments/{{environment_id}}",
        response_model=models.EnvironmentStatus,
        dependencies=read,
        responses={**ERRORS, **NOT_FOUND},
        tags=["environments"],
    )
    async def get_environment(environment_id: EnvironmentId, request: HttpRequest, wait: Wait = 0) -> Any:
        """The environment's objects and readiness (as `envspec status -o json`) and its last operation."""
        operations = board(request)
        running = operations.running(environment_id)
        if running is not None and wait > 0:
            await wait_for(running, wait)
        return await _environment_status(environment_id, operations)

    @app.delete(
        f"{PREFIX}/environments/{{environment_id}}",
        status_code=202,
        response_model=models.Accepted,
        dependencies=write,
        responses={**ERRORS, **NOT_FOUND, **CONFLICT},
        tags=["environments"],
    )
    async def delete_environment(environment_id: EnvironmentId, request: HttpRequest, response: Response) -> Any:
        """Delete the environment (its namespace); 202 at once, gone when its status answers 404."""
        operations = board(request)
        if operations.running(environment_id) is not None:
            raise ApiError(409, f"an operation is running on environment {environment_id}: wait for it to end")
        lookup = await find_environment(service, environment_id)
        if lookup.namespace is None:
            raise ApiError(404, f"environment {environment_id} is not on the cluster")
        if not lookup.managed:
            raise ApiError(409, f"namespace {lookup.namespace} is not managed by envspec: refusing to delete it")
        await _refuse_if_busy(lookup.environment, operations, lookup.annotations)
        parsed = _parse({"operation": "delete", "execution_id": lookup.environment}, service)
        job_id = secrets.token_hex(8)
        tracked = Tracked(job_id, "delete", lookup.environment, lookup.namespace)
        operations.start(tracked, _runner(parsed, service, job_id))
        return _accepted(tracked, response)

    @app.post(
        f"{PREFIX}/environments/{{environment_id}}/extend",
        response_model=models.Operation,
        dependencies=write,
        responses={**ERRORS, **NOT_FOUND, **CONFLICT},
        tags=["environments"],
    )
    async def extend_environment(environment_id: EnvironmentId, body: models.ExtendEnvironment | None = None) -> Any:
        """Push the environment's expiry to now + `ttl_minutes` (or its own TTL)."""
        lookup = await find_environment(service, environment_id)
        if lookup.namespace is None:
            raise ApiError(404, f"environment {environment_id} is not on the cluster")
        if not lookup.managed:
            raise ApiError(409, f"namespace {lookup.namespace} is not managed by envspec: refusing to extend it")
        minutes = body.ttl_minutes if body is not None else None
        # The request model wants the minutes for a worker's extend; without them here the
        # handler extends by the environment's own TTL, as `envspec extend` does.
        parsed = Request.model_validate(
            {"operation": "extend", "execution_id": lookup.environment, "ttl_minutes": minutes}
        )
        result = await _run_now(parsed, service)
        if not result.ok:
            raise _failure(result)
        return result.record()

    @app.get(
        f"{PREFIX}/environments/{{environment_id}}/events",
        dependencies=read,
        responses={
            **ERRORS,
            **NOT_FOUND,
            200: {"content": {"text/event-stream": {}}, "description": "Server-sent events, one per typed event."},
        },
        response_class=StreamingResponse,
        tags=["environments"],
    )
    async def environment_events(environment_id: EnvironmentId, request: HttpRequest) -> StreamingResponse:
        """The typed events of the environment's current (or last) operation as server-sent events.

        Each event's `event:` is its type (`object_ready`, `operation_finished`, ...) and its
        `data:` the JSON form `envspec up -o json` prints; the stream ends with the operation.
        """
        operations = board(request)
        tracked = operations.running(environment_id) or operations.latest(environment_id)
        if tracked is None:
            raise ApiError(404, f"no operation of this server on environment {environment_id}")

        async def stream() -> AsyncIterator[bytes]:
            async with operations.follow(tracked) as events:
                async for envelope in events:
                    data = json.dumps(envelope_to_dict(envelope), separators=(",", ":"))
                    yield f"event: {envelope.name}\ndata: {data}\n\n".encode()

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.post(
        f"{PREFIX}/jobs",
        status_code=202,
        response_model=models.Accepted,
        dependencies=write,
        responses={**ERRORS, **NOT_FOUND, **CONFLICT},
        tags=["jobs"],
    )
    async def run_tests(body: models.RunTests, request: HttpRequest, response: Response) -> Any:
        """Run tests in an environment: one ad-hoc `test_image` (+ `test_command`), or the spec's `tests`.

        Answers 202 with the `job_id`; `GET /jobs/{job_id}` says how it goes and how it ended.
        """
        operations = board(request)
        environment_id = body.environment_id
        if operations.running(environment_id) is not None:
            raise ApiError(409, f"an operation is running on environment {environment_id}: wait for it to end")
        lookup = await find_environment(service, environment_id)
        if lookup.namespace is None:
            raise ApiError(404, f"environment {environment_id} is not on the cluster")
        if not lookup.managed:
            raise ApiError(409, f"namespace {lookup.namespace} is not managed by envspec")
        await _refuse_if_busy(lookup.environment, operations, lookup.annotations)
        document = stored_request(lookup.annotations)
        if document is None:
            raise ApiError(409, f"environment {environment_id} was not created through this API: its spec is unknown")
        data: dict[str, Any] = {"operation": "test", "execution_id": lookup.environment, **document}
        data.update(body.model_dump(exclude_none=True, exclude={"environment_id"}))
        parsed = _parse(data, service)
        job_id = parsed.job_id or secrets.token_hex(8)
        tracked = Tracked(job_id, "test", lookup.environment, lookup.namespace)
        operations.start(tracked, _runner(parsed, service, job_id))
        accepted = _accepted(tracked, response)
        accepted["location"] = response.headers["Location"] = f"{PREFIX}/jobs/{job_id}"
        return accepted

    @app.get(
        f"{PREFIX}/jobs/{{job_id}}",
        response_model=models.Operation,
        dependencies=read,
        responses={**ERRORS, **NOT_FOUND},
        tags=["jobs"],
    )
    async def job_status(
        job_id: Annotated[str, PathParam(min_length=1, max_length=200)], request: HttpRequest, wait: Wait = 0
    ) -> Any:
        """A test run's status, result, duration, reason and per-test outcomes (`tests`)."""
        operations = board(request)
        tracked = operations.by_job.get(job_id)
        if tracked is not None:
            if wait > 0:
                await wait_for(tracked, wait)
            return tracked.record()
        for recorded in (await namespace_annotations(service)).values():
            record = stored_record(recorded)
            if record is not None and record.get("job_id") == job_id:
                return record
        raise ApiError(404, f"no job {job_id} (only the last operation of each environment is kept on the cluster)")

    @app.post(
        f"{PREFIX}/cleanup",
        response_model=models.CleanupResult,
        dependencies=write,
        responses=ERRORS,
        tags=["service"],
    )
    async def cleanup(body: models.Cleanup | None = None) -> Any:
        """One sweep of the janitor (`envspec gc`): delete the environments whose TTL has passed."""
        dry_run = body.dry_run if body is not None else False
        parsed = _parse({"operation": "cleanup", "dry_run": dry_run}, service)
        result = await _run_now(parsed, service)
        if not result.ok:
            raise _failure(result)
        record = result.record()
        record.setdefault("dry_run", dry_run)
        record.setdefault("deleted", [])
        record.setdefault("examined", 0)
        record.setdefault("failed", {})
        return record

    @app.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def dashboard(request: HttpRequest) -> HTMLResponse:
        token = request.cookies.get(DASHBOARD_COOKIE)
        if config.auth and config.tokens.access(token) is Access.NONE:
            return HTMLResponse(login_page("that token is not valid" if token else ""), headers=NO_STORE)
        operations = board(request)
        records = await namespace_annotations(service)
        rows = [
            _summary(row, operations, records.get(str(row["namespace"]), {}))
            for row in await list_environments(service)
        ]
        recent = [tracked.record() for tracked in operations.recent(DASHBOARD_OPERATIONS)]
        return HTMLResponse(dashboard_page(rows, recent, with_token=config.auth), headers=NO_STORE)

    @app.post("/login", include_in_schema=False)
    async def login(request: HttpRequest) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        if config.auth and config.tokens.access(token) is Access.NONE:
            return HTMLResponse(login_page("that token is not valid"), status_code=401, headers=NO_STORE)
        answer = Response(status_code=303, headers={"Location": "/", **NO_STORE})
        # A session cookie (no expiry): gone with the browser session; unreadable by scripts.
        answer.set_cookie(
            DASHBOARD_COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
        )
        return answer

    @app.post("/logout", include_in_schema=False)
    async def logout() -> Response:
        answer = Response(status_code=303, headers={"Location": "/", **NO_STORE})
        answer.delete_cookie(DASHBOARD_COOKIE, path="/")
        return answer

    async def _environment_status(environment_id: str, operations: Board) -> dict[str, Any]:
        running = operations.running(environment_id)
        latest = operations.latest(environment_id)
        lookup = await find_environment(service, environment_id)
        if not lookup.found:
            if running is not None and running.operation == "create":
                return _placeholder(running)
            raise ApiError(404, f"environment {environment_id} is not on the cluster")
        result = await _run_now(_parse({"operation": "status", "execution_id": lookup.environment}, service), service)
        if not result.ok:
            if running is not None:
                return _placeholder(running)
            raise ApiError(404, f"environment {environment_id} is not on the cluster")
        report: dict[str, Any] = dict(result.extra["environment_status"])
        report["execution_id"] = report["environment_id"] = report["environment"]
        operation = _last_operation(latest, stored_record(lookup.annotations))
        report["operation"] = operation
        report["status"] = _state(report, operation)
        return report

    async def _refuse_if_busy(environment: str, operations: Board, annotations: Mapping[str, str]) -> None:
        """409 while an operation runs on the environment, here or (by its record) on another server."""
        stored = stored_record(annotations)
        if operations.running(environment) is not None or (stored is not None and stored["status"] in LIVE_STATES):
            raise ApiError(409, f"an operation is running on environment {environment}: wait for it to end")

    return app


def _parse(data: Mapping[str, Any], service: Service) -> Request:
    try:
        return parse_request(data, service.settings)
    except RequestError as exc:
        raise ApiError(422, "invalid request", list(exc.problems)) from None


def _validated(request: Request, service: Service) -> ValidSpec:
    try:
        return validate_request_spec(request, service.settings)
    except RequestError as exc:
        raise ApiError(422, "invalid request", list(exc.problems)) from None


def _check_size(request: Request, valid: ValidSpec, max_replicas: int) -> None:
    """A request's services stay within the server's replica limit (the spec itself has none)."""
    problems = [
        RequestProblem(
            "config.replicas" if request.config is not None else f"spec.services.{name}.replicas",
            f"{service.replicas} replicas; this server allows at most {max_replicas} per service",
        )
        for name, service in valid.spec.services.items()
        if service.replicas > max_replicas
    ]
    if problems:
        raise ApiError(422, "invalid request", problems)


def _runner(request: Request, service: Service, job_id: str) -> Callable[[Emitter], Awaitable[OperationResult]]:
    tagged = request.model_copy(update={"job_id": job_id})

    async def body(events: Emitter) -> OperationResult:
        return await serve(tagged, service, events=events)

    return body


async def _run_now(request: Request, service: Service) -> OperationResult:
    """A quick operation (status, extend, cleanup), answered in the request itself."""
    events = Emitter(Recorder(), operation=request.operation, operation_id=request.job_id)
    try:
        return await serve(request, service, events=events)
    except RequestError as exc:
        raise ApiError(422, "invalid request", list(exc.problems)) from None


def _failure(result: OperationResult) -> ApiError:
    """A quick operation that ran and failed: 503 when the cluster could not be reached, else 409."""
    unreachable = result.extra.get("exit_code") == int(ExitCode.CLUSTER)
    return ApiError(503 if unreachable else 409, result.error or f"{result.operation} failed")


def _accepted(tracked: Tracked, response: Response) -> dict[str, Any]:
    location = f"{PREFIX}/environments/{tracked.environment}"
    response.headers["Location"] = location
    environment = tracked.environment or ""
    return {
        "job_id": tracked.job_id,
        "operation": tracked.operation,
        "status": tracked.status,
        "execution_id": environment,
        "environment_id": environment,
        "namespace": tracked.namespace,
        "location": location,
    }


def _placeholder(running: Tracked) -> dict[str, Any]:
    """An environment whose create has not reached the cluster yet."""
    environment = running.environment or ""
    return {
        "environment": environment,
        "execution_id": environment,
        "environment_id": environment,
        "namespace": running.namespace,
        "phase": "",
        "status": "creating",
        "expires_at": None,
        "expires_in_seconds": None,
        "ready": 0,
        "total": 0,
        "objects": [],
        "operation": running.record(),
    }


def _last_operation(local: Tracked | None, stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """The environment's last operation: this server's, unless the cluster's record is of a later one."""
    if local is None:
        return stored
    mine = local.record()
    if stored is None or stored.get("job_id") == local.job_id:
        return mine
    return stored if str(stored.get("started_at", "")) > str(mine["started_at"]) else mine


def _state(report: Mapping[str, Any], operation: Mapping[str, Any] | None) -> str:
    if operation is not None and operation.get("status") in LIVE_STATES:
        return "deleting" if operation.get("operation") == "delete" else "creating"
    if report.get("phase") == "Terminating":
        return "deleting"
    if any(row.get("failed") for row in report.get("objects", [])):
        return "failed"
    if report.get("ready") == report.get("total"):
        return "ready"
    if operation is not None and operation.get("status") in ("error", INTERRUPTED):
        return "failed"
    return "not_ready"


def _summary(row: Mapping[str, Any], operations: Board, annotations: Mapping[str, str]) -> dict[str, Any]:
    """A row of `envspec ls -o json` with the original's names and the status `GET /environments/{id}` gives."""
    summary = dict(row)
    name = str(row["name"])
    summary["execution_id"] = summary["environment_id"] = name
    operation = _last_operation(operations.latest(name), stored_record(annotations))
    summary["status"] = _state({**row, "objects": []}, operation)
    return summary


def install_error_handlers(app: FastAPI, settings: Settings) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: HttpRequest, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.detail, exc.problems, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: HttpRequest, exc: RequestValidationError) -> JSONResponse:
        problems = [_validation_problem(error) for error in exc.errors()]
        if request.method == "POST" and request.url.path == f"{PREFIX}/environments":
            problems += [p for p in _execution_id_problems(exc.body, settings) if p not in problems]
        return error_response(422, "invalid request", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: HttpRequest, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not decode the body at all (not UTF-8, say): still a bad body
            return error_response(422, "invalid request", [RequestProblem("", "the body is not valid UTF-8 JSON")])
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        return error_response(exc.status_code, detail, headers=exc.headers)

    @app.exception_handler(ClusterError)
    async def cluster_error(request: HttpRequest, exc: ClusterError) -> JSONResponse:
        return error_response(503, exc.message)

    @app.exception_handler(EnvspecError)
    async def refused(request: HttpRequest, exc: EnvspecError) -> JSONResponse:
        return error_response(409, exc.message)

    @app.exception_handler(Exception)
    async def bug(request: HttpRequest, exc: Exception) -> JSONResponse:
        logger.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
        return error_response(500, "internal error")


def _execution_id_problems(body: Any, settings: Settings) -> list[RequestProblem]:
    """The request model's own check of `execution_id`, also when other fields failed their types:
    every problem at once, not the type errors first and the name on the next try."""
    if not isinstance(body, dict) or not isinstance(body.get("execution_id"), str) or not body["execution_id"]:
        return []
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else None
    draft = Request.model_construct(operation="create", execution_id=body["execution_id"], spec=spec)
    return [p for p in check_request(draft, settings) if p.path == "execution_id"]


def _validation_problem(error: Mapping[str, Any]) -> RequestProblem:
    """FastAPI's error as ours: the JSON path inside the body (`config.app_port`), else `query.wait`, `path.…`."""
    location = list(error.get("loc", ()))
    where = location[0] if location else ""
    parts = location[1:] if where == "body" else location
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    kind = error.get("type", "")
    message = (
        "required" if kind == "missing" else "unknown field" if kind == "extra_forbidden" else error.get("msg", "")
    )
    return RequestProblem(path, str(message))


def install_docs(app: FastAPI) -> None:
    """`/docs`: Swagger UI from the installed fastapi-offline package, so it works with no network."""
    import fastapi_offline

    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="envspec API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )
