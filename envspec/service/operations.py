"""The operations the worker and the REST API serve: one request model in, one result out.

`serve` runs a `Request` (the original service's format, see `requests.py`) through
the same operations the CLI runs — `up`, `down`, `status`, `extend`, `gc`, and the
spec's tests — and returns an `OperationResult` in the original's shape. Neither
the worker nor the REST API re-implements a stage: they decode a request, call
`serve` (or `list_environments`), and deliver the result their way.

A request that cannot be served as written raises `RequestError` (every problem,
located); an operation that ran and failed (the cluster refused, a test failed)
returns a result with `ok` false and the reason in `error`. Anything else is a bug
and propagates.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from envspec.errors import EnvspecError
from envspec.events import Emitter
from envspec.kube import kinds
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.ssa import api_request, get_object, list_objects
from envspec.lifecycle.expiry import Clock, system_clock
from envspec.meta import MANAGED_SELECTOR, annotations_of, environment_of, format_instant, is_managed, name_of
from envspec.operations.down import down
from envspec.operations.environments import EnvironmentRef, find_namespace
from envspec.operations.extend import extend
from envspec.operations.gc import GcOptions, gc
from envspec.operations.spec import test_plans_of
from envspec.operations.status import ls, status
from envspec.operations.test import TestOptions, TestRunResult, TestsFailed, run_tests
from envspec.operations.up import up
from envspec.pipeline import build_plan
from envspec.plan import Plan, SecretSlot
from envspec.present import ls_json, status_json
from envspec.report.results import OperationResult, case_record
from envspec.runner import ApplyOptions
from envspec.service.requests import (
    Request,
    RequestError,
    RequestProblem,
    ad_hoc_test,
    namespace_for,
    resources_created,
    validate_request_spec,
)
from envspec.service.settings import Settings

DEFAULT_TIMEOUT_SECONDS = 600.0
STATUS_TIMEOUT_SECONDS = 30.0
HEALTH_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Service:
    """What every request is served against: the cluster, the original's variables, the time."""

    target: ClusterTarget
    settings: Settings
    clock: Clock = system_clock
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS


Handler = Callable[[Request, Service, Emitter], Awaitable[tuple[EnvironmentRef | None, dict[str, Any]]]]


async def serve(request: Request, service: Service, *, events: Emitter) -> OperationResult:
    """Run one request to its end; its result. RequestError when it cannot be served as written."""
    handler = HANDLERS.get(request.operation)
    if handler is None:
        raise RequestError([RequestProblem("operation", f"{request.operation!r} is not served here")])
    started = time.monotonic()
    job_id = request.job_id or events.operation_id
    try:
        ref, details = await handler(request, service, events)
    except RequestError:
        raise
    except EnvspecError as exc:
        return OperationResult(
            job_id=job_id,
            operation=request.operation,
            ok=False,
            execution_id=request.execution_id,
            environment=request.execution_id,
            duration_ms=round((time.monotonic() - started) * 1000),
            error=events.redact(exc.message),
            extra={"exit_code": int(exc.exit_code)},
        )
    created = details.pop("resources_created", ())
    return OperationResult(
        job_id=job_id,
        operation=request.operation,
        ok=bool(details.pop("ok", True)),
        execution_id=request.execution_id,
        environment=ref.environment if ref else request.execution_id,
        namespace=ref.namespace if ref else None,
        resources_created=tuple(created),
        duration_ms=round((time.monotonic() - started) * 1000),
        error=details.pop("error", None),
        extra=details,
    )


def _ref(request: Request) -> EnvironmentRef:
    """An environment by its execution id: the label every environment of a request carries."""
    return EnvironmentRef(request.environment())


async def _create(request: Request, service: Service, events: Emitter) -> tuple[EnvironmentRef, dict[str, Any]]:
    valid = validate_request_spec(request, service.settings)

    def build(secrets: Mapping[SecretSlot, str] | None) -> Plan:
        return build_plan(valid, secrets=secrets)

    draft = build(None)
    result = await up(
        service.target,
        build,
        events=events.about(draft.environment, draft.namespace),
        options=ApplyOptions(timeout_seconds=service.timeout_seconds),
        now=service.clock(),
    )
    details: dict[str, Any] = {
        "resources_created": resources_created(valid.spec),
        "expires_at": result.expires_at,
        "created": result.count("created"),
        "configured": result.count("configured"),
        "unchanged": result.count("unchanged"),
    }
    return EnvironmentRef(draft.environment, draft.namespace), details


async def _delete(request: Request, service: Service, events: Emitter) -> tuple[EnvironmentRef, dict[str, Any]]:
    ref = _ref(request)
    result = await down(service.target, ref, events=events, wait=True, deadline=Deadline(service.timeout_seconds))
    # A delete of an environment that is not there is a success: it is gone either way.
    resources = ["namespace"] if result.namespace else []
    return EnvironmentRef(result.environment, result.namespace), {
        "resources_created": resources,
        "deleted": result.namespace is not None,
    }


async def _status(request: Request, service: Service, events: Emitter) -> tuple[EnvironmentRef, dict[str, Any]]:
    found = await status(service.target, _ref(request), deadline=Deadline(STATUS_TIMEOUT_SECONDS))
    report = status_json(found, now=service.clock())
    return EnvironmentRef(found.environment, found.namespace), {"environment_status": report}


async def _extend(request: Request, service: Service, events: Emitter) -> tuple[EnvironmentRef, dict[str, Any]]:
    ttl = request.ttl_minutes * 60 if request.ttl_minutes is not None else None
    extension = await extend(service.target, _ref(request), ttl_seconds=ttl, clock=service.clock, events=events)
    return EnvironmentRef(extension.environment, extension.namespace), {
        "expires_at": format_instant(extension.expires_at),
        "previous_expires_at": extension.previous,
    }


async def _cleanup(request: Request, service: Service, events: Emitter) -> tuple[None, dict[str, Any]]:
    report = await gc(service.target, clock=service.clock, events=events, options=GcOptions(dry_run=request.dry_run))
    return None, {
        "dry_run": request.dry_run,
        "deleted": sorted(report.deleted),
        "examined": len(report.verdicts),
        "failed": dict(report.failed),
    }


AD_HOC_TEST = "adhoc"


def _test_details(result: TestRunResult) -> dict[str, Any]:
    return {
        "resources_created": list(result.resources()),
        "run_id": result.run_id,
        "exit_code": result.exit_code,
        "tests": [
            case_record(
                case.name,
                case.result.value,
                duration_seconds=case.seconds,
                attempts=case.attempts,
                reason=case.reason,
                cause=case.cause,
            )
            for case in result.cases
        ],
    }


async def _test(request: Request, service: Service, events: Emitter) -> tuple[EnvironmentRef, dict[str, Any]]:
    """The spec's tests (or `tests`), or one ad-hoc `test_image` test, in the ready environment."""
    ad_hoc = ad_hoc_test(request)
    valid = validate_request_spec(request, service.settings, extra_tests={AD_HOC_TEST: ad_hoc} if ad_hoc else None)
    plans = test_plans_of(valid)
    names = (AD_HOC_TEST,) if ad_hoc else tuple(request.tests or ())
    draft = plans.environment(None)
    ref = EnvironmentRef(draft.environment, draft.namespace)
    options = TestOptions(names=names, log_events=False, apply=ApplyOptions(timeout_seconds=service.timeout_seconds))
    try:
        result = await run_tests(
            service.target, plans, events=events.about(draft.environment, draft.namespace), options=options
        )
    except TestsFailed as failed:
        return ref, {**_test_details(failed.result), "ok": False, "error": events.redact(failed.message)}
    return ref, _test_details(result)


HANDLERS: dict[str, Handler] = {
    "test": _test,
    "create": _create,
    "delete": _delete,
    "status": _status,
    "extend": _extend,
    "cleanup": _cleanup,
}


async def list_environments(service: Service, *, label_selector: str | None = None) -> list[dict[str, Any]]:
    """Every environment, as `envspec ls -o json` shows them."""
    listings = await ls(service.target, deadline=Deadline(STATUS_TIMEOUT_SECONDS), label_selector=label_selector)
    return ls_json(listings, now=service.clock())


# --- what the REST API asks besides requests --------------------------------------------------


@dataclass(frozen=True)
class EnvironmentLookup:
    """Whether an environment id names something on the cluster, and whether envspec manages it."""

    environment: str
    namespace: str | None  # None: nothing on the cluster
    managed: bool
    annotations: Mapping[str, str] = field(default_factory=dict)  # the namespace's (the API keeps records there)

    @property
    def found(self) -> bool:
        return self.namespace is not None and self.managed


async def find_environment(service: Service, environment: str) -> EnvironmentLookup:
    """The namespace an environment id means, as `envspec down --name` finds it.

    Besides the labelled namespace (or one named `environment`), the namespace the
    original would have used (`<K8S_NAMESPACE_PREFIX>-<id>`) is looked at, so that a
    delete of an id whose namespace envspec does not manage is refused, not "not found".
    `environment` must be a DNS label (the caller checks): it goes into a selector and a URL.
    """
    deadline = Deadline(STATUS_TIMEOUT_SECONDS)
    async with connect(service.target) as api:
        namespace = await find_namespace(api, EnvironmentRef(environment), deadline=deadline)
        if namespace is None:
            namespace = await get_object(
                api, kinds.NAMESPACE, namespace_for(environment, service.settings), None, deadline=deadline
            )
    if namespace is None:
        return EnvironmentLookup(environment, None, managed=False)
    return EnvironmentLookup(
        environment_of(namespace) or environment, name_of(namespace), is_managed(namespace), annotations_of(namespace)
    )


async def cluster_version(service: Service) -> str:
    """The API server's version (`v1.34.4`); ClusterError when it cannot be reached."""
    async with connect(service.target) as api:
        # `/version`, with the client layer's retries and error messages (kr8s's own call has neither).
        body = await api_request(
            api,
            "GET",
            {"base": "/version", "version": "", "url": ""},
            doing="reading the API server's version",
            deadline=Deadline(HEALTH_TIMEOUT_SECONDS),
        )
    return str((body or {}).get("gitVersion", ""))


async def lookup_namespace(service: Service, namespace: str) -> EnvironmentLookup | None:
    """The namespace named so, managed or not; None when there is none (a create checks where it would go)."""
    async with connect(service.target) as api:
        found = await get_object(api, kinds.NAMESPACE, namespace, None, deadline=Deadline(STATUS_TIMEOUT_SECONDS))
    if found is None:
        return None
    return EnvironmentLookup(environment_of(found) or "", name_of(found), is_managed(found), annotations_of(found))


async def namespace_annotations(service: Service, *, label_selector: str | None = None) -> dict[str, Mapping[str, str]]:
    """The annotations of every namespace envspec manages, by namespace (where the API keeps its records)."""
    selector = f"{MANAGED_SELECTOR},{label_selector}" if label_selector else MANAGED_SELECTOR
    async with connect(service.target) as api:
        listing = await list_objects(
            api, kinds.NAMESPACE, None, deadline=Deadline(STATUS_TIMEOUT_SECONDS), label_selector=selector
        )
    return {name_of(item): annotations_of(item) for item in listing.items}
