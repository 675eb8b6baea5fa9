"""The loader's bounds and its messages: size, node count, encoding, control characters,
user text in messages, and each problem once. Through the installed command where the
input comes from outside (a device, standard input)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envspec import loader as loader_module
from envspec import refs
from envspec.compiler import compile_plan
from envspec.errors import PROBLEMS_SHOWN, SpecError
from envspec.loader import MAX_INPUT_BYTES, MAX_NODES, load_text
from envspec.render import plan_text
from envspec.validation import validate

ENVSPEC = Path(sys.executable).parent / "envspec"
HEAD = "apiVersion: envspec/v1\nname: demo\n"


def envspec(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    assert ENVSPEC.is_file(), f"{ENVSPEC} missing: run `make install`"
    result = subprocess.run(
        [str(ENVSPEC), *args], input=input, capture_output=True, timeout=120, env=dict(os.environ), check=False
    )
    assert b"Traceback" not in result.stderr
    assert b"internal error" not in result.stderr
    return result


def problems_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        validate(load_text(text, "spec.yaml"), {})
    return [str(problem) for problem in caught.value.problems]


def message_of(text: str) -> str:
    with pytest.raises(SpecError) as caught:
        validate(load_text(text, "spec.yaml"), {})
    return caught.value.message


# --- size and shape ----------------------------------------------------------------------------


def test_an_endless_device_ends_at_once_with_the_limit_named() -> None:
    result = envspec("validate", "-f", "/dev/zero")
    assert result.returncode == 1
    assert result.stderr == b"/dev/zero:1:1: larger than 10 MiB, the most a spec may be\n1 problem found\n"


def test_an_endless_standard_input_ends_at_once() -> None:
    result = envspec("validate", "-f", "-", input=b"#" * (MAX_INPUT_BYTES + 10))
    assert result.returncode == 1
    assert result.stderr.startswith(b"<stdin>:1:1: larger than 10 MiB")


def test_the_size_bound_holds_for_text_given_directly() -> None:
    (problem,) = problems_of("#" * (MAX_INPUT_BYTES + 1))
    assert problem == "spec.yaml:1:1: larger than 10 MiB, the most a spec may be"


def test_too_many_nodes_without_aliases_names_the_limit() -> None:
    text = HEAD + "labels:\n" + "".join(f"  k{i}: v\n" for i in range(MAX_NODES // 2 + 10))
    (problem,) = problems_of(text)
    assert problem.endswith(": more than 100,000 nodes (keys, values and list items), the most a spec may have")
    assert "alias" not in problem


def test_too_many_nodes_in_a_long_file_is_refused_before_composing() -> None:
    text = HEAD + "services:\n  a:\n    image: x\n    command:\n" + "      - a\n" * (MAX_NODES + 10)
    (problem,) = problems_of(text)
    assert "more than 100,000 nodes" in problem


def test_a_spec_of_many_but_not_too_many_nodes_loads() -> None:
    text = HEAD + "services:\n  a:\n    image: x\n    command:\n" + "      - a\n" * 20_000
    assert len(load_text(text, "spec.yaml").data["services"]["a"]["command"]) == 20_000


def test_a_50_mb_string_is_parsed_for_references_in_linear_time() -> None:
    """Measured (not asserted): 0.04 s for 50 MB on the development machine, was 45-73 s."""
    text = "a" * 50_000_000
    assert refs.parse(text) == [text]
    assert refs.parse("x" * 1_000_000 + "${env.A}" + "y" * 1_000_000)[1] == refs.Reference("env", "A", None, "${env.A}")


def old_parse(text: str) -> list[refs.Segment]:
    """The character-by-character parser this one replaced: the oracle for the fast one."""
    segments: list[refs.Segment] = []
    literal: list[str] = []
    index = 0
    while index < len(text):
        if text.startswith("$${", index):
            literal.append("${")
            index += 3
            continue
        if text.startswith("${", index):
            end = text.find("}", index + 2)
            if end < 0:
                raise refs.ReferenceSyntaxError("unterminated")
            match = refs._BODY.fullmatch(text[index + 2 : end])
            if match is None or (match.group("default") is not None and match.group("scope") != "env"):
                raise refs.ReferenceSyntaxError("invalid")
            if literal:
                segments.append("".join(literal))
                literal = []
            segments.append(
                refs.Reference(match.group("scope"), match.group("attr"), match.group("default"), text[index : end + 1])
            )
            index = end + 1
            continue
        literal.append(text[index])
        index += 1
    if literal:
        segments.append("".join(literal))
    return segments


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(["$", "{", "}", "$${", "${", "env.A", "db.url", ":-", "x", " ", "."]), max_size=12))
def test_the_linear_parser_agrees_with_the_old_one(pieces: list[str]) -> None:
    text = "".join(pieces)
    try:
        expected = old_parse(text)
    except refs.ReferenceSyntaxError:
        with pytest.raises(refs.ReferenceSyntaxError):
            refs.parse(text)
        return
    assert refs.parse(text) == expected


# --- encoding and control characters -------------------------------------------------------------


def test_invalid_utf8_on_standard_input_is_a_located_problem() -> None:
    result = envspec("validate", "-f", "-", input=b"apiVersion: envspec/v1\nname: d\xe9mo\n")
    assert result.returncode == 1
    assert result.stderr == b"<stdin>:2:8: not UTF-8 text: byte 0xe9 (invalid continuation byte)\n1 problem found\n"


def test_invalid_utf8_in_a_file_is_located_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"apiVersion: envspec/v1\n\n  x: \xff\n")
    result = envspec("validate", "-f", str(path))
    assert result.stderr == f"{path}:3:6: not UTF-8 text: byte 0xff (invalid start byte)\n1 problem found\n".encode()


@pytest.mark.parametrize(
    ("character", "name"),
    [("\x00", "NUL"), ("\x07", "a control character"), ("\x1b", "ESC"), ("\x7f", "DEL"), ("\ufffe", "")],
)
def test_a_control_character_is_reported_at_its_line_and_column(character: str, name: str) -> None:
    text = HEAD + f'services:\n  api:\n    image: "ab{character}c"\n'
    (problem,) = problems_of(text)
    assert problem.startswith(f"spec.yaml:5:15: character U+{ord(character):04X} (")
    assert problem.endswith(") is not allowed in YAML")
    assert name in problem
    assert "position" not in problem


# YAML 1.2, 5.1: the printable set a stream may hold, as ranges of code points.
YAML_PRINTABLE = (
    (0x09, 0x09),
    (0x0A, 0x0A),
    (0x0D, 0x0D),
    (0x20, 0x7E),
    (0x85, 0x85),
    (0xA0, 0xD7FF),
    (0xE000, 0xFFFD),
    (0x10000, 0x10FFFF),
)


def test_the_loader_refuses_exactly_the_characters_outside_yamls_printable_set() -> None:
    # Every code point, against the set as the YAML spec writes it: the loader's pattern
    # is the set's complement, spelled for a fast compile.
    mismatched = []
    for code in range(0x110000):
        printable = any(low <= code <= high for low, high in YAML_PRINTABLE)
        if (loader_module._NOT_PRINTABLE.match(chr(code)) is None) != printable:
            mismatched.append(code)
    assert mismatched == []


def test_a_control_character_after_crlf_line_breaks() -> None:
    (problem,) = problems_of("a: 1\r\nb: 2\r\nc: x\x01\r\n")
    assert problem.startswith("spec.yaml:3:5: character U+0001")


# --- user text in messages -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["a\nspec.yaml:1:1: forged: everything is fine", "\x1b[2J\x1b[31mred", "a\u202eb", "a\u2028b", "x" * 100_000],
)
def test_user_text_can_neither_forge_a_line_nor_flood_the_terminal(name: str) -> None:
    quoted = name.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    for text in (
        HEAD.replace("demo", f'"{quoted}"'),
        HEAD + f'services:\n  ? "{quoted}"\n  : {{image: x}}\n',
        HEAD + f'labels: {{a: "{quoted}"}}\n',
        HEAD + f'services:\n  a: {{image: x, env: {{A: "${{{quoted}.url}}"}}}}\n',
    ):
        message = message_of(text)
        lines = message.split("\n")
        assert len(lines) == 2, message
        assert lines[-1] == "1 problem found"
        assert len(message) < 600
        assert all(c.isprintable() for c in lines[0]), lines[0]


def test_a_long_name_is_shown_quoted_and_shortened() -> None:
    (problem,) = problems_of(HEAD + "services:\n  ? " + "a" * 100_000 + "\n  : {image: x}\n")
    assert "'" + "a" * 60 + "… (100,000 characters)'" in problem
    assert "is 100000 characters long; at most 40 are allowed" in problem


def test_many_problems_are_listed_up_to_a_bound_and_counted() -> None:
    text = HEAD + "labels:\n" + "".join(f"  'bad key {i}': v\n" for i in range(PROBLEMS_SHOWN + 50))
    message = message_of(text)
    lines = message.split("\n")
    assert len(lines) == PROBLEMS_SHOWN + 1
    assert lines[-1] == f"{PROBLEMS_SHOWN + 50} problems found (50 more not shown)"


# --- each problem once -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [HEAD + "labels:\n  <<: [1, 2]\n", HEAD + "<<: [a, b, c]\n", HEAD + "labels:\n  <<: [1, 1, 1]\n"],
)
def test_a_merge_of_non_mappings_is_reported_once(text: str) -> None:
    found = problems_of(text)
    assert len(found) == len(set(found))
    assert sum("'<<' merges only mappings" in problem for problem in found) == 1


HUGE = "a" * 2_000_000
HUGE_FIELDS = {
    "image": f'services:\n  s:\n    image: "{HUGE}"\n',
    "env value": f'services:\n  s:\n    image: x\n    env: {{A: "{HUGE}"}}\n',
    "env value of $(": f'services:\n  s:\n    image: x\n    env: {{A: "{"$(" * 500_000}"}}\n',
    "label": f'labels: {{a: "{HUGE}"}}\n',
    "label key": f'labels:\n  ? "{HUGE}"\n  : v\n',
    "name": f'namespacePrefix: "{HUGE}"\n',
    "ttl": f'ttl: "{"9" * 2_000_000}s"\n',
    "quantity": f'resources:\n  defaults:\n    limits: {{cpu: "{"9" * 2_000_000}"}}\n',
    "version": f'databases:\n  d: {{engine: redis, version: "{HUGE}"}}\n',
    "args string": f'services:\n  s:\n    image: x\n    args: "{HUGE}"\n',
    "command words": f'services:\n  s:\n    image: x\n    command: "{"a " * 1_000_000}"\n',
    "dependsOn": f'services:\n  s:\n    image: x\n    dependsOn: ["{HUGE}"]\n',
}


@pytest.mark.parametrize("field", sorted(HUGE_FIELDS))
def test_a_huge_scalar_in_any_field_is_handled_without_a_crash(field: str) -> None:
    """Measured on the development machine (9 MB scalars): each under 2.5 s under load;
    a 9-million-digit quantity took minutes before its digits were bounded."""
    try:
        valid = validate(load_text(HEAD + HUGE_FIELDS[field], "spec.yaml"), {})
    except SpecError as error:
        assert len(error.message) < 2000
        return
    assert plan_text(compile_plan(valid), "yaml")
