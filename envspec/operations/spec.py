"""From a spec file (or an environment name) to what an operation acts on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from envspec.compiler import substitute
from envspec.operations.environments import EnvironmentRef
from envspec.pipeline import ValidSpec, build_plan, check_id, identity, load_spec
from envspec.plan import Plan, SecretSlot

PlanBuilder = Callable[[Mapping[SecretSlot, str] | None], Plan]
"""Compiles the plan with the given secret values (None: placeholders, to learn names)."""


def plan_builder(
    file: str, env_id: str | None, environ: Mapping[str, str], *, stdin_text: str | None = None
) -> PlanBuilder:
    """Load and validate the spec now (SpecError before any cluster access); compile on demand."""
    return builder_of(load_spec(file, environ, stdin_text=stdin_text), env_id)


def builder_of(spec: ValidSpec, env_id: str | None) -> PlanBuilder:
    """The plan builder of a spec already loaded (a command that also reads the spec's reporting)."""
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


def test_plans_of(spec: ValidSpec, env_id: str | None = None) -> TestPlans:
    """The plans of `envspec test` for a spec validated already (the CLI's, with its ad-hoc test; a request's)."""
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
    return environment_ref_and_spec(file, name, env_id, environ, with_plan=with_plan)[0]


def environment_ref_and_spec(
    file: str, name: str | None, env_id: str | None, environ: Mapping[str, str], *, with_plan: bool = False
) -> tuple[EnvironmentRef, ValidSpec | None]:
    """`environment_ref`, and the spec it was read from (None with `--name`)."""
    checked_id = check_id(env_id)
    if name is not None:
        return EnvironmentRef(f"{name}-{checked_id}" if checked_id else name), None
    spec = load_spec(file, environ)
    names = identity(spec, checked_id)
    plan = build_plan(spec, env_id=checked_id) if with_plan else None
    return EnvironmentRef(names.environment, names.namespace, plan), spec


@dataclass(frozen=True)
class ReportTarget:
    """Where a spec says its operations report (`reporting.redis`), references filled in."""

    url: str
    stream_prefix: str
    maxlen: int


def report_target(spec: ValidSpec, env_id: str | None = None) -> ReportTarget | None:
    """The spec's `reporting.redis`, its URL's `${env.X}` filled in; None when the spec has none."""
    reporting = spec.spec.reporting
    if reporting is None or reporting.redis is None:
        return None
    redis = reporting.redis
    return ReportTarget(substitute(spec, redis.url, env_id=env_id), redis.stream_prefix, redis.max_len)
