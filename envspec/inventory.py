"""What is live: the objects of one environment on the cluster, read in one go.

The reconcile step compares a plan with an `Inventory`; the runner keeps it up to
date as it writes, so `watch` can reconcile its next cycle without listing again.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from envspec.kube import kinds
from envspec.kube.deadline import Deadline
from envspec.kube.ssa import get_object, list_objects
from envspec.kube.wait import task_group
from envspec.meta import ObjectKey, belongs_to, environment_selector, key_of
from envspec.plan import SecretSlot

Json = dict[str, Any]


def _is_namespace(key: ObjectKey) -> bool:
    return key[1] == "Namespace" and key[0] == ""


@dataclass
class Inventory:
    """The live objects of one environment, by key."""

    namespace: Json | None = None  # the environment's namespace, whoever owns it
    objects: dict[ObjectKey, Json] = field(default_factory=dict)

    def get(self, key: ObjectKey) -> Json | None:
        return self.namespace if _is_namespace(key) else self.objects.get(key)

    def put(self, obj: Json) -> None:
        key = key_of(obj)
        if _is_namespace(key):
            self.namespace = obj
        else:
            self.objects[key] = obj

    def drop(self, key: ObjectKey) -> None:
        self.objects.pop(key, None)

    def copy(self) -> Inventory:
        return Inventory(self.namespace, dict(self.objects))

    def secret_values(self, slots: Iterable[SecretSlot], namespace: str) -> dict[SecretSlot, str]:
        """Values of the slots that live Secrets of this environment already hold."""
        values: dict[SecretSlot, str] = {}
        for slot in slots:
            secret = self.objects.get(("", "Secret", namespace, slot.secret))
            encoded = ((secret or {}).get("data") or {}).get(slot.key)
            if encoded is None:
                continue
            try:
                values[slot] = base64.b64decode(encoded, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue  # not ours to interpret: regenerate
        return values


async def read_inventory(
    api: Any, environment: str, namespace: str, *, deadline: Deadline, extra_types: Iterable[kinds.ResourceType] = ()
) -> Inventory:
    """The namespace (whatever its labels) and every object labelled for `environment`.

    One list per kind envspec manages, concurrently: the namespaced kinds only when
    the namespace exists.
    """
    inventory = Inventory()
    inventory.namespace = await get_object(api, kinds.NAMESPACE, namespace, None, deadline=deadline)
    types = {t for t in [*kinds.MANAGED_KINDS.values(), *extra_types] if t.kind != "Namespace"}
    if inventory.namespace is None:
        types = {t for t in types if not t.namespaced}
    selector = environment_selector(environment)

    async def collect(rtype: kinds.ResourceType) -> None:
        listing = await list_objects(api, rtype, namespace, deadline=deadline, label_selector=selector)
        for item in listing.items:
            if belongs_to(item, environment):
                inventory.objects[key_of(item)] = item

    async with task_group() as group:
        for rtype in sorted(types, key=lambda t: t.plural):
            group.start_soon(collect, rtype)
    return inventory
