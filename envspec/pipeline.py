"""The front of the pipeline: read → load → validate → compile.

Every command that needs a plan goes through here; none re-implements a step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from envspec.compiler import Identity, compile_plan, identity, secret_slots
from envspec.defaults import ValidSpec
from envspec.errors import EnvspecError
from envspec.loader import load_text, read_source
from envspec.plan import Plan, SecretSlot
from envspec.validation import validate

__all__ = ["Identity", "ValidSpec", "build_plan", "check_id", "compile_plan", "identity", "load_spec", "plan_slots"]

ID_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]{0,18}[a-z0-9])?$")


def load_spec(
    file: str,
    environ: Mapping[str, str],
    *,
    stdin_text: str | None = None,
    extra_tests: Mapping[str, Mapping[str, Any]] | None = None,
) -> ValidSpec:
    """Read, parse and validate `file` ('-' for stdin); raise SpecError listing every problem.

    `extra_tests` (`envspec test --image ...`) join the spec's `tests` before validation, so
    that their references, secrets and defaults are checked and compiled exactly as the
    spec's own tests.
    """
    text, source = read_source(file, stdin_text)
    document = load_text(text, source)
    if extra_tests:
        add_tests(document.data, extra_tests)
    return validate(document, environ)


def add_tests(data: Any, extra_tests: Mapping[str, Mapping[str, Any]]) -> None:
    """Add tests to a loaded spec's data; a name the spec already uses is refused."""
    if not isinstance(data, dict):
        return  # not a mapping at all: validation reports it
    tests = data.get("tests")
    if not isinstance(tests, dict):
        tests = {}
        data["tests"] = tests
    taken = {str(name) for section in ("databases", "services", "tests") for name in (data.get(section) or {})}
    for name, test in extra_tests.items():
        if name in taken:
            raise EnvspecError(f"--name {name}: the spec already has a component named {name!r}; pick another --name")
        tests[name] = dict(test)


def check_id(env_id: str | None) -> str | None:
    """Validate an `--id`: it becomes part of a label value and of the namespace name."""
    if env_id is not None and not ID_PATTERN.fullmatch(env_id):
        raise EnvspecError(
            f"--id {env_id!r}: use 1-20 lower-case letters, digits and '-', starting and ending with a letter or digit"
        )
    return env_id


def plan_slots(spec: ValidSpec) -> tuple[SecretSlot, ...]:
    """The generated values `compile_plan` expects (the same as Plan.secret_slots)."""
    return secret_slots(spec)


def build_plan(
    spec: ValidSpec,
    *,
    env_id: str | None = None,
    secrets: Mapping[SecretSlot, str] | None = None,
    include_tests: bool = False,
) -> Plan:
    return compile_plan(spec, env_id=check_id(env_id), secrets=secrets, include_tests=include_tests)
