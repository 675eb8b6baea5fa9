"""`diff`: the change set `up` would execute, with dry-run detail, changing nothing.

The change set comes from the same `prepare` and `reconcile` as `up`. For the
detail, each planned object is server-side applied with `dryRun=All` (the API
server runs defaulting and admission, so a quota or validation error shows here
too) and compared with the live object, both cleaned of what the server manages
(managedFields, resourceVersion, uid, timestamps, generation, status) and of the
annotations envspec stamps on every run (hash, lease). Secret values are never
shown: only whether each key would change.

A live object whose hash matches but whose content differs (edited by hand) is
shown as an update with the reason "drifted": `up` does not send it (its hash
matches); change the spec, or delete the object, to have it reapplied.
"""

from __future__ import annotations

import base64
import copy
import difflib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
from ruamel.yaml import YAML

from envspec.inventory import Inventory
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.ssa import get_object, resolve_type, server_side_apply
from envspec.kube.wait import task_group
from envspec.meta import LEASE_ANNOTATIONS, OBJECT_HASH_ANNOTATION
from envspec.operations.spec import PlanBuilder
from envspec.operations.up import prepare
from envspec.reconcile import Change as PlannedChange
from envspec.reconcile import ChangeSet, reconcile

Json = dict[str, Any]
Change = Literal["create", "update", "prune"]

SERVER_METADATA = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink")
IGNORED_ANNOTATIONS = (*LEASE_ANNOTATIONS, OBJECT_HASH_ANNOTATION, "kubectl.kubernetes.io/last-applied-configuration")
HIDDEN = "<hidden>"
HIDDEN_OLD = "<hidden: current value>"
HIDDEN_NEW = "<hidden: new value>"
DRY_RUN_CONCURRENCY = 16


@dataclass(frozen=True)
class ObjectDiff:
    ref: str
    namespace: str | None
    change: Change
    text: str  # unified diff (create/update) or empty (prune)
    reason: str = ""  # the change set's reason; for an update `up` would not send, why it shows


@dataclass(frozen=True)
class DiffResult:
    environment: str
    namespace: str
    differences: tuple[ObjectDiff, ...]
    changes: ChangeSet | None = None  # what up would execute

    @property
    def changed(self) -> bool:
        return bool(self.differences)

    def count(self, change: Change) -> int:
        return sum(1 for d in self.differences if d.change == change)


def normalize(obj: Mapping[str, Any] | None) -> Json | None:
    """The object without what the server manages or envspec restamps on every run."""
    if obj is None:
        return None
    result = copy.deepcopy(dict(obj))
    result.pop("status", None)
    metadata = result.get("metadata") or {}
    for name in SERVER_METADATA:
        metadata.pop(name, None)
    annotations = metadata.get("annotations") or {}
    for name in IGNORED_ANNOTATIONS:
        annotations.pop(name, None)
    if "annotations" in metadata and not annotations:
        del metadata["annotations"]
    if result.get("kind") == "Secret" and "stringData" in result:
        # What the server stores: stringData folded into data, base64-encoded.
        data = dict(result.get("data") or {})
        for key, value in (result.pop("stringData") or {}).items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        result["data"] = data
    return result


def hide_secret_values(live: Json | None, planned: Json | None) -> tuple[Json | None, Json | None]:
    """Replace Secret values by markers that only tell whether a value changes."""
    if (live or planned or {}).get("kind") != "Secret":
        return live, planned
    live_data = dict((live or {}).get("data") or {})
    planned_data = dict((planned or {}).get("data") or {})
    if live is not None and "data" in live:
        live["data"] = {k: HIDDEN if planned_data.get(k) == v else HIDDEN_OLD for k, v in live_data.items()}
    if planned is not None and "data" in planned:
        planned["data"] = {k: HIDDEN if live_data.get(k) == v else HIDDEN_NEW for k, v in planned_data.items()}
    return live, planned


def _sorted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def to_yaml(obj: Json | None) -> list[str]:
    if obj is None:
        return []
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump(_sorted(obj), out)
    return out.getvalue().splitlines(keepends=True)


def object_diff(ref: str, live: Json | None, planned: Json | None) -> str:
    """A unified diff of the cleaned objects; empty when they are the same."""
    before, after = hide_secret_values(normalize(live), normalize(planned))
    lines = difflib.unified_diff(to_yaml(before), to_yaml(after), fromfile=f"live/{ref}", tofile=f"planned/{ref}")
    return "".join(lines)


async def diff(
    target: ClusterTarget, build: PlanBuilder, *, deadline: Deadline, now: datetime | None = None
) -> DiffResult:
    """`envspec diff`: the change set of `up`, each object with its dry-run detail."""
    async with connect(target) as api:
        prepared = await prepare(api, build, deadline=deadline)
        changes = reconcile(prepared.plan, prepared.inventory, now=now or datetime.now(UTC))
        differences = await _differences(api, changes, prepared.inventory, deadline)
    pruned = [ObjectDiff(p.ref, p.namespace, "prune", "", p.reason) for p in changes.prunes]
    return DiffResult(changes.environment, changes.namespace, (*differences, *pruned), changes)


async def _differences(api: Any, changes: ChangeSet, inventory: Inventory, deadline: Deadline) -> list[ObjectDiff]:
    namespace_exists = inventory.namespace is not None
    found: dict[int, ObjectDiff] = {}
    limiter = anyio.CapacityLimiter(DRY_RUN_CONCURRENCY)
    planned = list(changes.changes())

    async def compare(index: int, change: PlannedChange) -> None:
        obj = change.obj
        rtype = await resolve_type(api, obj.api_version, obj.kind, deadline=deadline)
        async with limiter:
            live = inventory.get(change.key)
            if live is None and namespace_exists:
                # Not labelled for this environment, yet maybe there: up would take it over.
                live = await get_object(api, rtype, obj.name, obj.namespace, deadline=deadline)
            if namespace_exists or not rtype.namespaced:
                after = await server_side_apply(api, rtype, obj.manifest, deadline=deadline, dry_run=True)
            else:
                after = obj.manifest  # a dry run inside a namespace that does not exist yet fails
        text = object_diff(obj.ref, live, after)
        if text:
            kind: Change = "create" if live is None else "update"
            reason = change.reason if change.kind != "unchanged" else "drifted: the live object was changed by hand"
            found[index] = ObjectDiff(obj.ref, obj.namespace, kind, text, reason)

    async with task_group() as group:
        for index, change in enumerate(planned):
            group.start_soon(compare, index, change)
    return [found[i] for i in sorted(found)]
