"""From a spec file (or an environment name) to what an operation acts on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from envspec.operations.environments import EnvironmentRef
from envspec.pipeline import ValidSpec, build_plan, check_id, identity, load_spec
from envspec.plan import Plan, SecretSlot

PlanBuilder = Callable[[Mapping[SecretSlot, str] | None], Plan]
"""Compiles the plan with the given secret values (None: placeholders, to learn names)."""


def plan_builder(
    file: str, env_id: str | None, environ: Mapping[str, str], *, stdin_text: str | None = None
) -> PlanBuilder:
    """Load and validate the spec now (SpecError before any cluster access); compile on demand."""
    spec = load_spec(file, environ, stdin_text=stdin_text)
    checked_id = check_id(env_id)

    def build(secrets: Mapping[SecretSlot, str] | None) -> Plan:
        return build_plan(spec, env_id=checked_id, secrets=secrets)

    return build


@dataclass(frozen=True)
class TestPlans:
    """What `envspec test` compiles: the environment alone (for `--up`) and with its tests as Jobs."""

    environment: PlanBuilder
    with_tests: PlanBuilder
    tests: tuple[str, ...]  # every test of the spec (ad-hoc ones included), in the spec's order


def test_plans(
    file: str,
    env_id: str | None,
    environ: Mapping[str, str],
    *,
    extra_tests: Mapping[str, Mapping[str, Any]] | None = None,
    stdin_text: str | None = None,
) -> TestPlans:
    """Load and validate the spec (with `extra_tests` added) now; compile on demand."""
    return test_plans_of(load_spec(file, environ, stdin_text=stdin_text, extra_tests=extra_tests), env_id)


def test_plans_of(spec: ValidSpec, env_id: str | None = None) -> TestPlans:
    """The plans of `envspec test` for a spec validated already (the worker's requests)."""
    checked_id = check_id(env_id)

    def environment(secrets: Mapping[SecretSlot, str] | None) -> Plan:
        return build_plan(spec, env_id=checked_id, secrets=secrets)

    def with_tests(secrets: Mapping[SecretSlot, str] | None) -> Plan:
        return build_plan(spec, env_id=checked_id, secrets=secrets, include_tests=True)

    return TestPlans(environment, with_tests, tuple(spec.spec.tests))


def environment_ref(
    file: str, name: str | None, env_id: str | None, environ: Mapping[str, str], *, with_plan: bool = False
) -> EnvironmentRef:
    """The environment `down`/`status`/`extend` mean: `--name` (label value, optionally `-<id>`), else the spec's."""
    checked_id = check_id(env_id)
    if name is not None:
        return EnvironmentRef(f"{name}-{checked_id}" if checked_id else name)
    spec = load_spec(file, environ)
    names = identity(spec, checked_id)
    plan = build_plan(spec, env_id=checked_id) if with_plan else None
    return EnvironmentRef(names.environment, names.namespace, plan)
