"""The fast YAML emitter: whatever it writes reads back as the same data.

Checked with ruamel.yaml's safe loader (YAML 1.2, what envspec itself reads) and with
PyYAML (YAML 1.1, close to what kubectl reads; it comes with kubernetes-validate).
"""

from __future__ import annotations

import io
import math
from typing import Any

import yaml as pyyaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from envspec.yamlout import dump, dump_all, scalar

TRICKY = [
    "yes",
    "no",
    "Yes",
    "NO",
    "on",
    "off",
    "On",
    "y",
    "n",
    "Y",
    "N",
    "true",
    "False",
    "TRUE",
    "null",
    "Null",
    "NULL",
    "~",
    "",
    " ",
    "  leading",
    "trailing ",
    "1e3",
    "1E3",
    "1e+3",
    "-1e-3",
    ".5",
    "5.",
    "0x1F",
    "0o17",
    "0b101",
    "017",
    "08",
    "1_000",
    "+1",
    "-1",
    "1.0",
    "-.inf",
    ".inf",
    ".NaN",
    ".nan",
    "12:30",
    "1:20:30",
    "2020-01-01",
    "2020-01-01T10:00:00Z",
    "2020-1-1",
    ": ",
    "a: b",
    "a:",
    ":a",
    "a:b",
    "#",
    "# comment",
    "a #b",
    "a#b",
    "-",
    "- a",
    "--",
    "---",
    "...",
    "?",
    "? a",
    "!",
    "!tag",
    "&anchor",
    "*alias",
    "|",
    ">",
    "%",
    "@",
    "`",
    "'",
    '"',
    "'quoted'",
    "[a]",
    "{a: 1}",
    ",",
    "a, b",
    "\\",
    "\t",
    "a\tb",
    "\n",
    "line1\nline2",
    "trailing\n",
    "\r\n",
    "\x85",
    "\u2028",
    "é",
    "日本語",
    "emoji 🎉",
    "\ufeffbom",
    "=",
    "<<",
    "$(VAR)",
    "${x}",
    "100m",
    "256Mi",
    "http://a:8000/x?y=1#z",
    "postgresql://u:p@h:5432/d",
    "a b  c",
    "x:-y",
    "\x00",
    "\x07",
    "\x7f",
]

keys = st.one_of(st.sampled_from(TRICKY), st.text(max_size=12))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(TRICKY),
    st.text(max_size=20),
    st.text(alphabet="abc:#- \n'\"{}[],&*!|>%@`?", max_size=8),
)
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
    ),
    max_leaves=20,
)


def ruamel_load_all(text: str) -> list[Any]:
    return list(YAML(typ="safe", pure=True).load_all(io.StringIO(text)))


def ruamel_load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(io.StringIO(text))


def normalize(value: Any) -> Any:
    """Floats that are whole compare equal to ints in Python; keep them distinct by type."""
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, float):
        return ("float", value if not math.isnan(value) else "nan")
    return value


def same(loaded: Any, original: Any) -> None:
    assert normalize(loaded) == normalize(original)


@given(json_like)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_dump_round_trips_through_ruamel(data: Any) -> None:
    same(ruamel_load(dump(data)), data)


@given(json_like)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_dump_round_trips_through_pyyaml(data: Any) -> None:
    same(pyyaml.safe_load(dump(data)), data)


@given(st.lists(json_like, max_size=4))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_dump_all_round_trips(documents: list[Any]) -> None:
    text = dump_all(documents)
    same(ruamel_load_all(text), documents)
    same(list(pyyaml.safe_load_all(text)), documents)


def test_every_tricky_string_round_trips_as_a_value_and_a_key() -> None:
    for text in TRICKY:
        document = {text: text, "list": [text, {text: [text]}]}
        same(ruamel_load(dump(document)), document)
        same(pyyaml.safe_load(dump(document)), document)


def test_plain_strings_stay_plain() -> None:
    assert scalar("envspec") == "envspec"
    assert scalar("app.kubernetes.io/name") == "app.kubernetes.io/name"
    assert scalar("postgres:15") == "postgres:15"
    assert scalar("100m") == "100m"
    assert scalar("http://api:8000") == "http://api:8000"


def test_ambiguous_strings_are_quoted() -> None:
    assert scalar("yes") == '"yes"'
    assert scalar("1") == '"1"'
    assert scalar("1e3") == '"1e3"'
    assert scalar("") == '""'
    assert scalar("a: b") == '"a: b"'
    assert scalar("<generated-at-apply>") == '"<generated-at-apply>"'


def test_scalars() -> None:
    assert scalar(None) == "null"
    assert scalar(True) == "true"
    assert scalar(False) == "false"
    assert scalar(3) == "3"
    assert scalar(1.5) == "1.5"


def test_layout() -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "x", "labels": {}},
        "spec": {"containers": [{"name": "a", "args": ["--x", "1"], "env": []}], "volumes": [[1, 2], []]},
    }
    assert dump(manifest) == (
        "apiVersion: v1\n"
        "kind: Pod\n"
        "metadata:\n"
        "  name: x\n"
        "  labels: {}\n"
        "spec:\n"
        "  containers:\n"
        "  - name: a\n"
        "    args:\n"
        '    - "--x"\n'
        '    - "1"\n'
        "    env: []\n"
        "  volumes:\n"
        "  -\n"
        "    - 1\n"
        "    - 2\n"
        "  - []\n"
    )
    assert dump_all([{"a": 1}, {"b": 2}]) == "---\na: 1\n---\nb: 2\n"
    assert dump_all([]) == ""
    assert dump({}) == "{}\n"
    assert dump([]) == "[]\n"
    assert dump("x") == "x\n"
