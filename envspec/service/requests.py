"""The request model the worker (`<prefix>:jobs` entries) and the REST API share.

A request is the original service's format, accepted as it was:

    {"job_id": "job-uuid", "execution_id": "test-001", "operation": "create",
     "config": {"app_image": "myapp:latest", "app_port": 8000, "database": "postgresql", "ttl_minutes": 60}}

or carries `"spec": {...}`, a whole maestro-env document, instead of `config`. A stream
entry holds it either as one field `data` with the JSON, or as flat fields whose nested
values (`config`, `spec`, `tests`) are JSON-encoded (`decode_entry`).

Every problem is reported at once as a (JSON path, message) pair; the problems of a
`spec` point into it (`spec.services.api.replicas: ...`), those of the `config`
shorthand at the config field that caused them (`config.cpu_limit: ...`).

The environment is named by `execution_id`; its namespace is
`<K8S_NAMESPACE_PREFIX>-<execution_id>` (e.g. `quality-fabric-test-001`), exactly as
the original named it, unless a `spec` sets its own `namespacePrefix`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from envspec.defaults import ValidSpec
from envspec.errors import EnvspecError, SpecError
from envspec.loader import load_text
from envspec.model import API_VERSION, DNS_LABEL, NAME_MAX_LENGTH, EnvironmentSpec
from envspec.pipeline import add_tests
from envspec.service.settings import Settings
from envspec.validation import validate

Operation = Literal["create", "delete", "status", "test", "extend", "cleanup"]
OPERATIONS: tuple[str, ...] = ("create", "delete", "status", "test", "extend", "cleanup")
DatabaseChoice = Literal["postgresql", "mysql", "mongodb", "redis", "none"]

APP_SERVICE = "app"  # the one service of the `config` shorthand
DEFAULT_APP_PORT = 8000
NAMESPACE_MAX_LENGTH = 63
MAX_REQUEST_BYTES = 1024 * 1024
DEFAULT_QUOTA_PODS = 10  # as the model's default (Quota.pods)

# The names the original service used in `resources_created` for a database engine; the
# `config` shorthand also names its database so (`${postgres.url}`).
ENGINE_WORDS: dict[str, str] = {"postgresql": "postgres", "mysql": "mysql", "mongodb": "mongodb", "redis": "redis"}
# Fields of a flat stream entry that hold JSON (everything else is a plain string).
JSON_FIELDS = ("config", "spec", "tests")


class RequestProblem(NamedTuple):
    """One thing wrong with a request: where (a JSON path, "" for the whole request) and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class RequestError(EnvspecError):
    """A request that cannot be served; `problems` lists every reason."""

    def __init__(self, problems: Sequence[RequestProblem]) -> None:
        self.problems: tuple[RequestProblem, ...] = tuple(problems)
        super().__init__("; ".join(map(str, self.problems)) or "invalid request")


class EnvironmentConfig(BaseModel):
    """The original `config` shorthand: one app, at most one database."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app_image: str = Field(min_length=1)
    app_port: int = Field(DEFAULT_APP_PORT, ge=1, le=65535)
    database: DatabaseChoice = "none"
    ttl_minutes: int | None = Field(default=None, gt=0)
    cpu_limit: str | None = None
    memory_limit: str | None = None
    replicas: int | None = Field(None, ge=0)
    env: dict[str, str | int | float | bool] = Field(default_factory=dict)


class Request(BaseModel):
    """One request; unknown top-level fields are ignored (stream entries may carry metadata)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    job_id: str | None = Field(None, min_length=1)
    execution_id: str | None = Field(None, min_length=1)
    operation: Operation
    config: EnvironmentConfig | None = None
    spec: dict[str, Any] | None = None
    test_image: str | None = Field(None, min_length=1)
    test_command: str | list[str] | None = None
    tests: list[str] | None = None
    ttl_minutes: int | None = Field(None, gt=0)
    dry_run: bool = False

    @field_validator("test_command", mode="before")
    @classmethod
    def _command_list(cls, value: Any) -> Any:
        # A flat entry carries a list as JSON text; a plain command line stays a string.
        if isinstance(value, str) and value.startswith("["):
            try:
                decoded = json.loads(value)
            except ValueError:
                return value
            if isinstance(decoded, list):
                return decoded
        return value

    def environment(self) -> str:
        """The environment's name: the execution id (checked by `check_request`)."""
        if self.execution_id is None:
            raise RequestError([RequestProblem("execution_id", "required")])
        return self.execution_id


# --- decoding ------------------------------------------------------------------------------


def decode_entry(fields: Mapping[str, str]) -> dict[str, Any]:
    """A stream entry's fields as the request's JSON object: `data` holds it whole, or the
    fields are flat with `config`/`spec`/`tests` JSON-encoded. With `data`, other fields are ignored."""
    size = sum(len(key) + len(value) for key, value in fields.items())
    if size > MAX_REQUEST_BYTES:
        raise RequestError([RequestProblem("", f"the request is {size} bytes; at most {MAX_REQUEST_BYTES} allowed")])
    if "data" in fields:
        try:
            data = json.loads(fields["data"])
        except ValueError as exc:
            raise RequestError([RequestProblem("data", f"not valid JSON: {exc}")]) from None
        if not isinstance(data, dict):
            raise RequestError([RequestProblem("data", "must be a JSON object")])
        return data
    if not fields:
        raise RequestError([RequestProblem("", "empty entry: expected a field `data` with JSON, or flat fields")])
    decoded: dict[str, Any] = {}
    problems: list[RequestProblem] = []
    for key, value in fields.items():
        if key in JSON_FIELDS:
            try:
                decoded[key] = json.loads(value)
            except ValueError as exc:
                problems.append(RequestProblem(key, f"not valid JSON: {exc}"))
        else:
            decoded[key] = value
    if problems:
        raise RequestError(problems)
    return decoded


def parse_request(data: Mapping[str, Any], settings: Settings) -> Request:
    """Validate a request's JSON object: types, then what its operation needs."""
    try:
        request = Request.model_validate(dict(data))
    except ValidationError as exc:
        raise RequestError([_pydantic_problem(error) for error in exc.errors(include_url=False)]) from None
    problems = check_request(request, settings)
    if problems:
        raise RequestError(problems)
    return request


def parse_entry(fields: Mapping[str, str], settings: Settings) -> Request:
    return parse_request(decode_entry(fields), settings)


def _pydantic_problem(error: Any) -> RequestProblem:
    path = _json_path(tuple(error["loc"]))
    if error["type"] == "missing":
        return RequestProblem(path, "required")
    if error["type"] == "extra_forbidden":
        return RequestProblem(path, "unknown field")
    return RequestProblem(path, str(error["msg"]))


def _json_path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


# --- per-operation rules -------------------------------------------------------------------


def check_request(request: Request, settings: Settings) -> list[RequestProblem]:
    """What the operation needs beyond the field types."""
    problems: list[RequestProblem] = []
    operation = request.operation
    if operation != "cleanup":
        if request.execution_id is None:
            problems.append(RequestProblem("execution_id", f"required for operation {operation!r}"))
        else:
            problems += _check_execution_id(request.execution_id, _prefix_for(request, settings))
    if operation == "create":
        if request.config is None and request.spec is None:
            problems.append(RequestProblem("", "operation 'create' needs `config` or `spec`"))
        elif request.config is not None and request.spec is not None:
            problems.append(RequestProblem("spec", "give `config` or `spec`, not both"))
    if operation == "extend" and request.ttl_minutes is None:
        problems.append(RequestProblem("ttl_minutes", "required for operation 'extend'"))
    if operation == "test":
        if request.test_command is not None and request.test_image is None:
            problems.append(RequestProblem("test_image", "required with test_command"))
        if request.test_image is not None and request.tests:
            problems.append(RequestProblem("tests", "give `tests` or `test_image`, not both"))
    return problems


def _prefix_for(request: Request, settings: Settings) -> str:
    written = request.spec.get("namespacePrefix") if request.spec is not None else None
    return written if isinstance(written, str) and written else settings.namespace_prefix


def _check_execution_id(execution_id: str, prefix: str) -> list[RequestProblem]:
    if not (DNS_LABEL.fullmatch(execution_id) and len(execution_id) <= NAME_MAX_LENGTH):
        return [
            RequestProblem(
                "execution_id",
                f"{execution_id!r} cannot name an environment: use 1-{NAME_MAX_LENGTH} lower-case letters, digits "
                "and '-', starting and ending with a letter or digit",
            )
        ]
    namespace = f"{prefix}-{execution_id}"
    if len(namespace) > NAMESPACE_MAX_LENGTH:
        return [
            RequestProblem(
                "execution_id",
                f"the namespace {namespace!r} would be {len(namespace)} characters; at most {NAMESPACE_MAX_LENGTH}",
            )
        ]
    return []


def namespace_for(execution_id: str, settings: Settings) -> str:
    """`<K8S_NAMESPACE_PREFIX>-<execution_id>`: where a `config` request's environment lives."""
    return f"{settings.namespace_prefix}-{execution_id}"


# --- the maestro-env document --------------------------------------------------------------


def config_document(execution_id: str, config: EnvironmentConfig, settings: Settings) -> dict[str, Any]:
    """The maestro-env document the `config` shorthand stands for.

    One service `app` (the image, the port, `replicas`, `env`, `cpu_limit`/`memory_limit`
    as its limits) and, unless `database` is `none`, one database named after the
    original's word for its engine (`postgres`, `mysql`, `mongodb`, `redis`) whose URL the
    app gets as `DATABASE_URL` (unless `env` sets it). The ttl is `ttl_minutes`, else
    K8S_TTL_MINUTES; the namespace prefix K8S_NAMESPACE_PREFIX.
    """
    app: dict[str, Any] = {"image": config.app_image, "port": config.app_port}
    if config.replicas is not None:
        app["replicas"] = config.replicas
    env: dict[str, Any] = {}
    document: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Environment",
        "name": execution_id,
        "namespacePrefix": settings.namespace_prefix,
        "ttl": f"{config.ttl_minutes or settings.ttl_minutes}m",
    }
    databases = 0
    if config.database != "none":
        word = ENGINE_WORDS[config.database]
        document["databases"] = {word: {"engine": config.database}}
        env["DATABASE_URL"] = f"${{{word}.url}}"
        databases = 1
    env.update(config.env)
    if env:
        app["env"] = env
    limits = {key: value for key, value in (("cpu", config.cpu_limit), ("memory", config.memory_limit)) if value}
    if limits:
        app["resources"] = {"limits": limits}
    document["services"] = {APP_SERVICE: app}
    # The default pod quota (10) would refuse a larger app: the shorthand sizes it.
    pods_needed = (config.replicas if config.replicas is not None else 1) + databases
    if pods_needed > DEFAULT_QUOTA_PODS:
        document["resources"] = {"quota": {"pods": pods_needed}}
    return document


def spec_document(execution_id: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """A request's `spec` named by its execution id (a `name` in it must agree: checked by validation)."""
    document = dict(spec)
    document.setdefault("name", execution_id)
    return document


def request_document(request: Request, settings: Settings) -> dict[str, Any] | None:
    """The environment's document from `config` or `spec`; None when the request has neither."""
    execution_id = request.environment()
    if request.config is not None:
        return config_document(execution_id, request.config, settings)
    if request.spec is not None:
        return spec_document(execution_id, request.spec)
    return None


def validate_request_spec(
    request: Request, settings: Settings, *, extra_tests: Mapping[str, Mapping[str, Any]] | None = None
) -> ValidSpec:
    """Load and validate the request's environment as `envspec up -f` would; RequestError if invalid.

    `extra_tests` (a `test` request's `test_image`) join the document's tests first.

    Validation sees only the settings' variables (`Settings.spec_environ`): `${env.X}` in a
    request cannot read the worker's environment.
    """
    document = request_document(request, settings)
    if document is None:
        raise RequestError([RequestProblem("", f"operation {request.operation!r} needs `config` or `spec` here")])
    execution_id = request.environment()
    from_spec = request.spec is not None
    problems: list[RequestProblem] = []
    if from_spec and document.get("name") != execution_id:
        problems.append(
            RequestProblem("spec.name", f"must be left out or equal execution_id ({execution_id!r}), which names it")
        )
    source = "spec" if from_spec else "config"
    if extra_tests:
        try:
            add_tests(document, extra_tests)
        except EnvspecError as exc:
            raise RequestError([RequestProblem("test_image", exc.message)]) from None
    try:
        # JSON is YAML: the loader gives the document its positions and its checks.
        valid = validate(load_text(json.dumps(document), source), settings.spec_environ())
    except SpecError as exc:
        locate = _spec_problem if from_spec else _config_problem
        mapped = [locate(problem.path, problem.message) for problem in exc.problems]
        problems += [p for p in mapped if p not in problems]
        raise RequestError(problems) from None
    if problems:
        raise RequestError(problems)
    return valid


def _spec_problem(path: str, message: str) -> RequestProblem:
    return RequestProblem(f"spec.{path}" if path else "spec", message)


# validation's paths in a shorthand document -> the config field that produced them.
_CONFIG_FIELDS: tuple[tuple[str, str], ...] = (
    (f"services.{APP_SERVICE}.image", "config.app_image"),
    (f"services.{APP_SERVICE}.port", "config.app_port"),
    (f"services.{APP_SERVICE}.replicas", "config.replicas"),
    (f"services.{APP_SERVICE}.env", "config.env"),
    (f"services.{APP_SERVICE}.resources.limits.cpu", "config.cpu_limit"),
    (f"services.{APP_SERVICE}.resources.limits.memory", "config.memory_limit"),
    ("databases", "config.database"),
    ("ttl", "config.ttl_minutes"),
    ("resources.quota.pods", "config.replicas"),
)


def _config_problem(path: str, message: str) -> RequestProblem:
    for prefix, field in _CONFIG_FIELDS:
        if path == prefix or path.startswith((f"{prefix}.", f"{prefix}[")):
            return RequestProblem(field + path[len(prefix) :] if field == "config.env" else field, message)
    return RequestProblem("config", f"{path}: {message}" if path else message)


# --- what was created ----------------------------------------------------------------------


def resources_created(spec: EnvironmentSpec) -> list[str]:
    """`resources_created` of a result, in the original's words.

    `namespace`; per database the engine's word (`postgres`, `mysql`, `mongodb`, `redis`),
    with `/<name>` when the database is not named so; per service `deployment`, and
    `service` when it has a port, with `/<name>` for any service but `app`. Policy objects
    (quota, limit range, network policy) and Secrets are not listed, as the original did not.
    """
    created = ["namespace"]
    for name, database in spec.databases.items():
        word = ENGINE_WORDS[database.engine]
        created.append(word if name == word else f"{word}/{name}")
    for name, service in spec.services.items():
        suffix = "" if name == APP_SERVICE else f"/{name}"
        created.append(f"deployment{suffix}")
        if service.port is not None:
            created.append(f"service{suffix}")
    return created


def ad_hoc_test(request: Request) -> dict[str, Any] | None:
    """The `tests.<name>` document of an original `test_image` + `test_command` request, or None."""
    if request.test_image is None:
        return None
    test: dict[str, Any] = {"image": request.test_image}
    if request.test_command is not None:
        test["command"] = request.test_command
    return test
