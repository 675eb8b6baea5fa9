"""The request model shared by the worker and the REST API: formats, shorthand, errors by path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from envspec.compiler import identity
from envspec.service.requests import (
    EnvironmentConfig,
    Request,
    RequestError,
    RequestProblem,
    ad_hoc_test,
    config_document,
    decode_entry,
    namespace_for,
    parse_entry,
    parse_request,
    resources_created,
    validate_request_spec,
)
from envspec.service.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
SETTINGS = load_settings({"K8S_NAMESPACE_PREFIX": "quality-fabric"})

ORIGINAL = {
    "job_id": "job-uuid",
    "execution_id": "test-001",
    "operation": "create",
    "config": {"app_image": "myapp:latest", "app_port": 8000, "database": "postgresql", "ttl_minutes": 60},
}


def problems_of(fields: dict[str, str], settings: Settings = SETTINGS) -> list[tuple[str, str]]:
    with pytest.raises(RequestError) as caught:
        request = parse_entry(fields, settings)
        validate_request_spec(request, settings)
    return [tuple(problem) for problem in caught.value.problems]  # type: ignore[misc]


def flat(data: dict[str, Any]) -> dict[str, str]:
    """The flat stream encoding: nested values JSON-encoded, the rest as text."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in data.items()}


def test_the_original_create_request_names_its_namespace_as_the_original() -> None:
    request = parse_entry({"data": json.dumps(ORIGINAL)}, SETTINGS)
    valid = validate_request_spec(request, SETTINGS)
    ident = identity(valid, None)
    assert (ident.environment, ident.namespace) == ("test-001", "quality-fabric-test-001")
    assert namespace_for("test-001", SETTINGS) == "quality-fabric-test-001"
    assert resources_created(valid.spec) == ["namespace", "postgres", "deployment", "service"]
    assert valid.ttl == "1h"
    assert request.job_id == "job-uuid"


def test_both_stream_encodings_give_the_same_request() -> None:
    from_data = parse_entry({"data": json.dumps(ORIGINAL)}, SETTINGS)
    from_flat = parse_entry(flat(ORIGINAL), SETTINGS)
    assert from_flat == from_data


def test_with_data_other_fields_are_ignored() -> None:
    request = parse_entry({"data": json.dumps(ORIGINAL), "operation": "delete", "source": "bot"}, SETTINGS)
    assert request.operation == "create"


def test_flat_numbers_and_booleans_arrive_as_text() -> None:
    request = parse_entry({"operation": "cleanup", "dry_run": "true"}, SETTINGS)
    assert request.dry_run is True
    request = parse_entry({"operation": "extend", "execution_id": "test-001", "ttl_minutes": "90"}, SETTINGS)
    assert request.ttl_minutes == 90


def test_the_config_shorthand_document() -> None:
    config = EnvironmentConfig(
        app_image="myapp:2",
        app_port=9000,
        database="mysql",
        cpu_limit="500m",
        memory_limit="512Mi",
        replicas=2,
        env={"MODE": "test", "WORKERS": 4},
    )
    assert config_document("exec-7", config, SETTINGS) == {
        "apiVersion": "envspec/v1",
        "kind": "Environment",
        "name": "exec-7",
        "namespacePrefix": "quality-fabric",
        "ttl": "60m",
        "databases": {"mysql": {"engine": "mysql"}},
        "services": {
            "app": {
                "image": "myapp:2",
                "port": 9000,
                "replicas": 2,
                "env": {"DATABASE_URL": "${mysql.url}", "MODE": "test", "WORKERS": 4},
                "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}},
            }
        },
    }


@pytest.mark.parametrize(
    ("database", "engine", "word"),
    [
        ("postgresql", "postgresql", "postgres"),
        ("mysql", "mysql", "mysql"),
        ("mongodb", "mongodb", "mongodb"),
        ("redis", "redis", "redis"),
    ],
)
def test_each_database_choice_is_one_database_of_that_engine(database: str, engine: str, word: str) -> None:
    data = {**ORIGINAL, "config": {"app_image": "a:1", "database": database}}
    valid = validate_request_spec(parse_request(data, SETTINGS), SETTINGS)
    assert {name: db.engine for name, db in valid.spec.databases.items()} == {word: engine}
    assert valid.spec.services["app"].env["DATABASE_URL"] == f"${{{word}.url}}"
    assert resources_created(valid.spec) == ["namespace", word, "deployment", "service"]


def test_database_none_and_the_defaults() -> None:
    data = {**ORIGINAL, "config": {"app_image": "a:1"}}
    settings = load_settings({"K8S_TTL_MINUTES": "15", "DEFAULT_CPU_LIMIT": "250m", "DEFAULT_MEMORY_LIMIT": "300Mi"})
    valid = validate_request_spec(parse_request(data, settings), settings)
    assert valid.spec.databases == {}
    assert valid.spec.services["app"].port == 8000
    assert valid.ttl == "15m"
    assert valid.default_resources.limits == {"cpu": "250m", "memory": "300Mi"}
    assert identity(valid, None).namespace == "envspec-test-001"
    assert resources_created(valid.spec) == ["namespace", "deployment", "service"]


def test_the_env_of_a_config_overrides_the_database_url() -> None:
    data = {**ORIGINAL, "config": {"app_image": "a:1", "database": "redis", "env": {"DATABASE_URL": "x"}}}
    valid = validate_request_spec(parse_request(data, SETTINGS), SETTINGS)
    assert valid.spec.services["app"].env == {"DATABASE_URL": "x"}


def test_many_replicas_get_a_quota_that_admits_them() -> None:
    data = {**ORIGINAL, "config": {"app_image": "a:1", "database": "postgresql", "replicas": 12}}
    valid = validate_request_spec(parse_request(data, SETTINGS), SETTINGS)
    assert valid.quota_pods == 13


@pytest.mark.parametrize("example", ["quickstart", "fullstack", "polyglot-db", "large"])
def test_every_example_is_accepted_as_a_spec_request(example: str) -> None:
    spec = YAML(typ="safe").load((REPO / "examples" / example / "maestro-env.yaml").read_text())
    data = {"job_id": "j", "execution_id": spec["name"], "operation": "create", "spec": spec}
    valid = validate_request_spec(parse_entry(flat(data), SETTINGS), SETTINGS)
    assert valid.spec.name == spec["name"]
    assert resources_created(valid.spec)[0] == "namespace"


def test_a_spec_without_a_name_is_named_by_its_execution_id() -> None:
    spec = {"apiVersion": "envspec/v1", "namespacePrefix": "team", "services": {"api": {"image": "a:1", "port": 80}}}
    data = {"execution_id": "run-9", "operation": "create", "spec": spec}
    valid = validate_request_spec(parse_request(data, SETTINGS), SETTINGS)
    assert identity(valid, None).namespace == "team-run-9"
    assert resources_created(valid.spec) == ["namespace", "deployment/api", "service/api"]


def test_resources_created_names_databases_and_services_not_named_as_the_shorthand() -> None:
    spec = {
        "apiVersion": "envspec/v1",
        "databases": {"db": {"engine": "postgresql"}, "postgres": {"engine": "postgresql"}},
        "services": {"app": {"image": "a:1"}, "worker": {"image": "w:1"}},
    }
    valid = validate_request_spec(
        parse_request({"execution_id": "x", "operation": "create", "spec": spec}, SETTINGS), SETTINGS
    )
    assert resources_created(valid.spec) == ["namespace", "postgres/db", "postgres", "deployment", "deployment/worker"]


def test_spec_problems_point_into_the_spec() -> None:
    spec = {
        "apiVersion": "envspec/v1",
        "name": "other",
        "services": {"api": {"image": "a:1", "replicas": -1}, "web": {"image": "w:1", "env": {"H": "${env.HOME}"}}},
    }
    assert problems_of(flat({"execution_id": "test-001", "operation": "create", "spec": spec})) == [
        ("spec.name", "must be left out or equal execution_id ('test-001'), which names it"),
        ("spec.services.api.replicas", "must be an integer between 0 and 2147483647"),
        (
            "spec.services.web.env.H",
            "${env.HOME}: environment variable HOME is not set (give a default: ${env.HOME:-value})",
        ),
    ]


def test_config_problems_point_at_the_config_field() -> None:
    data = {**ORIGINAL, "config": {"app_image": "a:1", "cpu_limit": "lots", "memory_limit": "1 Gi"}}
    assert problems_of({"data": json.dumps(data)}) == [
        ("config.cpu_limit", "invalid quantity 'lots': expected e.g. 500m, 2, 256Mi or 1Gi"),
        ("config.memory_limit", "invalid quantity '1 Gi': expected e.g. 500m, 2, 256Mi or 1Gi"),
    ]
    data = {**ORIGINAL, "config": {"app_image": "a:1", "env": {"1BAD": "x"}}}
    [(path, _)] = problems_of({"data": json.dumps(data)})
    assert path == "config.env.1BAD"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"data": "{not json"},
            [("data", "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)")],
        ),
        ({"data": "[1, 2]"}, [("data", "must be a JSON object")]),
        ({}, [("", "empty entry: expected a field `data` with JSON, or flat fields")]),
        (
            {"operation": "create", "execution_id": "e", "config": "{"},
            [("config", "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)")],
        ),
        ({"execution_id": "e"}, [("operation", "required")]),
        (
            {"operation": "launch"},
            [("operation", "Input should be 'create', 'delete', 'status', 'test', 'extend' or 'cleanup'")],
        ),
        ({"operation": "delete"}, [("execution_id", "required for operation 'delete'")]),
        ({"operation": "create", "execution_id": "e"}, [("", "operation 'create' needs `config` or `spec`")]),
        (
            {"operation": "create", "execution_id": "e", "config": '{"app_image": "a"}', "spec": "{}"},
            [("spec", "give `config` or `spec`, not both")],
        ),
        ({"operation": "extend", "execution_id": "e"}, [("ttl_minutes", "required for operation 'extend'")]),
        (
            {"operation": "extend", "execution_id": "e", "ttl_minutes": "0"},
            [("ttl_minutes", "Input should be greater than 0")],
        ),
        (
            {"operation": "test", "execution_id": "e", "test_command": "pytest"},
            [("test_image", "required with test_command")],
        ),
        (
            {"operation": "test", "execution_id": "e", "test_image": "t:1", "tests": '["smoke"]'},
            [("tests", "give `tests` or `test_image`, not both")],
        ),
        (
            {
                "operation": "create",
                "execution_id": "e",
                "config": '{"app_image": "a", "app_prot": 1, "database": "oracle"}',
            },
            [
                ("config.database", "Input should be 'postgresql', 'mysql', 'mongodb', 'redis' or 'none'"),
                ("config.app_prot", "unknown field"),
            ],
        ),
        (
            {"operation": "create", "execution_id": "e", "config": '{"app_port": 70000}'},
            [("config.app_image", "required"), ("config.app_port", "Input should be less than or equal to 65535")],
        ),
        (
            {"operation": "create", "execution_id": "e", "config": '"image"'},
            [("config", "Input should be a valid dictionary or instance of EnvironmentConfig")],
        ),
    ],
)
def test_malformed_requests_get_every_reason_with_its_path(
    fields: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    assert problems_of(fields) == expected


NAME_RULE = (
    "cannot name an environment: use 1-40 lower-case letters, digits and '-', "
    "starting and ending with a letter or digit"
)


@pytest.mark.parametrize("execution_id", ["Test_001", "-x", "a" * 41, "test 1"])
def test_an_execution_id_that_cannot_name_an_environment_is_refused(execution_id: str) -> None:
    fields = {"operation": "delete", "execution_id": execution_id}
    assert problems_of(fields) == [("execution_id", f"{execution_id!r} {NAME_RULE}")]


def test_an_execution_id_that_makes_a_namespace_too_long_is_refused() -> None:
    settings = load_settings({"K8S_NAMESPACE_PREFIX": "quality-fabric-long-prefix"})
    fields = {"operation": "status", "execution_id": "b" * 40}
    assert problems_of(fields, settings) == [
        ("execution_id", f"the namespace 'quality-fabric-long-prefix-{'b' * 40}' would be 67 characters; at most 63")
    ]


def test_cleanup_needs_no_execution_id() -> None:
    request = parse_entry({"operation": "cleanup"}, SETTINGS)
    assert (request.execution_id, request.dry_run) == (None, False)


def test_an_ad_hoc_test_as_the_original_post_jobs() -> None:
    request = parse_entry(
        {"operation": "test", "execution_id": "e", "test_image": "t:1", "test_command": "pytest -x tests/"}, SETTINGS
    )
    assert ad_hoc_test(request) == {"image": "t:1", "command": "pytest -x tests/"}
    listed = parse_entry(
        {"operation": "test", "execution_id": "e", "test_image": "t:1", "test_command": '["pytest", "-x"]'}, SETTINGS
    )
    assert listed.test_command == ["pytest", "-x"]
    shell = parse_entry(
        {"operation": "test", "execution_id": "e", "test_image": "t:1", "test_command": "[ -f /ok ]"}, SETTINGS
    )
    assert shell.test_command == "[ -f /ok ]"
    named = parse_entry({"operation": "test", "execution_id": "e", "tests": '["smoke", "api"]'}, SETTINGS)
    assert (named.tests, ad_hoc_test(named)) == (["smoke", "api"], None)


def test_an_oversized_entry_is_refused() -> None:
    assert problems_of({"data": "x" * (1024 * 1024 + 1)}) == [
        ("", "the request is 1048581 bytes; at most 1048576 allowed")
    ]


def test_unknown_top_level_fields_are_ignored() -> None:
    request = parse_request({**ORIGINAL, "priority": "high", "timestamp": 123}, SETTINGS)
    assert isinstance(request, Request) and request.operation == "create"


def test_problems_print_as_path_colon_message() -> None:
    assert str(RequestProblem("spec.services.api.replicas", "must be an integer >= 0")) == (
        "spec.services.api.replicas: must be an integer >= 0"
    )
    assert str(RequestError([RequestProblem("", "empty"), RequestProblem("a", "b")])) == "empty; a: b"


def test_decode_entry_keeps_plain_fields_as_text() -> None:
    assert decode_entry({"operation": "status", "execution_id": "e", "tests": "[]"}) == {
        "operation": "status",
        "execution_id": "e",
        "tests": [],
    }
