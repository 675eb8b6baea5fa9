"""What is live: the objects of one environment on the cluster, as data. Pure.

`envspec.operations.live.read_inventory` fills it in one go; the reconcile step
compares a plan with it; the runner keeps it up to date as it writes, so `watch`
can reconcile its next cycle without listing again.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from envspec.meta import ObjectKey, key_of
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
