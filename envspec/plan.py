"""The compiled plan: every Kubernetes object of an environment, in apply order.

A plan is data. Waves are applied one after another; the objects of one wave are
independent of each other and may be applied concurrently. Deletion (prune, down)
runs the waves in reverse.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

# The compiler stamps these on every object; they are defined once, in envspec.meta.
from envspec.meta import (
    ENVIRONMENT_LABEL,
    EXPIRES_AT_ANNOTATION,
    JANITOR_EXPIRES_ANNOTATION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    OBJECT_HASH_ANNOTATION,
    PLAN_HASH_ANNOTATION,
    SPEC_NAME_ANNOTATION,
    TTL_ANNOTATION,
    WAVE_ANNOTATION,
    Manifest,
    is_managed,
    labels_of,
)

__all__ = [
    "ENVIRONMENT_LABEL",
    "EXPIRES_AT_ANNOTATION",
    "JANITOR_EXPIRES_ANNOTATION",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "OBJECT_HASH_ANNOTATION",
    "PLAN_HASH_ANNOTATION",
    "SPEC_NAME_ANNOTATION",
    "TTL_ANNOTATION",
    "WAVE_ANNOTATION",
    "Manifest",
    "Plan",
    "PlannedObject",
    "SecretSlot",
    "is_managed",
    "labels_of",
]


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
