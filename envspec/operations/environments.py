"""Which environment an operation means, and finding its namespace on the cluster.

An environment is a namespace labelled `app.kubernetes.io/managed-by: envspec` and
`envspec.dev/environment: <name>`, plus the objects carrying the same labels.
Nothing envspec does deletes, changes or reports an object without those labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from envspec.errors import EnvspecError
from envspec.kube import kinds
from envspec.kube.deadline import Deadline
from envspec.kube.ssa import get_object, list_objects
from envspec.meta import MANAGED_BY_LABEL, MANAGED_BY_VALUE, environment_selector, is_managed, name_of
from envspec.plan import Plan

Json = dict[str, Any]


@dataclass(frozen=True)
class EnvironmentRef:
    """Which environment a command means: from a spec (`-f`, exact) or by name (`--name`)."""

    environment: str  # the environment label value: name, or name-id
    namespace: str | None = None  # known when it comes from a spec
    plan: Plan | None = None  # with `-f`: what should be there, to show what is missing

    def describe(self) -> str:
        return f"environment {self.environment}" + (f" (namespace {self.namespace})" if self.namespace else "")


async def find_namespace(api: Any, ref: EnvironmentRef, *, deadline: Deadline) -> Json | None:
    """The environment's namespace, managed or not (callers decide); None when there is none.

    By name: the namespace labelled for the environment, else a namespace named so
    (so that `down --name kube-system` is refused rather than "not found").
    """
    if ref.namespace:
        return await get_object(api, kinds.NAMESPACE, ref.namespace, None, deadline=deadline)
    selector = environment_selector(ref.environment)
    listing = await list_objects(api, kinds.NAMESPACE, None, deadline=deadline, label_selector=selector)
    if len(listing.items) > 1:
        names = ", ".join(name_of(n) for n in listing.items)
        raise EnvspecError(f"several namespaces carry environment {ref.environment}: {names}; use -f with the spec")
    if listing.items:
        return listing.items[0]
    return await get_object(api, kinds.NAMESPACE, ref.environment, None, deadline=deadline)


def require_managed(namespace: Json, what: str) -> None:
    if not is_managed(namespace):
        raise EnvspecError(
            f"refusing to {what} namespace {name_of(namespace)}: envspec does not manage it "
            f"(no label {MANAGED_BY_LABEL}={MANAGED_BY_VALUE})"
        )
