"""Property tests: no input makes the loader or validator fail with anything but a located SpecError."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from envspec.compiler import compile_plan
from envspec.errors import SpecError
from envspec.loader import load_text
from envspec.render import plan_text
from envspec.validation import validate
from envspec.yamlout import dump

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_TEXTS = {
    path.parent.name: path.read_text(encoding="utf-8")
    for path in sorted((REPO / "examples").glob("*/maestro-env.yaml"))
    if path.parent.name != "large"  # same shapes as the others, and slow to mutate
}
EXAMPLE_DATA = {name: YAML(typ="safe", pure=True).load(text) for name, text in EXAMPLE_TEXTS.items()}
ENVIRON = {"FEATURE_FLAGS": "x", "TAG": "1"}
SOURCE = "spec.yaml"
LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


def check(text: str) -> None:
    """Load and validate `text`; only success or a SpecError with sane locations may come out."""
    try:
        valid = validate(load_text(text, SOURCE), ENVIRON)
    except SpecError as exc:
        assert exc.problems, "a SpecError without problems"
        line_count = len(LINE_BREAK.split(text))
        lines = LINE_BREAK.split(text)
        for problem in exc.problems:
            location = problem.location
            assert location.source == SOURCE
            assert 1 <= location.line <= line_count, (str(problem), line_count)
            assert 1 <= location.column <= len(lines[location.line - 1]) + 1, (
                str(problem),
                lines[location.line - 1],
            )
            assert problem.message
            assert str(problem).startswith(f"{SOURCE}:{location.line}:{location.column}: ")
        return
    # A valid spec always compiles and renders.
    plan_text(compile_plan(valid, include_tests=True), "yaml")


# --- random YAML text --------------------------------------------------------------------------

YAML_PIECES = [
    "apiVersion: envspec/v1\n",
    "name: demo\n",
    "kind: Environment\n",
    "services:\n",
    "databases:\n",
    "tests:\n",
    "  api:\n",
    "  db:\n",
    "    image: x\n",
    "    engine: postgresql\n",
    "    port: 80\n",
    "    replicas: -1\n",
    "    dependsOn: [db]\n",
    "    env: {A: '${db.url}'}\n",
    "    health: /h\n",
    "- ",
    "-\n",
    ": ",
    ":\n",
    "  ",
    "\t",
    "#",
    "'",
    '"',
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!str ",
    "!x ",
    "|\n",
    ">\n",
    "---\n",
    "...\n",
    "? ",
    "%YAML 1.2\n",
    "\n",
    "\r\n",
    "~",
    "null",
    "true",
    "1e3",
    "0x1F",
    "${env.X}",
    "é",
    "\u2028",
    "\x85",
    "ttl: 1h\n",
    "labels: {a: b}\n",
    "resources:\n",
    "  quota: {cpu: 1, pods: 1}\n",
]

yaml_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(YAML_PIECES), max_size=40).map("".join),
    st.lists(st.one_of(st.sampled_from(YAML_PIECES), st.text(max_size=5)), max_size=30).map("".join),
)


@given(yaml_text)
@SETTINGS
def test_random_yaml_text(text: str) -> None:
    check(text)


@given(
    st.sampled_from(sorted(EXAMPLE_TEXTS)),
    st.lists(st.tuples(st.integers(min_value=0, max_value=200), st.sampled_from(YAML_PIECES)), max_size=4),
    st.lists(st.integers(min_value=0, max_value=200), max_size=3),
)
@SETTINGS
def test_example_text_with_random_edits(name: str, inserts: list[tuple[int, str]], deletions: list[int]) -> None:
    lines = EXAMPLE_TEXTS[name].splitlines(keepends=True)
    for index in deletions:
        if lines:
            del lines[index % len(lines)]
    for index, piece in inserts:
        lines.insert(index % (len(lines) + 1), piece)
    check("".join(lines))


# --- mutated valid specs -----------------------------------------------------------------------

random_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "",
            "x",
            "auto",
            "never",
            "0",
            "-1",
            "1e999999999",
            "100m",
            "1Gi",
            "1 Gi",
            "30s",
            "0s",
            "/health",
            "postgresql",
            "redis",
            "${db.url}",
            "${db.password}",
            "${nope.x}",
            "${env.UNSET}",
            "${env.X:-y}",
            "${environment.name}",
            "$${x}",
            "${",
            "api",
            "db",
            "cache",
            "UPPER",
            "a" * 70,
            "restricted",
            "none",
            "envspec/v1",
            "envspec/v2",
            "Environment",
            "dependsOn",
            "é",
            "\n",
            "a: b",
            "- x",
        ]
    ),
    st.text(max_size=10),
)
random_values = st.recursive(
    random_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
random_keys = st.one_of(
    st.sampled_from(
        [
            "image",
            "port",
            "replicas",
            "engine",
            "env",
            "dependsOn",
            "depends_on",
            "health",
            "resources",
            "limits",
            "requests",
            "cpu",
            "memory",
            "quota",
            "pods",
            "timeout",
            "retries",
            "storage",
            "version",
            "database",
            "command",
            "args",
            "labels",
            "ttl",
            "name",
            "apiVersion",
            "kind",
            "namespacePrefix",
            "isolation",
            "podSecurity",
            "services",
            "databases",
            "tests",
            "reporting",
            "redis",
            "url",
            "streamPrefix",
            "api",
            "db",
        ]
    ),
    st.text(max_size=8),
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON-like tree (excluding the root)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((*prefix, key))
            found.extend(paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((*prefix, index))
            found.extend(paths(item, (*prefix, index)))
    return found


def containers(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every mapping in the tree, the root included."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        found.append(prefix)
        for key, item in value.items():
            found.extend(containers(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(containers(item, (*prefix, index)))
    return found


def get(tree: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        tree = tree[part]
    return tree


mutation = st.tuples(
    st.sampled_from(["delete", "replace", "insert"]),
    st.integers(min_value=0, max_value=10_000),
    random_keys,
    random_values,
)


@given(st.sampled_from(sorted(EXAMPLE_DATA)), st.lists(mutation, min_size=1, max_size=4))
@SETTINGS
def test_mutated_valid_specs(name: str, mutations: list[tuple[str, int, str, Any]]) -> None:
    data = copy.deepcopy(EXAMPLE_DATA[name])
    for action, choice, key, value in mutations:
        if action == "insert":
            targets = containers(data)
            get(data, targets[choice % len(targets)])[key] = value
            continue
        targets = paths(data)
        if not targets:
            continue
        path = targets[choice % len(targets)]
        parent = get(data, path[:-1])
        if action == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    check(dump(data))


def test_the_examples_themselves_pass_the_check() -> None:
    for text in EXAMPLE_TEXTS.values():
        check(text)
