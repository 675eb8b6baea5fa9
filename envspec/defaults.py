"""Defaults: every value a spec leaves out, resolved once, and the defaulted spec the compiler takes.

Kept apart from validation (as Skaffold keeps `schema/defaults` apart from
`schema/validation`): the compiler imports this module, never the checks. The
functions here decide values; whether a value is acceptable is decided by
`envspec.validation.meaning`, which calls them. The only failures here are settings
from the process environment that cannot be read at all (`SettingError`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from envspec.loader import LoadedDocument, PathKey
from envspec.model import EnvironmentSpec, Quota, Resources
from envspec.units import (
    MAX_DURATION,
    MAX_DURATION_SECONDS,
    NEVER,
    OutOfRange,
    format_cpu,
    format_duration,
    format_memory,
    parse_duration,
    parse_quantity,
    parse_quantity_in_range,
)

DEFAULT_NAMESPACE_PREFIX = "envspec"
DEFAULT_TTL = "60m"
DEFAULT_REQUESTS = {"cpu": "100m", "memory": "256Mi"}
DEFAULT_LIMITS = {"cpu": "1000m", "memory": "1Gi"}
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also accepts '²', which int() refuses
AUTO = "auto"  # a quota sized exactly to what the environment needs


@dataclass(frozen=True)
class ContainerResources:
    """Effective requests and limits of one container, defaults applied."""

    requests: dict[str, str]
    limits: dict[str, str]

    def as_manifest(self) -> dict[str, dict[str, str]]:
        return {"requests": dict(self.requests), "limits": dict(self.limits)}


@dataclass(frozen=True)
class ValidSpec:
    """A spec that passed validation, with every default resolved."""

    spec: EnvironmentSpec
    source: str
    environ: Mapping[str, str]  # the variables `${env.X}` references read, nothing else
    namespace_prefix: str
    ttl: str  # "60m", "1h30m" or "never"
    ttl_seconds: int | None
    default_resources: ContainerResources
    quota_cpu: str
    quota_memory: str
    quota_pods: int
    resources: dict[str, ContainerResources]  # component name -> effective resources
    service_layers: list[list[str]]  # services grouped by dependsOn, in start order
    document: LoadedDocument | None = field(default=None, repr=False, compare=False)


class SettingError(ValueError):
    """A default taken from the process environment that cannot be used; reported at `path`."""

    def __init__(self, path: PathKey, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@dataclass(frozen=True)
class NamespacePrefix:
    """The prefix, and where it came from: `namespacePrefix`, `K8S_NAMESPACE_PREFIX` or `default`."""

    value: str
    origin: str


def namespace_prefix(spec: EnvironmentSpec, environ: Mapping[str, str]) -> NamespacePrefix:
    if spec.namespace_prefix is not None:
        return NamespacePrefix(spec.namespace_prefix, "namespacePrefix")
    from_environment = environ.get("K8S_NAMESPACE_PREFIX")
    if from_environment:
        return NamespacePrefix(from_environment, "K8S_NAMESPACE_PREFIX")
    return NamespacePrefix(DEFAULT_NAMESPACE_PREFIX, "default")


def ttl(spec: EnvironmentSpec, environ: Mapping[str, str]) -> tuple[str, int | None]:
    """(the ttl as envspec writes it, its seconds or None for `never`); SettingError for a bad K8S_TTL_MINUTES."""
    text = spec.ttl
    if text is None:
        minutes = environ.get("K8S_TTL_MINUTES")
        if minutes is None or minutes.strip() == "":
            text = DEFAULT_TTL
        elif not _DIGITS.fullmatch(minutes.strip()) or _whole_minutes(minutes) == 0:
            raise SettingError(
                ("ttl",),
                f"environment variable K8S_TTL_MINUTES={minutes!r} must be a whole number of minutes > 0",
            )
        elif _whole_minutes(minutes) * 60 > MAX_DURATION_SECONDS:
            raise SettingError(
                ("ttl",),
                f"environment variable K8S_TTL_MINUTES={_shown(minutes)} is out of range: "
                f"at most {MAX_DURATION_SECONDS // 60} minutes ({MAX_DURATION}, 100 years)",
            )
        else:
            text = format_duration(_whole_minutes(minutes) * 60)
    if text == NEVER:
        return NEVER, None
    seconds = parse_duration(text)
    return format_duration(seconds), seconds


def _whole_minutes(digits: str) -> int:
    """The number; the digits are counted first, so a 5000-digit value never reaches Python's
    integer-string limit (anything that long is out of range anyway)."""
    digits = digits.strip().lstrip("0") or "0"
    return int(digits) if len(digits) <= len(str(MAX_DURATION_SECONDS)) else MAX_DURATION_SECONDS + 1


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:20] + "…" + text[-8:])


def default_ttl() -> tuple[str, int]:
    """The ttl used when K8S_TTL_MINUTES cannot be read (so the other checks still run)."""
    return DEFAULT_TTL, parse_duration(DEFAULT_TTL)


def default_resources(spec: EnvironmentSpec, environ: Mapping[str, str]) -> ContainerResources:
    """Built-in defaults, then DEFAULT_*_LIMIT, then `resources.defaults`; SettingError for a bad variable."""
    requests = dict(DEFAULT_REQUESTS)
    limits = dict(DEFAULT_LIMITS)
    for variable, key in (("DEFAULT_CPU_LIMIT", "cpu"), ("DEFAULT_MEMORY_LIMIT", "memory")):
        value = environ.get(variable, "").strip()
        if value:
            try:
                parse_quantity_in_range(value)
            except OutOfRange as exc:
                raise SettingError(("resources",), f"environment variable {variable}: {exc}") from None
            except ValueError:
                raise SettingError(
                    ("resources",), f"environment variable {variable}={value!r} is not a valid quantity"
                ) from None
            limits[key] = value
    settings = spec.resources
    written = settings.defaults if settings is not None else None
    written_requests: set[str] = set()
    if written is not None:
        for target, source, keys in (
            (requests, written.requests, written_requests),
            (limits, written.limits, set()),
        ):
            if source is not None:
                given = {k: v for k, v in source.model_dump().items() if v is not None}
                target.update(given)
                keys.update(given)
    for key in ("cpu", "memory"):
        # A default limit (written, or from DEFAULT_*_LIMIT) below the built-in default
        # request lowers that request too, as Kubernetes does for a missing request.
        if key not in written_requests and parse_quantity(requests[key]) > parse_quantity(limits[key]):
            requests[key] = limits[key]
    return ContainerResources(requests, limits)


def effective_resources(resources: Resources | None, defaults: ContainerResources) -> ContainerResources:
    """One container's requests and limits: its own, else the defaults."""
    requests = dict(defaults.requests)
    limits = dict(defaults.limits)
    own_requests = resources.requests.model_dump() if resources and resources.requests else {}
    own_limits = resources.limits.model_dump() if resources and resources.limits else {}
    for key in ("cpu", "memory"):
        if own_limits.get(key) is not None:
            limits[key] = own_limits[key]
            # A container that lowers its limit below the default request gets a request
            # equal to its limit, as Kubernetes itself defaults a missing request.
            if own_requests.get(key) is None and parse_quantity(requests[key]) > parse_quantity(limits[key]):
                requests[key] = limits[key]
        if own_requests.get(key) is not None:
            requests[key] = own_requests[key]
    return ContainerResources(requests, limits)


@dataclass(frozen=True)
class QuotaNeed:
    """What the environment needs at most at once: the floor of its quota."""

    cpu: Fraction
    memory: Fraction
    pods: int

    def of(self, key: str) -> Fraction:
        return self.cpu if key == "cpu" else self.memory


def quota_need(spec: EnvironmentSpec, resources: Mapping[str, ContainerResources]) -> QuotaNeed:
    """Container limits x replicas of every service and database, plus the largest test."""
    need: dict[str, Fraction] = {}
    for key in ("cpu", "memory"):
        workloads = sum(
            (parse_quantity(resources[n].limits[key]) * s.replicas for n, s in spec.services.items()),
            Fraction(0),
        )
        databases = sum((parse_quantity(resources[n].limits[key]) for n in spec.databases), Fraction(0))
        largest_test = max((parse_quantity(resources[n].limits[key]) for n in spec.tests), default=Fraction(0))
        need[key] = workloads + databases + largest_test
    pods = sum(s.replicas for s in spec.services.values()) + len(spec.databases) + (1 if spec.tests else 0)
    return QuotaNeed(need["cpu"], need["memory"], pods)


def written_quota(spec: EnvironmentSpec) -> Quota:
    """The quota as written; the model's defaults (`auto`, 10 pods) where the spec says nothing."""
    if spec.resources is not None and spec.resources.quota is not None:
        return spec.resources.quota
    return Quota()


def quota_amount(key: str, written: str, need: QuotaNeed) -> str:
    """The quota's limits.cpu or limits.memory: `auto` becomes exactly the need."""
    if written != AUTO:
        return written
    amount = need.of(key)
    return format_amount(key, amount) if amount else "0"


def format_amount(key: str, amount: Fraction) -> str:
    """CPU in cores or millicores, memory in the largest exact binary unit."""
    return format_cpu(amount) if key == "cpu" else format_memory(amount)
