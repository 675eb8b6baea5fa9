"""The JSON Schema: generated from the model, committed, fully described, and agreeing with the examples."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # installed with kubernetes-validate (a test dependency)
import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from envspec.cli.main import cli
from envspec.model import EnvironmentSpec, json_schema
from envspec.resources import schema_path, schema_text

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "schemas" / "maestro-env.schema.json"
EXAMPLES = sorted((REPO / "examples").glob("*/maestro-env.yaml"))


def load_yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(io.StringIO(text))


def properties(schema: dict[str, Any], where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (path, property schema) in the schema, recursively."""
    for name, prop in schema.get("properties", {}).items():
        path = f"{where}.{name}" if where else name
        yield path, prop
        yield from properties(prop, path)
    for keyword in ("anyOf", "oneOf", "allOf"):
        for index, option in enumerate(schema.get(keyword, [])):
            yield from properties(option, f"{where}[{keyword}{index}]")
    for keyword in ("items", "additionalProperties"):
        if isinstance(schema.get(keyword), dict):
            yield from properties(schema[keyword], f"{where}[{keyword}]")


def test_committed_schema_is_current() -> None:
    result = CliRunner().invoke(cli, ["schema"], catch_exceptions=False)
    assert result.exit_code == 0
    committed = COMMITTED.read_text(encoding="utf-8")
    assert result.stdout == committed, (
        "schemas/maestro-env.schema.json is stale: run `make schema` and commit the result"
    )
    assert schema_text(json_schema()) == committed, "stale schema: run `make schema`"


def test_installed_schema_path_is_the_committed_file() -> None:
    assert schema_path().read_text(encoding="utf-8") == COMMITTED.read_text(encoding="utf-8")


def test_every_property_has_a_description() -> None:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    missing = [path for path, prop in properties(schema) if not prop.get("description", "").strip()]
    for name, definition in schema["$defs"].items():
        if not definition.get("description", "").strip():
            missing.append(f"$defs.{name}")
        missing += [
            f"$defs.{name}.{path}" for path, prop in properties(definition) if not prop.get("description", "").strip()
        ]
    assert schema["description"].strip()
    assert missing == []


def test_every_model_field_is_in_the_schema() -> None:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert set(schema["properties"]) == {f.alias or n for n, f in EnvironmentSpec.model_fields.items()}
    assert set(schema["required"]) == {"apiVersion", "name"}
    assert schema["additionalProperties"] is False
    for definition in schema["$defs"].values():
        assert definition["additionalProperties"] is False
    service = schema["$defs"]["Service"]["properties"]
    assert {"image", "port", "replicas", "command", "args", "env", "health", "resources", "dependsOn"} <= set(service)


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_examples_validate_against_the_schema(example: Path) -> None:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    jsonschema.validate(load_yaml(example.read_text(encoding="utf-8")), schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(
    "text",
    [
        "name: demo\n",
        "apiVersion: envspec/v2\nname: demo\n",
        "apiVersion: envspec/v1\nname: demo\nservics: {}\n",
        "apiVersion: envspec/v1\nname: demo\nservices:\n  api: {port: 80}\n",
        "apiVersion: envspec/v1\nname: demo\nservices:\n  api: {image: a, port: 70000}\n",
        "apiVersion: envspec/v1\nname: demo\nservices:\n  api: {image: a, replicas: -1}\n",
        "apiVersion: envspec/v1\nname: demo\ndatabases:\n  db: {engine: oracle}\n",
        "apiVersion: envspec/v1\nname: demo\nisolation: full\n",
        "apiVersion: envspec/v1\nname: demo\nservices:\n  api: {image: a, health: relative}\n",
    ],
)
def test_schema_rejects_what_the_validator_rejects(text: str) -> None:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(load_yaml(text), schema, cls=jsonschema.Draft202012Validator)


def test_short_and_long_health_forms_are_in_the_schema() -> None:
    schema = json.loads(COMMITTED.read_text(encoding="utf-8"))
    for health in (
        "/health",
        {"path": "/health", "port": 8080, "initialDelaySeconds": 1, "periodSeconds": 2},
    ):
        spec = {"apiVersion": "envspec/v1", "name": "d", "services": {"a": {"image": "x", "health": health}}}
        jsonschema.validate(spec, schema, cls=jsonschema.Draft202012Validator)


def test_without_the_models_source_the_schema_is_the_same_but_for_the_descriptions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The descriptions are read from envspec/model.py when the schema is generated; an
    # install without sources loses them (as pydantic's own docstring reading would), no more.
    import inspect

    described = json_schema()

    def no_source(obj: object) -> str:
        raise OSError("could not get source code")

    monkeypatch.setattr(inspect, "getsource", no_source)
    bare = json_schema()

    def without_field_descriptions(schema: dict[str, Any]) -> dict[str, Any]:
        copy: dict[str, Any] = json.loads(json.dumps(schema))
        for definition in [copy, *copy["$defs"].values()]:
            for prop in definition.get("properties", {}).values():
                prop.pop("description", None)
        return copy

    assert bare != described
    assert without_field_descriptions(bare) == without_field_descriptions(described)
    assert bare["properties"]["name"].get("description") is None
    assert described["properties"]["name"]["description"].startswith("Name of the environment")
