"""The maestro-env.yaml v1 schema: every field, its default and its description.

This module is the one place the spec language is defined. The JSON Schema
(`envspec schema`, schemas/maestro-env.schema.json) is generated from it, and
the validator maps pydantic's errors back to the YAML nodes. Checks that need
more than one field (references, dependencies, quota) live in envspec/validation/meaning.py;
defaults that depend on the process environment or on other fields in envspec/defaults.py.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from envspec.units import NEVER, OutOfRange, parse_duration, parse_quantity_in_range

API_VERSION = "envspec/v1"
ENGINES = ("postgresql", "mysql", "mongodb", "redis")
Engine = Literal["postgresql", "mysql", "mongodb", "redis"]
NAME_MAX_LENGTH = 40
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# envspec's own container variables (the secret-backed helpers of embedded references).
RESERVED_ENV_PREFIX = "ENVSPEC_"
HELPER_EXPANSION = "$(" + RESERVED_ENV_PREFIX


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("envspec", message)


def _fail_at(key: str, message: str) -> PydanticCustomError:
    """An error about one entry of a mapping field; the validator locates it at that entry."""
    return PydanticCustomError("envspec_at_key", "{reason}", {"key": key, "reason": message})


def _as_text(value: Any, what: str) -> str:
    """Scalars a user would expect to be text (`version: 15`, `TIMEOUT: 30`) become text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value
    raise _fail(f"must be {what}")


def _quantity(value: Any) -> str:
    text = _as_text(value, "a quantity such as 500m, 2, 256Mi or 1Gi")
    try:
        parse_quantity_in_range(text)
    except OutOfRange as exc:
        raise _fail(str(exc)) from None
    except ValueError:
        raise _fail(f"invalid quantity {text!r}: expected e.g. 500m, 2, 256Mi or 1Gi") from None
    return text


def _quota_quantity(value: Any) -> str:
    if value == "auto":
        return "auto"
    return _quantity(value)


def _duration(value: Any) -> str:
    if value == NEVER:
        return NEVER
    if not isinstance(value, str) or value.isdigit():  # a bare number, as written: it lacks a unit
        raise _fail("must be a duration such as 30s, 45m, 2h, 1h30m or 7d")
    try:
        parse_duration(value)
    except OutOfRange as exc:
        raise _fail(str(exc)) from None
    except ValueError as exc:
        raise _fail(f"{exc}: expected e.g. 30s, 45m, 2h, 1h30m or 7d") from None
    return value


def _ttl(value: Any) -> str:
    if value == NEVER:
        return NEVER
    return _duration(value)


def _integer(minimum: int, maximum: int | None = None) -> Any:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise _fail(_range_text(minimum, maximum))
        number: int = value
        if number < minimum or (maximum is not None and number > maximum):
            raise _fail(_range_text(minimum, maximum))
        return number

    return check


def _range_text(minimum: int, maximum: int | None) -> str:
    if maximum is None:
        return f"must be an integer >= {minimum}"
    return f"must be an integer between {minimum} and {maximum}"


def _helper_expansion_problem(text: str) -> str | None:
    """Spec text reaches the container exactly as written (envspec escapes Kubernetes' $(VAR)
    expansion), so `$(ENVSPEC_…)` could never mean what its writer hoped: say so."""
    if HELPER_EXPANSION not in text:
        return None
    return (
        f"{HELPER_EXPANSION}…) names a variable reserved for envspec; spec text is passed on as written, "
        "without $(VAR) expansion: use a reference such as ${db.password} in an env value instead"
    )


# One piece of a shell word: plain characters, a backslash escape, a '…' or a "…" string.
_WORD_PIECE = re.compile(r"""[^ \t\r\n'"\\]++|\\(.)|'([^']*+)'|"((?:[^"\\]++|\\.)*+)"|([ \t\r\n]++)|(.)""", re.S)
_DOUBLE_QUOTED_ESCAPE = re.compile(r'\\(["\\])')
_IN_DOUBLE_QUOTES = re.compile(r'(?:[^"\\]++|\\.)*+', re.S)


# As many words as a spec may have nodes (loader.MAX_NODES): a string is no way around it.
MAX_WORDS = 100_000


def split_words(text: str) -> list[str]:
    """`text` split into words as `shlex.split` does (POSIX rules: quotes, backslashes), in
    linear time: shlex reads a character at a time, a minute for a 10 MB command."""
    words: list[str] = []
    word: list[str] | None = None
    for piece in _WORD_PIECE.finditer(text):
        escaped, single, double, space, stray = piece.groups()
        if space is not None:
            if word is not None:
                words.append("".join(word))
                word = None
                if len(words) > MAX_WORDS:
                    raise ValueError(f"more than {MAX_WORDS:,} words, the most a command may have")
            continue
        if stray is not None:
            raise ValueError(_split_error(text, stray, piece.end()))
        if word is None:
            word = []
        if escaped is not None:
            word.append(escaped)
        elif single is not None:
            word.append(single)
        elif double is not None:
            word.append(_DOUBLE_QUOTED_ESCAPE.sub(r"\1", double))
        else:
            word.append(piece.group())
    if word is not None:
        words.append("".join(word))
    return words


def _split_error(text: str, stray: str, after: int) -> str:
    """shlex's own words for what is wrong: a final backslash (also inside an unclosed "…")
    has nothing to escape; otherwise a quote is not closed."""
    if stray == '"':
        after = _IN_DOUBLE_QUOTES.match(text, after).end()  # type: ignore[union-attr]
        return "No escaped character" if after < len(text) else "No closing quotation"
    return "No escaped character" if stray == "\\" else "No closing quotation"


def _command(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            words = split_words(value)
        except ValueError as exc:
            raise _fail(f"cannot split into words: {exc}") from None
    elif isinstance(value, list):
        words = [_as_text(item, "a string") for item in value]
    else:
        raise _fail("must be a list of strings, or a string split like a shell would")
    for word in words:
        problem = _helper_expansion_problem(word)
        if problem:
            raise _fail(problem)
    return words


def _empty_if_none(value: Any) -> Any:
    """`databases:` with nothing under it means no databases, as in docker-compose."""
    return {} if value is None else value


def _env_map(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail("must be a mapping of variable names to values")
    result: dict[str, str] = {}
    for key, item in value.items():
        if item is None:
            raise _fail_at(key, 'must have a value (write "" for an empty one)')
        if not isinstance(item, str | int | float | bool):
            raise _fail_at(key, "must be a string")
        if not ENV_NAME.fullmatch(str(key)):
            raise _fail_at(key, "invalid variable name (letters, digits, '_', '.', '-'; not starting with a digit)")
        if str(key).startswith(RESERVED_ENV_PREFIX):
            raise _fail_at(
                key, f"variable names starting with {RESERVED_ENV_PREFIX} are reserved for envspec's own variables"
            )
        text = _as_text(item, "a string")
        problem = _helper_expansion_problem(text)
        if problem:
            raise _fail_at(key, problem)
        result[str(key)] = text
    return result


def _labels(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail("must be a mapping of label keys to values")
    return {str(key): _as_text(item, "a string") if item is not None else "" for key, item in value.items()}


def _annotations(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail("must be a mapping of annotation keys to values")
    return {str(key): _as_text(item, "a string") if item is not None else "" for key, item in value.items()}


def _health(value: Any) -> Any:
    if isinstance(value, str):
        return {"path": value}
    return value


def _version(value: Any) -> str:
    return _as_text(value, 'a string such as "15"')


def _http_path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise _fail("must be an HTTP path starting with '/'")
    return value


_STRING_OR_LIST = {
    "anyOf": [
        {"type": "array", "items": {"type": "string"}},
        {"type": "string"},
    ]
}

Quantity = Annotated[
    str,
    BeforeValidator(_quantity),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "number"}], "examples": ["500m", "256Mi"]}),
]
QuotaQuantity = Annotated[
    str,
    BeforeValidator(_quota_quantity),
    WithJsonSchema({"anyOf": [{"const": "auto"}, {"type": "string"}, {"type": "number"}]}),
]
Duration = Annotated[str, BeforeValidator(_duration), WithJsonSchema({"type": "string", "examples": ["10m"]})]
Ttl = Annotated[str, BeforeValidator(_ttl), WithJsonSchema({"type": "string", "examples": ["60m", "never"]})]
Port = Annotated[
    int, BeforeValidator(_integer(1, 65535)), WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 65535})
]
# The API's integer fields envspec writes (replicas, ports, probe seconds, backoffLimit) are int32.
INT32_MAX = 2**31 - 1
NonNegativeInt = Annotated[
    int,
    BeforeValidator(_integer(0, INT32_MAX)),
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": INT32_MAX}),
]
PositiveInt = Annotated[
    int,
    BeforeValidator(_integer(1, INT32_MAX)),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": INT32_MAX}),
]
Command = Annotated[list[str], BeforeValidator(_command), WithJsonSchema(_STRING_OR_LIST)]
EnvMap = Annotated[
    dict[str, str],
    BeforeValidator(_env_map),
    WithJsonSchema({"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}),
]
LabelMap = Annotated[
    dict[str, str],
    BeforeValidator(_labels),
    WithJsonSchema({"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}),
]
AnnotationMap = Annotated[
    dict[str, str],
    BeforeValidator(_annotations),
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {
                "pattern": r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
                "not": {"pattern": "^envspec\\.dev/"},
            },
            "additionalProperties": {"type": ["string", "number", "boolean"]},
        }
    ),
]
Version = Annotated[str, BeforeValidator(_version), WithJsonSchema({"type": ["string", "number"]})]
HttpPath = Annotated[str, BeforeValidator(_http_path), WithJsonSchema({"type": "string", "pattern": "^/"})]


class SpecModel(BaseModel):
    """Base: camelCase keys as written in YAML, unknown keys rejected.

    The docstring under each field is its description in the JSON Schema. `json_schema()`
    reads them from this file when asked for the schema, rather than pydantic's
    `use_attribute_docstrings` at every import: that reads and tokenizes each class's source
    as the class is defined, a sixth of the model's import time, paid by every command.
    """

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=False,
        frozen=True,
    )


class ResourceList(SpecModel):
    """Amounts of CPU and memory."""

    cpu: Quantity | None = None
    """CPU in cores or millicores, e.g. `500m` or `2`."""
    memory: Quantity | None = None
    """Memory in bytes with a binary suffix, e.g. `256Mi` or `1Gi`."""


class Resources(SpecModel):
    """Requests and limits of one container; unset values take `resources.defaults`."""

    requests: ResourceList | None = None
    """What the scheduler reserves for the container."""
    limits: ResourceList | None = None
    """The most the container may use; also what the quota counts."""


class Quota(SpecModel):
    """The namespace's ResourceQuota."""

    cpu: QuotaQuantity = "auto"
    """limits.cpu of the quota: a quantity, or `auto` = exactly what the environment needs."""
    memory: QuotaQuantity = "auto"
    """limits.memory of the quota: a quantity, or `auto` = exactly what the environment needs."""
    pods: NonNegativeInt = 10
    """The most pods the namespace may hold."""


class ResourceSettings(SpecModel):
    """Per-container defaults (a LimitRange) and the namespace quota (a ResourceQuota)."""

    defaults: Resources | None = None
    """Requests and limits of every container that does not set its own. Defaults: requests
    100m CPU / 256Mi memory, limits 1000m CPU / 1Gi memory; the environment variables
    DEFAULT_CPU_LIMIT and DEFAULT_MEMORY_LIMIT override the default limits."""
    quota: Quota | None = None
    """The quota of the namespace; `auto` (the default) sizes it exactly to the environment."""


class Database(SpecModel):
    """A database run as a single-replica StatefulSet with generated credentials."""

    engine: Engine
    """The database engine: postgresql, mysql, mongodb or redis."""
    version: Version | None = None
    """Image tag of the official image. Default: postgresql 15, mysql 8.0, mongodb 7, redis 7."""
    image: str | None = None
    """Full image reference replacing the official image (e.g. a mirror); may use references."""
    database: str | None = None
    """Name of the database to create. Default: the database's key. Not for redis."""
    storage: Quantity | None = None
    """Size of a persistent volume claim for the data. Default: none (ephemeral emptyDir)."""
    resources: Resources | None = None
    """Requests and limits of the database container."""
    annotations: AnnotationMap = Field(default_factory=dict)
    """Annotations on the pod template (sidecar injection, agents, tooling). Keys are Kubernetes
    annotation keys; `envspec.dev/` is reserved."""


class HealthCheck(SpecModel):
    """An HTTP readiness and liveness probe."""

    path: HttpPath
    """HTTP path to GET, e.g. `/health`."""
    port: Port | None = None
    """Port to probe. Default: the service's `port`."""
    initial_delay_seconds: NonNegativeInt | None = None
    """Seconds to wait after the container starts before the first probe."""
    period_seconds: PositiveInt | None = None
    """Seconds between probes."""


# The short form `health: /health` is accepted by the validator; json_schema() documents it.
HealthField = Annotated[HealthCheck, BeforeValidator(_health)]


class Service(SpecModel):
    """An application service, run as a Deployment (and a Service when it has a port)."""

    image: str
    """Container image; may use references such as `${env.TAG}`."""
    port: Port | None = None
    """Container port; a Service named after the key exposes it."""
    replicas: NonNegativeInt = 1
    """Number of pods."""
    command: Command | None = None
    """Entrypoint override: a list, or a string split like a shell would."""
    args: Command | None = None
    """Arguments: a list, or a string split like a shell would."""
    env: EnvMap = Field(default_factory=dict)
    """Environment variables; values are strings and may use references (`${db.url}`)."""
    health: HealthField | None = None
    """HTTP readiness and liveness probe: a path on `port`, or {path, port, initialDelaySeconds, periodSeconds}."""
    resources: Resources | None = None
    """Requests and limits of the container."""
    depends_on: list[str] | None = None
    """Databases and services that must be ready before this service starts. Default: every database."""
    annotations: AnnotationMap = Field(default_factory=dict)
    """Annotations on the pod template (sidecar injection, agents, tooling). Keys are Kubernetes
    annotation keys; `envspec.dev/` is reserved."""


class TestJob(SpecModel):
    """A test, run as a Job in the environment's last wave (`envspec render --tests`)."""

    image: str
    """Container image of the test runner."""
    command: Command | None = None
    """Entrypoint override: a list, or a string split like a shell would."""
    args: Command | None = None
    """Arguments: a list, or a string split like a shell would."""
    env: EnvMap = Field(default_factory=dict)
    """Environment variables; values are strings and may use references (`${api.url}`)."""
    timeout: Duration = "30m"
    """How long the test may run (the Job's activeDeadlineSeconds)."""
    retries: NonNegativeInt = 0
    """How many times a failed test is retried (the Job's backoffLimit)."""
    resources: Resources | None = None
    """Requests and limits of the test container."""
    annotations: AnnotationMap = Field(default_factory=dict)
    """Annotations on the pod template (sidecar injection, agents; on the local cluster kwok's stage
    annotations simulate outcomes). Keys are Kubernetes annotation keys; `envspec.dev/` is reserved."""


class RedisReporting(SpecModel):
    """Where envspec reports status and results (Redis Streams)."""

    url: str
    """Redis URL; may use references, e.g. `${env.REDIS_URL:-redis://localhost:6379/0}`."""
    stream_prefix: str = Field("maestro:streams:k8s", min_length=1)
    """Streams `<prefix>:status` and `<prefix>:results` are written."""
    max_len: PositiveInt = 10_000
    """Every XADD caps its stream at about this many entries (`MAXLEN ~`)."""


class Reporting(SpecModel):
    """Reporting of environment status and test results."""

    redis: RedisReporting | None = None
    """Report to Redis Streams."""


class EnvironmentSpec(SpecModel):
    """An ephemeral, isolated Kubernetes test environment (maestro-env.yaml)."""

    api_version: Literal["envspec/v1"]
    """Version of the spec language; `envspec/v1` is the only one."""
    kind: Literal["Environment"] = "Environment"
    """Always `Environment`."""
    name: str
    """Name of the environment: a DNS-1123 label (a-z, 0-9, '-') of 1 to 40 characters."""
    namespace_prefix: str | None = None
    """Prefix of the namespace name `<prefix>-<name>`. Default: env var K8S_NAMESPACE_PREFIX, else `envspec`."""
    ttl: Ttl | None = None
    """Time to live after the last `up`: 30s, 45m, 2h, 1h30m, 7d, or `never`.
    Default: env var K8S_TTL_MINUTES (minutes), else 60m."""
    labels: LabelMap = Field(default_factory=dict)
    """Labels added to every object."""
    resources: ResourceSettings | None = None
    """Container defaults and namespace quota."""
    isolation: Literal["namespace", "none"] = "namespace"
    """`namespace`: a NetworkPolicy admits ingress only from pods of the same namespace; `none`: no policy."""
    pod_security: Literal["privileged", "baseline", "restricted"] = "baseline"
    """Pod Security Admission level enforced on the namespace."""
    databases: Annotated[dict[str, Database], BeforeValidator(_empty_if_none)] = Field(default_factory=dict)
    """Databases by name."""
    services: Annotated[dict[str, Service], BeforeValidator(_empty_if_none)] = Field(default_factory=dict)
    """Application services by name."""
    tests: Annotated[dict[str, TestJob], BeforeValidator(_empty_if_none)] = Field(default_factory=dict)
    """Test jobs by name, rendered as Jobs after every service (`envspec render --tests`)."""
    reporting: Reporting | None = None
    """Where status and results are reported."""


def json_schema() -> dict[str, Any]:
    """The JSON Schema of maestro-env.yaml, as committed in schemas/."""
    schema = EnvironmentSpec.model_json_schema(by_alias=True, mode="validation", schema_generator=_DescribedSchema)
    health = schema["$defs"]["Service"]["properties"]["health"]
    description = health.get("description", "")
    health.clear()
    health.update(
        {
            "anyOf": [{"type": "string", "pattern": "^/"}, {"$ref": "#/$defs/HealthCheck"}, {"type": "null"}],
            "default": None,
            "description": description,
        }
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "maestro-env.schema.json",
        **schema,
    }


class _DescribedSchema(GenerateJsonSchema):
    """pydantic's schema with each field's docstring as its description (see `SpecModel`)."""

    def generate(self, schema: CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        generated = super().generate(schema, mode)
        docstrings = _field_docstrings()
        definitions = generated.get("$defs", {})
        for model in _spec_models():
            target = generated if model is EnvironmentSpec else definitions.get(model.__name__)
            if target is None:
                continue
            properties = target.get("properties", {})
            for name, field in model.model_fields.items():
                # A field's docstring is in the class that declares it, perhaps a base class.
                declared = (docstrings.get(c.__name__, {}) for c in model.__mro__)
                doc = next((fields[name] for fields in declared if name in fields), None)
                prop = properties.get(field.alias or name)
                if doc is not None and prop is not None and field.description is None:
                    prop["description"] = doc
        return self.sort(generated)


def _spec_models() -> list[type[SpecModel]]:
    found: list[type[SpecModel]] = []
    pending = [SpecModel]
    while pending:
        for model in pending.pop().__subclasses__():
            found.append(model)
            pending.append(model)
    return found


def _field_docstrings() -> dict[str, dict[str, str]]:
    """Class name -> field name -> the docstring written under the field, as pydantic reads them."""
    import ast
    import inspect

    docstrings: dict[str, dict[str, str]] = {}
    try:
        source = inspect.getsource(sys.modules[__name__])
    except OSError:  # installed without its sources: no descriptions, as pydantic would do
        return docstrings
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields = docstrings.setdefault(node.name, {})
        for statement, following in zip(node.body, node.body[1:], strict=False):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                fields[statement.target.id] = inspect.cleandoc(following.value.value)
    return docstrings
