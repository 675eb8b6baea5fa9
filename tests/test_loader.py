"""The loader: YAML text -> plain data plus 1-based positions; every failure is a located SpecError."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from envspec.errors import EnvspecError, Location, SpecError
from envspec.loader import LoadedDocument, format_path, load_text, read_source

SPEC = """\
apiVersion: envspec/v1
name: demo
services:
  api:
    image: app:1
    command: [python, -m, app]
    args:
      - --verbose
      -   --port=8000
"""


def problems(text: str, source: str = "spec.yaml") -> list[str]:
    with pytest.raises(SpecError) as info:
        load_text(text, source)
    return [str(p) for p in info.value.problems]


def test_data_is_plain_python() -> None:
    doc = load_text(SPEC, "spec.yaml")
    assert doc.data == {
        "apiVersion": "envspec/v1",
        "name": "demo",
        "services": {
            "api": {
                "image": "app:1",
                "command": ["python", "-m", "app"],
                "args": ["--verbose", "--port=8000"],
            }
        },
    }
    assert type(doc.data) is dict
    assert doc.source == "spec.yaml"


def test_positions_of_keys_values_and_list_items_are_one_based() -> None:
    doc = load_text(SPEC, "spec.yaml")
    at = Location
    assert doc.key_positions[("apiVersion",)] == at("spec.yaml", 1, 1)
    assert doc.value_positions[("apiVersion",)] == at("spec.yaml", 1, 13)
    assert doc.value_positions[("name",)] == at("spec.yaml", 2, 7)
    assert doc.key_positions[("services", "api")] == at("spec.yaml", 4, 3)
    assert doc.value_positions[("services", "api")] == at("spec.yaml", 5, 5)
    assert doc.key_positions[("services", "api", "image")] == at("spec.yaml", 5, 5)
    assert doc.value_positions[("services", "api", "image")] == at("spec.yaml", 5, 12)
    # flow sequence items
    assert doc.value_positions[("services", "api", "command", 0)] == at("spec.yaml", 6, 15)
    assert doc.value_positions[("services", "api", "command", 1)] == at("spec.yaml", 6, 23)
    assert doc.value_positions[("services", "api", "command", 2)] == at("spec.yaml", 6, 27)
    # block sequence items: the position of the item, not of the dash
    assert doc.value_positions[("services", "api", "args", 0)] == at("spec.yaml", 8, 9)
    assert doc.value_positions[("services", "api", "args", 1)] == at("spec.yaml", 9, 11)
    # the root mapping
    assert doc.value_positions[()] == at("spec.yaml", 1, 1)


def test_locate_falls_back_to_the_nearest_existing_ancestor() -> None:
    doc = load_text(SPEC, "spec.yaml")
    assert doc.locate(("services", "api", "port")) == Location("spec.yaml", 5, 5)
    assert doc.locate(("services", "api", "image"), key=True) == Location("spec.yaml", 5, 5)
    assert doc.locate(("services", "api", "image")) == Location("spec.yaml", 5, 12)
    assert doc.locate(("nothing", "here")) == Location("spec.yaml", 1, 1)
    assert doc.has(("services", "api", "args", 1))
    assert not doc.has(("services", "api", "args", 2))


def test_format_path() -> None:
    assert format_path(("services", "api", "command", 0)) == "services.api.command[0]"
    assert format_path(()) == ""
    assert format_path(("a", 1, 2, "b")) == "a[1][2].b"


def test_duplicate_key_is_located_at_the_second_key() -> None:
    text = "apiVersion: envspec/v1\nname: a\nservices:\n  api: {image: x}\n  api:\n    image: y\n"
    assert problems(text) == ["spec.yaml:5:3: services.api: duplicate key (first defined at line 4, column 3)"]


def test_every_duplicate_key_is_reported() -> None:
    text = "name: a\nname: b\nx:\n  k: 1\n  k: 2\n"
    assert problems(text) == [
        "spec.yaml:2:1: name: duplicate key (first defined at line 1, column 1)",
        "spec.yaml:5:3: x.k: duplicate key (first defined at line 4, column 3)",
    ]


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("a: [1, 2\n", 2, 1),
        ("a: b\n\tc: d\n", 2, 1),
        ('a: "open\n', 2, 1),
        ("a: *missing\n", 1, 4),
        ("- a\nb: c\n", 2, 1),
        ("a:\n  b: 1\n c: 2\n", 3, 2),
        # an error at the end of a stream without a final line break stays inside the text
        ("[", 1, 2),
        ("0:\n0", 2, 2),
        ('a: "x', 1, 6),
    ],
)
def test_yaml_syntax_errors_are_located(text: str, line: int, column: int) -> None:
    (message,) = problems(text)
    assert message.startswith(f"spec.yaml:{line}:{column}: YAML syntax error: ")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "---\n...\n"])
def test_empty_file(text: str) -> None:
    assert problems(text) == ["spec.yaml:1:1: the file is empty; expected an Environment spec"]


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [("- a\n- b\n", 1, 1), ("just text\n", 1, 1), ("\n\n  42\n", 3, 3), ("~\n", 1, 1)],
)
def test_top_level_must_be_a_mapping(text: str, line: int, column: int) -> None:
    assert problems(text) == [f"spec.yaml:{line}:{column}: the spec must be a mapping (key: value pairs)"]


def test_multiple_documents_are_rejected_at_the_second() -> None:
    text = "apiVersion: envspec/v1\nname: a\n---\nname: b\n"
    assert problems(text) == ["spec.yaml:4:1: more than one YAML document; a spec file holds exactly one"]


def test_a_trailing_document_marker_is_not_a_second_document() -> None:
    doc = load_text("---\nname: a\n---\n", "spec.yaml")
    assert doc.data == {"name": "a"}
    assert load_text("name: a\n...\n", "spec.yaml").data == {"name": "a"}


def test_anchors_aliases_and_merge_keys() -> None:
    text = (
        "base: &base\n"
        "  image: app:1\n"
        "  port: 80\n"
        "list: &items [a, b]\n"
        "api:\n"
        "  <<: *base\n"
        "  port: 8080\n"
        "  args: *items\n"
        "worker:\n"
        "  <<: [*base, {replicas: 2, image: other}]\n"
    )
    doc = load_text(text, "spec.yaml")
    assert doc.data["api"] == {"image": "app:1", "port": 8080, "args": ["a", "b"]}
    # the first mapping of a merge list wins, as YAML merge keys specify
    assert doc.data["worker"] == {"image": "app:1", "port": 80, "replicas": 2}
    # an explicit key keeps its own position; a merged one points at the anchored node
    assert doc.value_positions[("api", "port")] == Location("spec.yaml", 7, 9)
    assert doc.value_positions[("api", "image")] == Location("spec.yaml", 2, 10)
    # the merged data is a copy: changing one alias does not change the other
    doc.data["api"]["args"].append("c")
    assert doc.data["list"] == ["a", "b"]


def test_merge_of_a_non_mapping_is_a_located_problem() -> None:
    assert problems("a:\n  <<: [1]\n") == ["spec.yaml:2:3: a: '<<' merges only mappings"]


def test_alias_bomb_is_refused() -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    (message,) = problems("\n".join(lines) + "\n")
    assert message.endswith(
        "its aliases expand to more than 100,000 nodes (keys, values and list items), the most a spec may have"
    )


def test_keys_are_the_text_written() -> None:
    doc = load_text("1: a\ntrue: b\n~: c\n0x1F: d\n'quoted': e\n", "spec.yaml")
    assert list(doc.data) == ["1", "true", "~", "0x1F", "quoted"]


def test_non_scalar_keys_are_problems() -> None:
    assert problems("? [a, b]\n: c\n") == ["spec.yaml:1:3: keys must be plain strings"]


def test_scalars_keep_their_yaml_types_and_dates_and_tags_stay_text() -> None:
    doc = load_text(
        "i: 15\nf: 1.5\nb: true\nn: null\ns: '15'\nd: 2020-01-01\nt: !custom x\nbin: !!binary aGk=\nbad: !!int x\n",
        "spec.yaml",
    )
    assert doc.data == {
        "i": 15,
        "f": 1.5,
        "b": True,
        "n": None,
        "s": "15",
        "d": "2020-01-01",
        "t": "x",
        "bin": "aGk=",
        "bad": "x",
    }


def test_yaml_1_1_booleans_are_strings() -> None:
    # ruamel's safe loader reads YAML 1.2: `yes`/`on` are words, as Kubernetes users expect.
    assert load_text("a: yes\nb: on\n", "spec.yaml").data == {"a": "yes", "b": "on"}


def test_problems_carry_the_source_name() -> None:
    assert problems("a: 1\na: 2\n", "<stdin>")[0].startswith("<stdin>:2:1: ")


# --- read_source ------------------------------------------------------------------------------


def test_read_source_file(tmp_path: Path) -> None:
    path = tmp_path / "maestro-env.yaml"
    path.write_text("name: a\n", encoding="utf-8")
    assert read_source(str(path)) == ("name: a\n", str(path))


def test_read_source_stdin_is_named_stdin() -> None:
    text, source = read_source("-", "name: a\n")
    assert (text, source) == ("name: a\n", "<stdin>")
    with pytest.raises(SpecError) as info:
        load_text("a: [\n", source)
    assert str(info.value.problems[0]).startswith("<stdin>:2:1: YAML syntax error")


def test_read_source_stdin_reads_sys_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"name: b\n"), encoding="utf-8"))
    assert read_source("-") == ("name: b\n", "<stdin>")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EnvspecError, match=r"no such file .*envspec init") as info:
        read_source(str(tmp_path / "nope.yaml"))
    assert info.value.exit_code == 1
    assert not isinstance(info.value, SpecError)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(EnvspecError, match="is a directory"):
        read_source(str(tmp_path))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(EnvspecError, match="not UTF-8"):
        read_source(str(path))


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Root can read a chmod-000 file, so simulate the OS refusing.
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", refuse)
    with pytest.raises(EnvspecError, match="cannot read: Permission denied"):
        read_source(str(tmp_path / "x.yaml"))


def test_loaded_document_defaults() -> None:
    doc = LoadedDocument(source="s", data={})
    assert doc.locate(("a",)) == Location("s", 1, 1)
