"""Golden renderings of every example, and strict Kubernetes 1.34 schema validation.

Regenerate after an intended change with `make golden` (ENVSPEC_UPDATE_GOLDEN=1), then
review the diff of tests/golden/ before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import kubernetes_validate
import pytest

from envspec.pipeline import build_plan, load_spec
from envspec.plan import ENVIRONMENT_LABEL, MANAGED_BY_LABEL, WAVE_ANNOTATION
from envspec.render import plan_text
from tests.conftest import EXAMPLES, REPO

GOLDEN = Path(__file__).parent / "golden"
# Golden files are rendered without the caller's environment, so they never depend on it.
FIXED_ENVIRON: dict[str, str] = {}


def render_example(name: str) -> str:
    valid = load_spec(str(REPO / "examples" / name / "maestro-env.yaml"), FIXED_ENVIRON)
    return plan_text(build_plan(valid, include_tests=True), "yaml")


@pytest.mark.parametrize("example", EXAMPLES)
def test_rendering_matches_golden_file(example: str) -> None:
    rendered = render_example(example)
    golden = GOLDEN / f"{example}.yaml"
    if os.environ.get("ENVSPEC_UPDATE_GOLDEN"):
        golden.write_text(rendered, encoding="utf-8")
    assert golden.exists(), f"missing {golden}; run `make golden`"
    assert rendered == golden.read_text(encoding="utf-8"), f"{example} changed; if intended, run `make golden`"


def test_every_example_has_a_golden_file() -> None:
    assert sorted(["fullstack", "large", "polyglot-db", "quickstart"]) == EXAMPLES
    assert sorted(p.stem for p in GOLDEN.glob("*.yaml")) == EXAMPLES


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_object_validates_strictly_against_kubernetes_1_34(example: str) -> None:
    valid = load_spec(str(REPO / "examples" / example / "maestro-env.yaml"), FIXED_ENVIRON)
    plan = build_plan(valid, include_tests=True, env_id="ci-1")
    for manifest in plan.manifests():
        kubernetes_validate.validate(manifest, "1.34", strict=True)


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_object_is_labelled_and_carries_its_wave(example: str) -> None:
    valid = load_spec(str(REPO / "examples" / example / "maestro-env.yaml"), FIXED_ENVIRON)
    plan = build_plan(valid, include_tests=True)
    for obj in plan.objects:
        metadata = obj.manifest["metadata"]
        assert metadata["labels"][MANAGED_BY_LABEL] == "envspec"
        assert metadata["labels"][ENVIRONMENT_LABEL] == valid.spec.name
        assert metadata["annotations"][WAVE_ANNOTATION] == str(obj.wave)
