"""Load a YAML spec into plain data plus the source position of every node.

We compose the YAML node graph ourselves (instead of ruamel's constructors) so
that every key and value, scalars included, keeps its line and column, duplicate
keys become located problems instead of exceptions, and nothing but plain
dicts, lists, strings, numbers, booleans and None comes out.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from envspec.errors import SHOWN_LENGTH, Location, Problem, SpecError, display_path, shown

PathKey = tuple[str | int, ...]

STANDARD_TAG_PREFIX = "tag:yaml.org,2002:"
MERGE_TAG = STANDARD_TAG_PREFIX + "merge"
TIMESTAMP_TAG = STANDARD_TAG_PREFIX + "timestamp"
BINARY_TAG = STANDARD_TAG_PREFIX + "binary"
# Bounds on what a spec may be, so that no input can take minutes or gigabytes. The largest
# example (examples/large, 520 objects' worth) is 11 KB and about 1,300 nodes.
MAX_INPUT_BYTES = 10 * 1024 * 1024
MAX_NODES = 100_000  # keys, values and list items, aliases expanded ("billion laughs")
_SIZE_TEXT = "10 MiB"
# What YAML does not accept in a stream (YAML 1.2, 5.1, whose printable set is tab,
# line breaks, #x20-#x7E, #x85, #xA0-#xD7FF, #xE000-#xFFFD and #x10000-#x10FFFF),
# written as that set's complement: the same characters, but the negated class with
# the astral range took ~10 ms to compile on every start.
_NOT_PRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")


@dataclass
class LoadedDocument:
    """A parsed spec: its data, and where each part of it was written."""

    source: str
    data: Any
    value_positions: dict[PathKey, Location] = field(default_factory=dict)
    key_positions: dict[PathKey, Location] = field(default_factory=dict)
    # The text written for each scalar that YAML reads as a number or a boolean (`8.10`,
    # `0x1F`, `1e3`, `.inf`, `true`): where the spec expects a string, that text is the value.
    scalar_texts: dict[PathKey, str] = field(default_factory=dict)

    def locate(self, path: PathKey, *, key: bool = False) -> Location:
        """The position of the node at `path`, or of its nearest existing ancestor.

        With `key=True` the position of the mapping key is preferred (for unknown
        or misnamed keys, and for map entries named by their key).
        """
        probe = path
        while True:
            if key and probe in self.key_positions:
                return self.key_positions[probe]
            if probe in self.value_positions:
                return self.value_positions[probe]
            if not probe:
                return Location(self.source, 1, 1)
            probe = probe[:-1]

    def has(self, path: PathKey) -> bool:
        return path in self.value_positions


def format_path(path: PathKey) -> str:
    """`services.api.command[0]` from ("services", "api", "command", 0).

    A key that is empty, long, or holds a line break or control character is shown
    quoted, escaped and shortened (`services.'a\\nb'`): a path can never forge a line.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if part and part.isprintable() and len(part) <= SHOWN_LENGTH else shown(part)
            text += f".{key}" if text else key
    return text


class _Builder:
    def __init__(self, source: str, scalars: SafeConstructor) -> None:
        self.doc = LoadedDocument(source=source, data=None)
        self.problems: list[Problem] = []
        self.scalars = scalars
        self.nodes = 0
        self.seen: set[int] = set()  # ids of the nodes built once: a second visit is an alias
        self.aliases = False

    def location(self, node: Node) -> Location:
        mark = node.start_mark
        return Location(self.doc.source, mark.line + 1, mark.column + 1)

    def build(self, node: Node, path: PathKey) -> Any:
        self.nodes += 1
        if id(node) in self.seen:
            self.aliases = True
        elif not isinstance(node, ScalarNode):
            self.seen.add(id(node))
        if self.nodes > MAX_NODES:
            raise _TooLarge(self.location(node), aliases=self.aliases)
        self.doc.value_positions.setdefault(path, self.location(node))
        if isinstance(node, MappingNode):
            return self.build_mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        value = self.scalar(node)
        if value is not None and not isinstance(value, str):
            self.doc.scalar_texts.setdefault(path, str(node.value))
        return value

    def scalar(self, node: ScalarNode) -> Any:
        tag = str(node.tag)
        if tag in (TIMESTAMP_TAG, BINARY_TAG) or not tag.startswith(STANDARD_TAG_PREFIX):
            # Dates and custom tags: keep the text the user wrote.
            return str(node.value)
        try:
            return self.scalars.construct_object(node, deep=True)
        except (YAMLError, ValueError):
            return str(node.value)

    def build_mapping(self, node: MappingNode, path: PathKey) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seen: dict[str, Location] = {}
        merges: list[tuple[Location, Node]] = []
        for key_node, value_node in node.value:
            key_location = self.location(key_node)
            if key_node.tag == MERGE_TAG:
                # Built after the explicit keys, so that an explicit key keeps its own
                # position rather than the merged (anchored) one.
                merges.append((key_location, value_node))
                continue
            if not isinstance(key_node, ScalarNode):
                self.problems.append(Problem(key_location, format_path(path), "keys must be plain strings"))
                continue
            # A key is the text written: `1`, `true` or `~` as keys mean those words.
            key = str(key_node.value) if key_node.value is not None else ""
            if key in seen:
                first = seen[key]
                self.problems.append(
                    Problem(
                        key_location,
                        format_path((*path, key)),
                        f"duplicate key (first defined at line {first.line}, column {first.column})",
                    )
                )
                continue
            seen[key] = key_location
            self.doc.key_positions[(*path, key)] = key_location
            result[key] = self.build(value_node, (*path, key))
        for key_location, value_node in merges:
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                value = self.build(source, path)
                if isinstance(value, dict):
                    for key, item in value.items():
                        result.setdefault(key, item)
                else:
                    self.problems.append(Problem(key_location, format_path(path), "'<<' merges only mappings"))
        return result


_NODE_EVENTS = (ScalarEvent, MappingStartEvent, SequenceStartEvent, AliasEvent)


class _TooLarge(Exception):
    def __init__(self, location: Location, *, aliases: bool) -> None:
        self.location = location
        self.aliases = aliases

    @property
    def message(self) -> str:
        what = "its aliases expand to more than" if self.aliases else "more than"
        return f"{what} {MAX_NODES:,} nodes (keys, values and list items), the most a spec may have"


_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _within(text: str, line: int, column: int) -> tuple[int, int]:
    """A position inside `text`: the C parser reports the end of a stream that lacks a final
    line break on the line after it, which no editor shows; point at the end of the last line."""
    lines = _LINE_BREAK.split(text)
    if line > len(lines):
        return len(lines), len(lines[-1]) + 1
    return line, min(column, len(lines[line - 1]) + 1)


def _check_size(size: int, source: str) -> None:
    if size > MAX_INPUT_BYTES:
        raise SpecError([Problem(Location(source, 1, 1), "", f"larger than {_SIZE_TEXT}, the most a spec may be")])


def _check_characters(text: str, source: str) -> None:
    """A character YAML does not allow (NUL, a control character), at its line and column."""
    found = _NOT_PRINTABLE.search(text)
    if found is None:
        return
    line, column = _line_column(text, found.start())
    code = ord(found.group())
    name = unicodedata.name(found.group(), "") or _CONTROL_NAMES.get(code, "a control character")
    raise SpecError(
        [Problem(Location(source, line, column), "", f"character U+{code:04X} ({name}) is not allowed in YAML")]
    )


_CONTROL_NAMES = {0: "NUL", 0x1B: "ESC", 0x7F: "DEL", 0x08: "backspace", 0x0C: "form feed"}


def _line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of `offset`, counting the line breaks YAML counts."""
    before = text[:offset]
    breaks = list(_LINE_BREAK.finditer(before))
    if not breaks:
        return 1, offset + 1
    return len(breaks) + 1, offset - breaks[-1].end() + 1


def _count_nodes(yaml: YAML, text: str, source: str) -> None:
    """Refuse a document of more than MAX_NODES nodes from the parser's events alone."""
    count = 0
    for event in yaml.parse(io.StringIO(text)):
        if isinstance(event, _NODE_EVENTS):
            count += 1
            if count > MAX_NODES:
                mark = event.start_mark
                raise _TooLarge(Location(source, mark.line + 1, mark.column + 1), aliases=False)


def _is_empty_document(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null" and node.value == ""


def load_text(text: str, source: str) -> LoadedDocument:
    """Parse one YAML document; raise SpecError with located problems."""
    _check_size(len(text) if len(text) * 4 <= MAX_INPUT_BYTES else len(text.encode("utf-8", "surrogatepass")), source)
    _check_characters(text, source)
    # typ="safe" uses the C parser (ruamel.yaml.clib) when installed: about six times
    # faster than the pure-Python one, with the same node positions.
    yaml = YAML(typ="safe")
    builder = _Builder(source, yaml.constructor)
    try:
        if len(text) > MAX_NODES:
            _count_nodes(yaml, text, source)  # before composing: that takes 20 s per million nodes
        nodes = list(yaml.compose_all(io.StringIO(text)))
    except _TooLarge as exc:
        raise SpecError([Problem(exc.location, "", exc.message)]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = _within(text, mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        raise SpecError([Problem(Location(source, line, column), "", f"YAML syntax error: {reason}")]) from None
    except YAMLError as exc:
        raise SpecError([Problem(Location(source, 1, 1), "", f"YAML syntax error: {exc}")]) from None
    # An empty document (a stray `---` at the end, say) is no document.
    documents = [n for n in nodes if n is not None and not _is_empty_document(n)]
    if not documents:
        raise SpecError([Problem(Location(source, 1, 1), "", "the file is empty; expected an Environment spec")])
    if len(documents) > 1:
        raise SpecError(
            [
                Problem(
                    builder.location(documents[1]),
                    "",
                    "more than one YAML document; a spec file holds exactly one",
                )
            ]
        )
    try:
        builder.doc.data = builder.build(documents[0], ())
    except _TooLarge as exc:
        raise SpecError([Problem(exc.location, "", exc.message)]) from None
    except RecursionError:
        raise SpecError([Problem(Location(source, 1, 1), "", "the document is nested too deeply")]) from None
    if builder.problems:
        raise SpecError(builder.problems)
    if not isinstance(builder.doc.data, Mapping):
        raise SpecError([Problem(builder.location(documents[0]), "", "the spec must be a mapping (key: value pairs)")])
    return builder.doc


def read_source(file: str, stdin_text: str | None = None) -> tuple[str, str]:
    """Return (text, display name) for a file path, or stdin for '-'.

    At most MAX_INPUT_BYTES are read (plus one, to tell), so `-f /dev/zero` ends at once;
    bytes that are not UTF-8 are a located problem, from a file or from standard input.
    """
    from envspec.errors import EnvspecError

    if file == "-":
        if stdin_text is not None:
            return stdin_text, "<stdin>"
        import sys

        return _decode(sys.stdin.buffer.read(MAX_INPUT_BYTES + 1), "<stdin>"), "<stdin>"
    try:
        with open(file, "rb") as handle:
            data = handle.read(MAX_INPUT_BYTES + 1)
    except FileNotFoundError:
        raise EnvspecError(
            f"{display_path(file)}: no such file (create one with `envspec init`, or pass -f FILE)"
        ) from None
    except IsADirectoryError:
        raise EnvspecError(f"{display_path(file)}: is a directory; pass the spec file with -f FILE") from None
    except OSError as exc:
        raise EnvspecError(f"{display_path(file)}: cannot read: {exc.strerror}") from None
    return _decode(data, file), file


def _decode(data: bytes, source: str) -> str:
    _check_size(len(data), source)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[line_start : exc.start].decode("utf-8", "replace")) + 1
        byte = data[exc.start]
        raise SpecError(
            [Problem(Location(source, line, column), "", f"not UTF-8 text: byte 0x{byte:02x} ({exc.reason})")]
        ) from None
