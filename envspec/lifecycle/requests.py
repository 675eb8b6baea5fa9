"""The two namespace writes of the lifecycle commands that `envspec.kube.ssa` has no function for.

Both go through ssa's `api_request`, so they get the same retries on transient failures
and the same `ClusterError` carrying the API server's message as every other request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kr8s import ServerError

from envspec.errors import ClusterError
from envspec.kube import kinds
from envspec.kube.deadline import Deadline
from envspec.kube.ssa import api_request, status_code

MERGE_PATCH = "application/merge-patch+json"
# The manager name recorded in managedFields for lease updates, so `kubectl get -o yaml
# --show-managed-fields` says who moved an expiry.
LEASE_FIELD_MANAGER = "envspec-lease"


async def merge_patch_namespace(
    api: Any, name: str, patch: Mapping[str, Any], *, deadline: Deadline, doing: str
) -> dict[str, Any]:
    """One JSON merge patch of namespace `name`; the namespace as stored afterwards."""
    body = await api_request(
        api,
        "PATCH",
        kinds.NAMESPACE.location(name, None),
        doing=doing,
        deadline=deadline,
        content=json.dumps(patch, separators=(",", ":")),
        headers={"Content-Type": MERGE_PATCH},
        params={"fieldManager": LEASE_FIELD_MANAGER},
    )
    assert body is not None  # missing_ok is False: a 404 raised
    return body


class ChangedSinceListed(Exception):
    """The namespace changed between gc's list and its delete (e.g. someone extended it)."""


async def delete_namespace_if_unchanged(
    api: Any, name: str, *, uid: str, resource_version: str, deadline: Deadline
) -> bool:
    """Delete namespace `name` only if it is still the very object gc judged; False if already gone.

    The preconditions make the API server refuse (409) a namespace recreated under the
    same name (uid) or modified since it was listed (resourceVersion): an `extend` that
    lands between gc's list and its delete wins. Raises ChangedSinceListed then.
    """
    options: dict[str, Any] = {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "propagationPolicy": "Background",
        "preconditions": {"uid": uid, "resourceVersion": resource_version},
    }
    try:
        body = await api_request(
            api,
            "DELETE",
            kinds.NAMESPACE.location(name, None),
            doing=f"deleting namespace/{name}",
            deadline=deadline,
            missing_ok=True,
            content=json.dumps(options),
        )
    except ClusterError as exc:
        cause = exc.__cause__
        if isinstance(cause, ServerError) and status_code(cause) == 409:
            raise ChangedSinceListed(str(exc)) from exc
        raise
    return body is not None
