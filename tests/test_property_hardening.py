"""Property tests of issue 12's classes: hostile text in command, args and env (`$(`,
helper names, control characters), hostile directory contents for `render --out-dir`,
and random bytes on standard input. Whatever comes in: no internal error, no traceback,
no secret in a command line or outside its Secret, no value altered on its way to the
container, and nothing touched that envspec did not write."""

from __future__ import annotations

import io
import json
import os
import shlex
import string
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from envspec import refs
from envspec.cli.main import cli
from envspec.compiler import compile_plan, secret_slots
from envspec.errors import SpecError
from envspec.loader import load_text
from envspec.model import split_words
from envspec.render import INDEX_NAME, generate_secrets, plan_text
from envspec.validation import validate
from tests.kubelet_expansion import container_view

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
REPO = Path(__file__).resolve().parent.parent
QUICKSTART = str(REPO / "examples" / "quickstart" / "maestro-env.yaml")

PIECES = [
    "$(",
    "$$(",
    "$",
    "$$",
    ")",
    "(",
    "${db.password}",
    "${db.url}",
    "${db.host}",
    "${env.X}",
    "$${",
    "ENVSPEC_DB_PASSWORD",
    "ENVSPEC_DB_URL",
    "DATABASE_URL",
    "P",
    "a",
    " ",
    "\n",
    "\t",
    "\x00",
    "\x1b[31m",
    "\x7f",
    "\u2028",
    "\u202e",
    "é",
    "'",
    '"',
    "\\",
    "}",
    "{",
]
hostile_text = st.lists(st.sampled_from(PIECES), max_size=10).map("".join)


def quoted(text: str) -> str:
    """`text` as a YAML double-quoted scalar (JSON's escapes are YAML's)."""
    return json.dumps(text)


def passwords_of(secrets: dict[tuple[str, str], str]) -> list[str]:
    return [value for (_, key), value in secrets.items() if key in ("password", "root-password")]


def expected(text: str, values: dict[str, str]) -> str:
    """What the container must get for `text`: references filled, nothing else changed."""
    return "".join(s if isinstance(s, str) else values[s.text] for s in refs.parse(text))


def assert_clean_problems(error: SpecError) -> None:
    for problem in error.problems:
        line = str(problem)
        assert "\n" not in line
        assert all(c.isprintable() for c in line), line
        assert len(line) < 1200


@SETTINGS
@given(command=hostile_text, arg=hostile_text, value=hostile_text, x=hostile_text)
def test_hostile_text_reaches_the_container_as_written_and_no_secret_reaches_argv(
    command: str, arg: str, value: str, x: str
) -> None:
    spec = (
        "apiVersion: envspec/v1\nname: demo\ndatabases:\n  db: {engine: postgresql}\n"
        "services:\n  api:\n    image: app\n"
        f"    command: [sh, -c, {quoted(command)}]\n    args: [{quoted(arg)}]\n"
        f"    env:\n      DATABASE_URL: ${{db.url}}\n      P: ${{db.password}}\n      A: {quoted(value)}\n"
    )
    try:
        valid = validate(load_text(spec, "spec.yaml"), {"X": x})
    except SpecError as error:
        event("refused")
        assert_clean_problems(error)
        return
    event("rendered")
    plan = compile_plan(valid, secrets=generate_secrets(secret_slots(valid)))
    text = plan_text(plan, "yaml")
    # what is applied is what the YAML says: read it back as kubectl would
    documents = list(YAML(typ="safe", pure=True).load_all(io.StringIO(text)))
    assert documents == plan.manifests()
    secrets = {
        (d["metadata"]["name"], key): item
        for d in documents
        if d["kind"] == "Secret"
        for key, item in d["stringData"].items()
    }
    passwords = passwords_of(secrets)
    for document in documents:
        if document["kind"] != "Secret":
            assert not any(p in json.dumps(document) for p in passwords), document["kind"]
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    seen = container_view(container, secrets)
    for word in [*seen["command"], *seen["args"]]:
        assert not any(p in word for p in passwords)
    values = {
        "${db.password}": secrets[("db-credentials", "password")],
        "${db.url}": secrets[("db-credentials", "url")],
        "${db.host}": "db",
        "${env.X}": x,
    }
    assert seen["command"] == ["sh", "-c", expected(command, values)]
    assert seen["args"] == [expected(arg, values)]
    assert seen["env"]["A"] == expected(value, values)


@SETTINGS
@given(st.lists(st.sampled_from(["a", "b", " ", "\t", "\n", "'", '"', "\\", "$", "é", "  "]), max_size=14).map("".join))
def test_splitting_a_command_string_is_exactly_shlex(text: str) -> None:
    try:
        wanted = shlex.split(text)
    except ValueError as exc:
        try:
            split_words(text)
        except ValueError as mine:
            assert str(mine) == str(exc)
            return
        raise AssertionError(f"shlex refuses {text!r}: {exc}") from None
    assert split_words(text) == wanted


# --- random bytes and text through the command line ---------------------------------------------


def run_cli(*args: str, input: bytes | str | None = None) -> Any:
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output)
    assert "Traceback" not in result.output
    return result


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=200),
        st.lists(
            st.sampled_from(
                [
                    b"apiVersion: envspec/v1\n",
                    b"name: demo\n",
                    b"services:\n  a:\n    image: x\n    command: ",
                    b"\xff",
                    b"\xc3",
                    b"\x00",
                    b"\x1b",
                    b"\r\n",
                    b"\xe2\x80\xa8",
                    b"$(ENVSPEC_DB_PASSWORD)",
                    b"'",
                    b'"',
                    b"<<: [1, 2]\n",
                    b"&a [*a]\n",
                ]
            ),
            max_size=12,
        ).map(b"".join),
    )
)
def test_random_bytes_on_standard_input(data: bytes) -> None:
    result = run_cli("validate", "-f", "-", input=data)
    for line in result.stderr.splitlines():
        assert all(c.isprintable() for c in line), line


# --- hostile directory contents for render --out-dir --------------------------------------------

FILE_NAMES = [
    "000-namespace-envspec-quickstart.yaml",
    "004-secret-db-credentials.yaml",
    "008-deployment-app.yaml",
    "009-job-old.yaml",
    "010-configmap-mine.yaml",
    INDEX_NAME,
    "notes.txt",
]
entry = st.tuples(
    st.sampled_from(FILE_NAMES),
    st.sampled_from(["file", "link-outside", "dangling-link", "directory", "managed-looking"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(entry, max_size=4, unique_by=lambda e: e[0]), st.booleans())
def test_render_out_dir_never_touches_what_it_did_not_write(
    tmp_path_factory: Any, entries: list[tuple[str, str]], show_secrets: bool
) -> None:
    root: Path = tmp_path_factory.mktemp("render")
    out = root / "out"
    out.mkdir()
    outside = root / "outside.txt"
    outside.write_text("precious\n", encoding="utf-8")
    before: dict[str, tuple[str, str]] = {}
    for name, kind in entries:
        path = out / name
        if kind == "file":
            path.write_text(f"mine: {name}\n", encoding="utf-8")
        elif kind == "managed-looking":
            path.write_text(
                "# Generated by `envspec render`\napp.kubernetes.io/managed-by: envspec\n", encoding="utf-8"
            )
        elif kind == "link-outside":
            path.symlink_to(outside)
        elif kind == "dangling-link":
            path.symlink_to(root / f"missing-{name}")
        else:
            path.mkdir()
        before[name] = snapshot(path)
    args = ["render", "-f", QUICKSTART, "--out-dir", str(out), *(["--show-secrets"] if show_secrets else [])]
    result = run_cli(*args)
    assert outside.read_text(encoding="utf-8") == "precious\n"
    assert not [p for p in root.iterdir() if p.name.startswith("missing-")]
    for name, state in before.items():
        if name == INDEX_NAME and result.exit_code == 0:
            continue  # the index is render's own: replaced (a link there is replaced, not followed)
        assert snapshot(out / name) == state, name
    if result.exit_code == 0:
        for path in out.iterdir():
            if path.name not in before and path.name != INDEX_NAME:
                assert path.is_file() and not path.is_symlink()
                mode = path.stat().st_mode & 0o777
                if "-secret-" in path.name:
                    assert mode == 0o600
    else:
        assert result.exit_code == 1
        assert {p.name for p in out.iterdir()} == set(before)


def snapshot(path: Path) -> tuple[str, str]:
    if path.is_symlink():
        return "link", os.readlink(path)
    if path.is_dir():
        return "directory", ",".join(sorted(p.name for p in path.iterdir()))
    return "file", path.read_text(encoding="utf-8")


# --- names and values that would forge output ------------------------------------------------------


@SETTINGS
@given(st.text(alphabet=string.ascii_letters + "\n\r\x1b\x00\u2028\u202e\x85 -'\"", min_size=1, max_size=40))
def test_names_cannot_forge_lines(name: str) -> None:
    spec = f"apiVersion: envspec/v1\nname: {quoted(name)}\nservices:\n  {quoted(name)}: {{image: x}}\n"
    result = run_cli("validate", "-f", "-", input=spec)
    if result.exit_code == 1:
        lines = result.stderr.splitlines()
        assert lines[-1].endswith("found")
        assert all(line.startswith("<stdin>:") for line in lines[:-1]), lines
        assert all(c.isprintable() for line in lines for c in line)
