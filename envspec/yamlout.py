"""A small, fast YAML emitter for JSON-like data (dicts, lists, str, int, float, bool, None).

Rendering is on the hot path of `envspec render`; a general YAML library spends most of
its time on features manifests never use. Strings are written plain when that is
unambiguous and JSON-quoted otherwise (a JSON string is a valid YAML double-quoted
scalar), so the output always reads back as the same data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z0-9_/.][A-Za-z0-9_/.=+@%,$()<>!:-]*(?: [A-Za-z0-9_/.=+@%,$()<>!:-]+)*$")
# Words a YAML 1.1 or 1.2 reader would take for something other than a string.
_SPECIAL = re.compile(
    r"^(?:~|null|Null|NULL|true|True|TRUE|false|False|FALSE|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF|y|Y|n|N"
    r"|[-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
    r"|0[xXoObB][0-9a-fA-F_]+|[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}.*)$"
)


# Characters YAML does not allow unescaped (outside its printable set), and the line
# breaks of YAML 1.1 (NEL, LS, PS) that a double-quoted scalar would fold into spaces.
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def _quoted(text: str) -> str:
    quoted = json.dumps(text, ensure_ascii=False)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def _float(value: float) -> str:
    text = json.dumps(value)
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        # `1e+20` is a float in YAML 1.2 but a string in YAML 1.1: write `1.0e+20`.
        text = f"{mantissa}.0e{exponent}"
    return text


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    text = str(value)
    if (
        _PLAIN.fullmatch(text)  # fullmatch: `$` would also match before a final newline
        and not _SPECIAL.fullmatch(text)
        and ": " not in text
        and not text.endswith(":")
        and not text.startswith("...")  # a document end marker at the start of a line
    ):
        return text
    return _quoted(text)


def _emit(value: Any, indent: str, out: list[str]) -> None:
    """Append the block form of a non-empty dict or list, each line starting with `indent`."""
    if isinstance(value, dict):
        for key, item in value.items():
            head = f"{indent}{scalar(key)}:"
            _emit_entry(head, item, indent, out)
    else:
        for item in value:
            if isinstance(item, dict) and item:
                first = True
                for key, sub in item.items():
                    prefix = f"{indent}- " if first else f"{indent}  "
                    _emit_entry(f"{prefix}{scalar(key)}:", sub, indent + "  ", out)
                    first = False
            elif isinstance(item, list) and item:
                out.append(f"{indent}-")
                _emit(item, indent + "  ", out)
            else:
                out.append(f"{indent}- {_inline(item)}")


def _emit_entry(head: str, item: Any, indent: str, out: list[str]) -> None:
    if isinstance(item, dict) and item:
        out.append(head)
        _emit(item, indent + "  ", out)
    elif isinstance(item, list) and item:
        out.append(head)
        _emit(item, indent, out)
    else:
        out.append(f"{head} {_inline(item)}")


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return scalar(value)


def dump(document: Any) -> str:
    """One YAML document (no leading `---`)."""
    if isinstance(document, dict | list) and document:
        out: list[str] = []
        _emit(document, "", out)
        return "\n".join(out) + "\n"
    return _inline(document) + "\n"


def dump_all(documents: Iterable[Any]) -> str:
    """A multi-document stream, each document introduced by `---`."""
    return "".join(f"---\n{dump(d)}" for d in documents)
