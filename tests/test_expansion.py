"""Kubernetes' `$(VAR)` expansion never reaches spec text: what a spec writes in command, args
and env values is what the container gets, and no spelling puts a secret in a command line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envspec.compiler import compile_plan, escape_expansion, secret_slots
from envspec.errors import SpecError
from envspec.loader import load_text
from envspec.plan import Plan
from envspec.render import generate_secrets
from envspec.validation import validate
from tests.kubelet_expansion import container_view, expand, mapping_of

HEAD = "apiVersion: envspec/v1\nname: demo\ndatabases:\n  db: {engine: postgresql}\n"


def plan_of(text: str, environ: Mapping[str, str] | None = None) -> Plan:
    valid = validate(load_text(text, "spec.yaml"), environ or {})
    return compile_plan(valid, secrets=generate_secrets(secret_slots(valid)), include_tests=True)


def secret_values(plan: Plan) -> dict[tuple[str, str], str]:
    return {
        (o.manifest["metadata"]["name"], key): value
        for o in plan.objects
        if o.kind == "Secret"
        for key, value in o.manifest["stringData"].items()
    }


def containers(plan: Plan) -> list[dict[str, Any]]:
    return [
        container
        for o in plan.objects
        if o.kind in ("Deployment", "Job")
        for container in o.manifest["spec"]["template"]["spec"]["containers"]
    ]


def only_container(plan: Plan) -> dict[str, Any]:
    (container,) = containers(plan)
    return container


def view(plan: Plan) -> dict[str, Any]:
    return container_view(only_container(plan), secret_values(plan))


def passwords(plan: Plan) -> list[str]:
    return [value for (_, key), value in secret_values(plan).items() if key in ("password", "root-password")]


def assert_no_secret_in_argv(plan: Plan) -> None:
    secrets = passwords(plan)
    for container in containers(plan):
        seen = container_view(container, secret_values(plan))
        for word in [*seen["command"], *seen["args"]]:
            for secret in secrets:
                assert secret not in word, (word, container["name"])


# --- the escaping itself ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "$", "$$", "$(X)", "$$(X)", "$$$(X)", "a$", "$(", "$)", "$HOME", "${X}", "$(X", "x $(A) $$ $"],
)
def test_escaped_text_expands_back_to_itself(text: str) -> None:
    defined = mapping_of({"X": "secret", "A": "secret", "HOME": "secret"})
    assert expand(escape_expansion(text), defined) == text


@settings(max_examples=500, deadline=None)
@given(
    before=st.text(alphabet="$()aX ", max_size=12),
    after=st.text(alphabet="$()aX ", max_size=12),
)
def test_escaped_text_next_to_a_helper_keeps_both(before: str, after: str) -> None:
    """The helper's `$(…)` expands, and the user's text on either side stays as written."""
    joined = escape_expansion(before) + "$(ENVSPEC_H)" + escape_expansion(after)
    assert expand(joined, mapping_of({"ENVSPEC_H": "<v>", "X": "no", "a": "no"})) == before + "<v>" + after


@settings(max_examples=500, deadline=None)
@given(st.text(), st.dictionaries(st.text(alphabet="$()aX", min_size=1, max_size=4), st.text(max_size=4)))
def test_escaped_text_survives_any_environment(text: str, variables: dict[str, str]) -> None:
    assert expand(escape_expansion(text), mapping_of(variables)) == text


# --- through the compiler ----------------------------------------------------------------------


def test_a_helper_named_in_command_is_refused() -> None:
    text = HEAD + "services:\n  a:\n    image: x\n    command: [sh, -c, 'echo $(ENVSPEC_DB_PASSWORD)']\n"
    with pytest.raises(SpecError) as caught:
        plan_of(text)
    assert "services.a.command: $(ENVSPEC_…) names a variable reserved for envspec" in caught.value.message


@pytest.mark.parametrize("field", ["args: 'x $(ENVSPEC_DB_URL)'", "env: {A: 'u=$(ENVSPEC_DB_URL)'}"])
def test_a_helper_named_in_args_or_env_is_refused(field: str) -> None:
    with pytest.raises(SpecError) as caught:
        plan_of(HEAD + f"services:\n  a:\n    image: x\n    {field}\n")
    assert "$(ENVSPEC_…) names a variable reserved for envspec" in caught.value.message


def test_the_helper_prefix_is_reserved_for_env_names() -> None:
    text = HEAD + "services:\n  a:\n    image: x\n    env: {ENVSPEC_DB_PASSWORD: x, D: 'p=${db.password}'}\n"
    with pytest.raises(SpecError) as caught:
        plan_of(text)
    assert (
        "spec.yaml:8:11: services.a.env.ENVSPEC_DB_PASSWORD: variable names starting with ENVSPEC_ are reserved"
        in caught.value.message
    )


def test_a_variable_of_the_container_named_in_command_stays_text() -> None:
    """`$(DATABASE_URL)` would have been expanded from the container's own secret-backed env."""
    text = HEAD + (
        "services:\n  a:\n    image: x\n    command: [sh, -c, 'echo $(DATABASE_URL) $(D)']\n"
        "    env: {DATABASE_URL: '${db.url}', D: 'p=${db.password}'}\n"
    )
    plan = plan_of(text)
    assert view(plan)["command"] == ["sh", "-c", "echo $(DATABASE_URL) $(D)"]
    assert_no_secret_in_argv(plan)


@pytest.mark.parametrize(
    "field", ["args: ['${env.X}']", "command: 'sh -c ${env.X}'", "env: {A: 'v=${env.X}'}", "args: ['$(${env.Y}']"]
)
def test_an_env_reference_that_brings_a_helper_expansion_is_refused(field: str) -> None:
    with pytest.raises(SpecError) as caught:
        plan_of(
            HEAD + f"services:\n  a:\n    image: x\n    {field}\n", {"X": "$(ENVSPEC_DB_URL)", "Y": "ENVSPEC_DB_URL)"}
        )
    assert "with its references filled in, the text holds $(ENVSPEC_…)" in caught.value.message


def test_an_env_reference_whose_value_is_an_expansion_stays_text() -> None:
    text = HEAD + (
        "services:\n  a:\n    image: x\n    args: ['${env.X}']\n"
        "    env: {P: '${db.password}', E: 'v=${env.X} p=${db.password}'}\n"
    )
    plan = plan_of(text, {"X": "$(P)"})
    seen = view(plan)
    assert seen["args"] == ["$(P)"]
    assert seen["env"]["E"] == f"v=$(P) p={passwords(plan)[0]}"
    assert_no_secret_in_argv(plan)


def test_a_doubled_dollar_reaches_the_container_as_written() -> None:
    text = HEAD + "services:\n  a:\n    image: x\n    args: ['$$(P)']\n    env: {P: '${db.password}', L: '$$(P)'}\n"
    plan = plan_of(text)
    seen = view(plan)
    assert seen["args"] == ["$$(P)"]
    assert seen["env"]["L"] == "$$(P)"
    assert_no_secret_in_argv(plan)


def test_shell_text_is_unchanged_in_the_manifest_where_no_expansion_could_apply() -> None:
    text = HEAD + "services:\n  a:\n    image: x\n    command: [sh, -c, 'echo $HOME ${env.X}']\n"
    assert only_container(plan_of(text, {"X": "1"}))["command"] == ["sh", "-c", "echo $HOME 1"]


def test_embedded_secret_after_a_trailing_dollar() -> None:
    """A `$` of the user's text right before a helper must not turn the helper into text."""
    text = (
        HEAD
        + "services:\n  a:\n    image: x\n    env: {D: 'cost${env.D}${db.password}$', E: '${env.E}${db.password}'}\n"
    )
    plan = plan_of(text, {"D": "$", "E": "$$"})
    secret = passwords(plan)[0]
    seen = view(plan)
    assert seen["env"]["D"] == f"cost${secret}$"
    assert seen["env"]["E"] == f"$${secret}"
