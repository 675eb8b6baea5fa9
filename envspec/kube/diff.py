"""`envspec diff`: what `up` would change, object by object, without changing anything.

Each planned object is server-side applied with `dryRun=All` (the API server runs
defaulting and admission, so a quota or validation error shows here too) and the
result is compared with the live object, both cleaned of what the server manages
(managedFields, resourceVersion, uid, timestamps, generation, status) and of the
annotations envspec stamps on every run (hash, lease). Secret values are never
shown: only whether each key would change.
"""

from __future__ import annotations

import base64
import copy
import difflib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from ruamel.yaml import YAML

from envspec.apply import (
    LEASE_ANNOTATIONS,
    Inventory,
    PlanBuilder,
    belongs_to,
    key_of,
    read_inventory,
    ref_of,
    resolve_secrets,
)
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.ssa import get_object, resolve_type, server_side_apply
from envspec.kube.wait import task_group
from envspec.plan import OBJECT_HASH_ANNOTATION, Plan, PlannedObject

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


@dataclass(frozen=True)
class DiffResult:
    environment: str
    namespace: str
    differences: tuple[ObjectDiff, ...]

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


async def diff_environment(target: ClusterTarget, build: PlanBuilder, *, deadline: Deadline) -> DiffResult:
    draft = build(None)
    async with connect(target) as api:
        inventory = await read_inventory(api, draft.environment, draft.namespace, deadline=deadline)
        live_values = inventory.secret_values(draft.secret_slots, draft.namespace)
        plan = build(resolve_secrets(draft.secret_slots, live_values))
        differences = await _differences(api, plan, inventory, deadline)
    pruned = [
        ObjectDiff(ref_of(obj), (obj.get("metadata") or {}).get("namespace"), "prune", "")
        for key, obj in sorted(inventory.objects.items(), key=lambda kv: str(kv[0]))
        if key not in {key_of(o.manifest) for o in plan.objects} and belongs_to(obj, plan.environment)
    ]
    return DiffResult(plan.environment, plan.namespace, (*differences, *pruned))


async def _differences(api: Any, plan: Plan, inventory: Inventory, deadline: Deadline) -> list[ObjectDiff]:
    found: dict[int, ObjectDiff] = {}
    limiter = anyio.CapacityLimiter(DRY_RUN_CONCURRENCY)
    namespace_exists = inventory.namespace is not None

    async def compare(index: int, obj: PlannedObject) -> None:
        rtype = await resolve_type(api, obj.api_version, obj.kind, deadline=deadline)
        async with limiter:
            live = inventory.get(key_of(obj.manifest))
            if live is None and namespace_exists:
                # Not labelled for this environment, yet maybe there: up would take it over.
                live = await get_object(api, rtype, obj.name, obj.namespace, deadline=deadline)
            if namespace_exists or not rtype.namespaced:
                planned = await server_side_apply(api, rtype, obj.manifest, deadline=deadline, dry_run=True)
            else:
                planned = obj.manifest  # a dry run inside a namespace that does not exist yet fails
        text = object_diff(obj.ref, live, planned)
        if text:
            found[index] = ObjectDiff(obj.ref, obj.namespace, "create" if live is None else "update", text)

    async with task_group() as group:
        for index, obj in enumerate(plan.objects):
            group.start_soon(compare, index, obj)
    return [found[i] for i in sorted(found)]


def render_diff(result: DiffResult) -> str:
    if not result.changed:
        return f"no differences: environment {result.environment} (namespace {result.namespace}) matches the spec"
    parts: list[str] = []
    for difference in result.differences:
        where = f" in {difference.namespace}" if difference.namespace else ""
        if difference.change == "prune":
            parts.append(f"- {difference.ref}{where} would be pruned\n")
        else:
            verb = "created" if difference.change == "create" else "changed"
            parts.append(f"{'+' if difference.change == 'create' else '~'} {difference.ref}{where} would be {verb}\n")
            parts.append(difference.text)
    summary = (
        f"{len(result.differences)} difference(s): {result.count('create')} to create, "
        f"{result.count('update')} to change, {result.count('prune')} to prune"
    )
    return "".join(parts) + summary


def diff(target: ClusterTarget, build: PlanBuilder, *, timeout_seconds: float) -> DiffResult:
    """`envspec diff`: the one `anyio.run` of the command."""

    async def main() -> DiffResult:
        return await diff_environment(target, build, deadline=Deadline(timeout_seconds))

    return anyio.run(main)
