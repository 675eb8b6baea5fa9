"""Requests envspec makes to the API server: server-side apply, get, list, merge patch, delete.

kr8s 0.20 has no server-side apply and retries nothing but re-authentication, so
every request goes through `api_request`, which

- retries what is transient (connection refused/reset, timeouts, 429, 5xx) with
  exponential backoff until the caller's deadline, honouring Retry-After;
- turns everything else into a `ClusterError` that names the object and carries
  the API server's own message: `applying deployment/api in ns-x: API server
  says: ...`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from kr8s import APITimeoutError, ServerError

from envspec.errors import ClusterError
from envspec.kube.client import transport_reason
from envspec.kube.deadline import Deadline
from envspec.kube.kinds import ResourceType, known_type

FIELD_MANAGER = "envspec"
APPLY_PATCH = "application/apply-patch+yaml"  # JSON is YAML: the body is sent as JSON
MERGE_PATCH = "application/merge-patch+json"
LIST_PAGE_SIZE = 500

# Backoff between attempts: 0.2 s, 0.4 s, 0.8 s ... capped at 5 s, with jitter so that
# the concurrent requests of one wave do not retry in lockstep.
FIRST_BACKOFF = 0.2
MAX_BACKOFF = 5.0
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})

Json = dict[str, Any]


@dataclass(frozen=True)
class ObjectList:
    """Items of a (complete, paginated) list and the resourceVersion to watch from."""

    items: list[Json]
    resource_version: str


class _Retry(Exception):
    """A transient failure: worth another attempt after `delay` seconds (None: use backoff)."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


def describe(rtype: ResourceType, name: str, namespace: str | None) -> str:
    """`deployment/api in ns-x`, or `namespace/ns-x` for cluster-scoped objects."""
    where = f" in {namespace}" if namespace and rtype.namespaced else ""
    return f"{rtype.ref(name)}{where}"


def server_message(exc: ServerError) -> str:
    """The API server's Status message, or the HTTP status line when there is none."""
    response = exc.response
    if response is not None:
        try:
            status = response.json()
        except (json.JSONDecodeError, ValueError, httpx.ResponseNotRead):
            status = None
        if isinstance(status, dict) and status.get("message"):
            return str(status["message"])
        return f"HTTP {response.status_code} {response.reason_phrase}".strip()
    return str(exc)


def status_code(exc: ServerError) -> int | None:
    return exc.response.status_code if exc.response is not None else None


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before attempt `attempt + 1`: the server's Retry-After, else exponential with jitter."""
    if retry_after is not None:
        return min(MAX_BACKOFF, retry_after)
    return min(MAX_BACKOFF, FIRST_BACKOFF * 2.0 ** (attempt - 1)) * random.uniform(0.8, 1.2)


def is_transient(code: int | None) -> bool:
    """Worth retrying: too many requests, or the server (or a proxy in front) failing for now."""
    return code in RETRYABLE_STATUS


async def api_request(
    api: Any,
    method: str,
    location: Mapping[str, Any],
    *,
    doing: str,
    deadline: Deadline,
    missing_ok: bool = False,
    **httpx_arguments: Any,
) -> Json | None:
    """One API call with retries; the decoded JSON body, or None for 404 when `missing_ok`."""
    attempt = 0
    while True:
        try:
            return await _attempt(api, method, location, doing=doing, missing_ok=missing_ok, **httpx_arguments)
        except _Retry as transient:
            attempt += 1
            delay = backoff_delay(attempt, transient.delay)
            if delay >= deadline.remaining():
                raise ClusterError(
                    f"{doing}: {transient.reason} (gave up after {attempt} attempts in {deadline.elapsed():.1f}s)"
                ) from None
            await anyio.sleep(delay)


async def _attempt(
    api: Any,
    method: str,
    location: Mapping[str, Any],
    *,
    doing: str,
    missing_ok: bool,
    **httpx_arguments: Any,
) -> Json | None:
    try:
        async with api.call_api(method, **location, **httpx_arguments) as response:
            body = response.json() if response.content else {}
            return body if isinstance(body, dict) else {"items": body}
    except ServerError as exc:
        code = status_code(exc)
        if code == 404 and missing_ok:
            return None
        if is_transient(code):
            raise _Retry(f"API server answered {code}: {server_message(exc)}", _retry_after(exc)) from exc
        raise ClusterError(f"{doing}: API server says: {server_message(exc)}") from exc
    except APITimeoutError as exc:
        raise _Retry("the API server did not answer in time") from exc
    except httpx.TransportError as exc:
        raise _Retry(transport_reason(exc)) from exc


def _retry_after(exc: ServerError) -> float | None:
    header = exc.response.headers.get("Retry-After") if exc.response is not None else None
    try:
        return float(header) if header else None
    except ValueError:
        return None


async def server_side_apply(
    api: Any, rtype: ResourceType, manifest: Mapping[str, Any], *, deadline: Deadline, dry_run: bool = False
) -> Json:
    """Apply `manifest` as field manager `envspec`, taking over conflicting fields.

    Returns the object as the server stored it (or would store it, with `dry_run`).
    """
    metadata = manifest["metadata"]
    name, namespace = str(metadata["name"]), metadata.get("namespace")
    params = {"fieldManager": FIELD_MANAGER, "force": "true"}
    if dry_run:
        params["dryRun"] = "All"
    verb = "dry-run applying" if dry_run else "applying"
    body = await api_request(
        api,
        "PATCH",
        rtype.location(name, namespace),
        doing=f"{verb} {describe(rtype, name, namespace)}",
        deadline=deadline,
        content=json.dumps(manifest, separators=(",", ":")),
        headers={"Content-Type": APPLY_PATCH},
        params=params,
    )
    assert body is not None  # missing_ok is False: a 404 raised
    return body


async def get_object(
    api: Any, rtype: ResourceType, name: str, namespace: str | None, *, deadline: Deadline
) -> Json | None:
    """The live object, or None when it does not exist (no polling, unlike kr8s's `get`)."""
    return await api_request(
        api,
        "GET",
        rtype.location(name, namespace),
        doing=f"reading {describe(rtype, name, namespace)}",
        deadline=deadline,
        missing_ok=True,
    )


async def list_objects(
    api: Any,
    rtype: ResourceType,
    namespace: str | None,
    *,
    deadline: Deadline,
    label_selector: str | None = None,
    field_selector: str | None = None,
) -> ObjectList:
    """Every object of a kind (paginated); `namespace=None` lists all namespaces."""
    items: list[Json] = []
    params = _list_params(LIST_PAGE_SIZE, label_selector, field_selector)
    where = _where(rtype, namespace)
    while True:
        page = await api_request(
            api,
            "GET",
            rtype.location(None, namespace),
            doing=f"listing {rtype.plural}{where}",
            deadline=deadline,
            params=dict(params),
        )
        assert page is not None
        kind = rtype.kind
        for item in page.get("items") or []:
            # List items carry no apiVersion/kind; add them so items look like manifests.
            item.setdefault("apiVersion", rtype.api_version)
            item.setdefault("kind", kind)
            items.append(item)
        page_metadata = page.get("metadata") or {}
        token = page_metadata.get("continue")
        if not token:
            return ObjectList(items, str(page_metadata.get("resourceVersion", "")))
        params["continue"] = token


async def collection_version(
    api: Any,
    rtype: ResourceType,
    namespace: str | None,
    *,
    deadline: Deadline,
    label_selector: str | None = None,
    field_selector: str | None = None,
) -> str:
    """The resourceVersion of a kind's collection now, to watch from, without reading its objects.

    Every page of a paginated list carries the resourceVersion of the one snapshot they
    are cut from, so a list of one item gives it as well as a list of all: a watch from
    it reports exactly what changes afterwards. For a reader of new objects only (events),
    the old ones, hundreds in an environment that has run a few test suites, are not
    worth their transfer and parsing.
    """
    page = await api_request(
        api,
        "GET",
        rtype.location(None, namespace),
        doing=f"reading the version of {rtype.plural}{_where(rtype, namespace)}",
        deadline=deadline,
        params=_list_params(1, label_selector, field_selector),
    )
    assert page is not None
    return str((page.get("metadata") or {}).get("resourceVersion", ""))


def _list_params(limit: int, label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params = {"limit": str(limit)}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def _where(rtype: ResourceType, namespace: str | None) -> str:
    return f" in {namespace}" if namespace and rtype.namespaced else ""


class ChangedSinceRead(ClusterError):
    """A conditional delete was refused (409): the object changed, or was recreated, since it was read."""


def delete_options(*, uid: str | None = None, resource_version: str | None = None) -> Json:
    """DeleteOptions with background propagation and the preconditions given."""
    options: Json = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
    preconditions = {key: value for key, value in (("uid", uid), ("resourceVersion", resource_version)) if value}
    if preconditions:
        options["preconditions"] = preconditions
    return options


async def delete_object(
    api: Any,
    rtype: ResourceType,
    name: str,
    namespace: str | None,
    *,
    deadline: Deadline,
    uid: str | None = None,
    resource_version: str | None = None,
) -> bool:
    """Delete with background propagation; False when it was already gone.

    `uid` (and `resource_version`) make the delete conditional: an object recreated
    under the same name (or modified) since it was read is left alone, and
    ChangedSinceRead is raised.
    """
    doing = f"deleting {describe(rtype, name, namespace)}"
    try:
        body = await api_request(
            api,
            "DELETE",
            rtype.location(name, namespace),
            doing=doing,
            deadline=deadline,
            missing_ok=True,
            content=json.dumps(delete_options(uid=uid, resource_version=resource_version)),
        )
    except ClusterError as exc:
        cause = exc.__cause__
        if isinstance(cause, ServerError) and status_code(cause) == 409:
            raise ChangedSinceRead(exc.message) from cause
        raise
    return body is not None


async def merge_patch(
    api: Any,
    rtype: ResourceType,
    name: str,
    namespace: str | None,
    patch: Mapping[str, Any],
    *,
    field_manager: str,
    deadline: Deadline,
    doing: str,
) -> Json:
    """One JSON merge patch; the object as stored afterwards.

    Writes that are not the object's desired state (a lease renewal, say) use their
    own field manager, so `kubectl get --show-managed-fields` says who moved what.
    """
    body = await api_request(
        api,
        "PATCH",
        rtype.location(name, namespace),
        doing=doing,
        deadline=deadline,
        content=json.dumps(patch, separators=(",", ":")),
        headers={"Content-Type": MERGE_PATCH},
        params={"fieldManager": field_manager},
    )
    assert body is not None  # missing_ok is False: a 404 raised
    return body


_discovered: dict[tuple[int, str, str], ResourceType] = {}


async def resolve_type(api: Any, api_version: str, kind: str, *, deadline: Deadline) -> ResourceType:
    """The REST address of a kind: from the static table, else from the server's discovery."""
    known = known_type(api_version, kind)
    if known is not None:
        return known
    key = (id(api), api_version, kind)
    if key not in _discovered:
        group, _, version = api_version.rpartition("/")
        # base + url, no version part: kr8s joins parts with "/" and would add a trailing one.
        location = {
            "base": f"/apis/{group}" if group else "/api",
            "version": "",
            "namespace": None,
            "url": version,
        }
        listing = await api_request(
            api,
            "GET",
            location,
            doing=f"looking up kind {kind} in {api_version}",
            deadline=deadline,
            missing_ok=True,
        )
        for resource in (listing or {}).get("resources", []):
            if resource.get("kind") == kind and "/" not in resource.get("name", ""):
                _discovered[key] = ResourceType(api_version, kind, resource["name"], bool(resource["namespaced"]))
                break
        else:
            raise ClusterError(f"the cluster does not serve kind {kind} of {api_version}")
    return _discovered[key]
