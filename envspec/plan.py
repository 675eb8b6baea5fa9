"""The compiled plan: every Kubernetes object of an environment, in apply order.

A plan is data. Waves are applied one after another; the objects of one wave are
independent of each other and may be applied concurrently. Deletion (prune, down)
runs the waves in reverse.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Manifest = dict[str, Any]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "envspec"
ENVIRONMENT_LABEL = "envspec.dev/environment"
WAVE_ANNOTATION = "envspec.dev/wave"
TTL_ANNOTATION = "envspec.dev/ttl"
EXPIRES_AT_ANNOTATION = "envspec.dev/expires-at"
PLAN_HASH_ANNOTATION = "envspec.dev/plan-hash"
OBJECT_HASH_ANNOTATION = "envspec.dev/object-hash"
SPEC_NAME_ANNOTATION = "envspec.dev/spec-name"
JANITOR_EXPIRES_ANNOTATION = "janitor/expires"


@dataclass(frozen=True)
class PlannedObject:
    """One object of the plan and the wave it belongs to."""

    wave: int
    manifest: Manifest

    @property
    def api_version(self) -> str:
        return str(self.manifest["apiVersion"])

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        value = self.manifest["metadata"].get("namespace")
        return None if value is None else str(value)

    @property
    def ref(self) -> str:
        """`kind/name` in kubectl's lower-case form, e.g. `deployment/api`."""
        return f"{self.kind.lower()}/{self.name}"


@dataclass(frozen=True, order=True)
class SecretSlot:
    """A generated value the plan needs: key `key` of Secret `secret` (e.g. a database password).

    The compiler never invents secrets (it is pure). Its caller passes the values in:
    `render` a placeholder or fresh random values, `up` the values already live in the
    cluster, generating only the missing ones.
    """

    secret: str
    key: str

    def __str__(self) -> str:
        return f"{self.secret}/{self.key}"


@dataclass(frozen=True)
class Plan:
    """The ordered objects of one environment."""

    environment: str  # the environment label value: name, or name-id
    namespace: str
    ttl_seconds: int | None  # None: never expires
    objects: tuple[PlannedObject, ...]
    secret_slots: tuple[SecretSlot, ...] = field(default=())

    @property
    def wave_count(self) -> int:
        return 1 + max((o.wave for o in self.objects), default=-1)

    def waves(self) -> Iterator[tuple[int, tuple[PlannedObject, ...]]]:
        """Yield (wave number, objects) for every non-empty wave, in apply order."""
        by_wave: dict[int, list[PlannedObject]] = {}
        for obj in self.objects:
            by_wave.setdefault(obj.wave, []).append(obj)
        for wave in sorted(by_wave):
            yield wave, tuple(by_wave[wave])

    def manifests(self) -> list[Manifest]:
        return [o.manifest for o in self.objects]

    def ordering_text(self) -> str:
        """A stable text form of the order, one line per object, for reviews and tests."""
        return "\n".join(f"{o.wave} {o.kind}/{o.name}" for o in self.objects) + "\n"

    def find(self, kind: str, name: str) -> PlannedObject | None:
        for obj in self.objects:
            if obj.kind == kind and obj.name == name:
                return obj
        return None


def labels_of(manifest: Mapping[str, Any]) -> Mapping[str, str]:
    labels: Mapping[str, str] = manifest.get("metadata", {}).get("labels") or {}
    return labels


def is_managed(manifest: Mapping[str, Any]) -> bool:
    """True when envspec owns the object (it carries the managed-by label)."""
    return labels_of(manifest).get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE
