"""Pod annotations in the spec (`tests/services/databases.<name>.annotations`): validated, compiled, in the schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envspec.compiler import compile_plan
from envspec.errors import SpecError
from envspec.loader import load_text
from envspec.model import json_schema
from envspec.plan import Plan
from envspec.validation import validate

SPEC = """\
apiVersion: envspec/v1
name: demo
databases:
  db:
    engine: postgresql
    annotations:
      backup.example.com/skip: "true"
services:
  api:
    image: registry.example.com/api:1
    annotations:
      sidecar.istio.io/inject: "false"
      prometheus.io/port: 9090
tests:
  slow:
    image: registry.example.com/tests:1
    annotations:
      pod-complete.stage.kwok.x-k8s.io/delay: "600000"
  plain:
    image: registry.example.com/tests:1
"""


def plan(text: str = SPEC) -> Plan:
    return compile_plan(validate(load_text(text, "spec.yaml"), {}), include_tests=True)


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        validate(load_text(text, "spec.yaml"), {})
    return [str(p) for p in info.value.problems]


def template_annotations(compiled: Plan, kind: str, name: str) -> object:
    found = compiled.find(kind, name)
    assert found is not None
    return found.manifest["spec"]["template"]["metadata"].get("annotations")


def test_annotations_go_on_the_pod_template_of_each_workload() -> None:
    compiled = plan()
    assert template_annotations(compiled, "StatefulSet", "db") == {"backup.example.com/skip": "true"}
    assert template_annotations(compiled, "Deployment", "api") == {
        "sidecar.istio.io/inject": "false",
        "prometheus.io/port": "9090",  # a number in YAML, a string in the manifest
    }
    assert template_annotations(compiled, "Job", "slow") == {"pod-complete.stage.kwok.x-k8s.io/delay": "600000"}
    assert template_annotations(compiled, "Job", "plain") is None  # no empty mapping rendered


def test_annotations_are_not_put_on_the_workload_itself() -> None:
    found = plan().find("Deployment", "api")
    assert found is not None
    assert "sidecar.istio.io/inject" not in found.manifest["metadata"].get("annotations", {})


def test_invalid_and_reserved_keys_are_located_errors() -> None:
    text = SPEC.replace('      sidecar.istio.io/inject: "false"', '      "bad key!": x\n      envspec.dev/wave: "3"')
    assert problems(text) == [
        "spec.yaml:12:7: services.api.annotations.bad key!: invalid annotation key 'bad key!': the name must be "
        "1-63 characters of a-z, A-Z, 0-9, '-', '_', '.', starting and ending with a letter or digit",
        "spec.yaml:13:7: services.api.annotations.envspec.dev/wave: annotation key 'envspec.dev/wave' is "
        "reserved for envspec",
    ]


def test_a_prefix_that_is_not_a_dns_subdomain_is_refused() -> None:
    text = SPEC.replace("backup.example.com/skip", "Backup_Example/skip")
    [problem] = problems(text)
    assert "databases.db.annotations.Backup_Example/skip: invalid annotation key" in problem
    assert "the prefix must be a DNS subdomain" in problem


def test_a_non_mapping_is_refused() -> None:
    text = SPEC.replace('    annotations:\n      backup.example.com/skip: "true"\n', "    annotations: [a]\n")
    [problem] = problems(text)
    assert "databases.db.annotations" in problem and "must be a mapping of annotation keys to values" in problem


def test_the_json_schema_documents_them_for_each_component() -> None:
    definitions = json_schema()["$defs"]
    for component in ("Database", "Service", "TestJob"):
        annotations = definitions[component]["properties"]["annotations"]
        assert annotations["type"] == "object"
        assert "reserved" in annotations["description"]
        assert annotations["propertyNames"]["not"] == {"pattern": "^envspec\\.dev/"}
    with (Path(__file__).resolve().parent.parent / "schemas" / "maestro-env.schema.json").open() as committed:
        assert json.load(committed) == json_schema()
