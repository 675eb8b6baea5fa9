"""Structure checks: the spec's shape and types, by the pydantic model, with located messages.

On errors the offending parts are dropped and the model is tried again, so that the
meaning checks (`envspec.validation.meaning`) still run over everything that is
well-formed and one run reports every problem.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from envspec.loader import LoadedDocument, PathKey
from envspec.model import API_VERSION, EnvironmentSpec
from envspec.validation.problems import ProblemCollector, with_suggestion

COMPONENT_MAPS = ("databases", "services", "tests")
_ATTEMPTS = 4


@dataclass(frozen=True)
class Shaped:
    """A spec of the right shape, and what was dropped to get it.

    `dropped` holds component names, and `@field` for top-level fields, removed after
    structural errors: the meaning checks do not report them again (an unknown name in
    `dependsOn`, say, when that name was dropped).
    """

    spec: EnvironmentSpec
    dropped: frozenset[str]


def check_structure(doc: LoadedDocument, out: ProblemCollector) -> Shaped | None:
    """The spec as the model reads it; None when nothing well-formed is left to check."""
    data: Any = _as_written(_copy(doc.data), EnvironmentSpec, (), doc.scalar_texts)
    dropped: set[str] = set()
    for _ in range(_ATTEMPTS):
        try:
            return Shaped(EnvironmentSpec.model_validate(data), frozenset(dropped))
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            for error in errors:
                _report(error, out)
            if not _drop_invalid(data, [tuple(e["loc"]) for e in errors], dropped):
                return None
    return None


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _as_written(value: Any, annotation: Any, path: PathKey, texts: Mapping[PathKey, str]) -> Any:
    """`value` with every number or boolean where the model expects a string replaced by its text
    as written: `version: 8.10` is "8.10" (not 8.1), `TAG: 0x1F` is "0x1F", `1e3` stays "1e3".

    Where the model expects a number, or where its type says nothing (`health` as a
    string or a mapping), the value stays as YAML read it.
    """
    target = _unwrap(annotation)
    if target is str:
        return texts.get(path, value) if _is_scalar(value) else value
    origin = typing.get_origin(target)
    if origin is dict and isinstance(value, dict):
        item = typing.get_args(target)[-1]
        return {key: _as_written(entry, item, (*path, key), texts) for key, entry in value.items()}
    if origin is list and isinstance(value, list):
        item = typing.get_args(target)[0]
        return [_as_written(entry, item, (*path, index), texts) for index, entry in enumerate(value)]
    if isinstance(target, type) and issubclass(target, BaseModel) and isinstance(value, dict):
        fields = {(info.alias or name): info.annotation for name, info in target.model_fields.items()}
        return {
            key: _as_written(entry, fields[key], (*path, key), texts) if key in fields else entry
            for key, entry in value.items()
        }
    return value


def _is_scalar(value: Any) -> bool:
    return isinstance(value, bool | int | float)


def _drop_invalid(data: dict[str, Any], locations: list[PathKey], dropped: set[str]) -> bool:
    """Remove what failed so a second pass can succeed; False when that is impossible."""
    for loc in locations:
        if not loc:
            return False
        top = loc[0]
        if top in ("apiVersion", "name"):
            # Required and without a default: substitute a neutral value.
            data[str(top)] = API_VERSION if top == "apiVersion" else "invalid"
            dropped.add(f"@{top}")
        elif top in COMPONENT_MAPS and len(loc) >= 2 and isinstance(data.get(top), dict):
            data[top].pop(loc[1], None)
            dropped.add(str(loc[1]))
        elif isinstance(top, str):
            data.pop(top, None)
            dropped.add(f"@{top}")
    return True


_TYPE_MESSAGES = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
}


def _report(error: Mapping[str, Any], out: ProblemCollector) -> None:
    """One pydantic error as a located problem in envspec's words."""
    loc: PathKey = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "envspec_at_key":
        out.add((*loc, ctx["key"]), ctx["reason"], key=True)
    elif kind == "extra_forbidden":
        name = str(loc[-1])
        out.add(loc, with_suggestion(f"unknown key '{name}'", name, _keys_at(loc[:-1])), key=True)
    elif kind == "missing":
        out.add(loc[:-1], f"missing required key '{loc[-1]}'", key=True, display=loc[:-1] or loc)
    elif kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        given = error.get("input")
        if loc == ("apiVersion",):
            # A number is shown as written: repr() of a 5000-digit integer would raise.
            written = given if isinstance(given, str) else out.doc.scalar_texts.get(loc, type(given).__name__)
            shown = repr(written) if len(written) <= 40 else repr(written[:20] + "…" + written[-8:])
            message = f"unsupported apiVersion {shown}; the supported version is {API_VERSION}"
        else:
            message = f"must be one of: {', '.join(allowed)}"
            if isinstance(given, str):
                message = with_suggestion(f"{message} (got {given!r})", given, allowed)
        out.add(loc, message)
    elif kind in _TYPE_MESSAGES:
        out.add(loc, _TYPE_MESSAGES[kind])
    else:
        message = str(error["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        out.add(loc, message[:1].lower() + message[1:])


def _keys_at(loc: PathKey) -> list[str]:
    """The keys valid in the mapping at `loc` (for suggestions)."""
    model: type[BaseModel] = EnvironmentSpec
    index = 0
    while index < len(loc):
        fields = {(f.alias or n): f for n, f in model.model_fields.items()}
        info = fields.get(str(loc[index]))
        if info is None:
            return []
        index += 1
        target = _unwrap(info.annotation)
        origin = typing.get_origin(target)
        if origin in (dict, list):
            index += 1
            target = _unwrap(typing.get_args(target)[-1])
        if not (isinstance(target, type) and issubclass(target, BaseModel)):
            return []
        model = target
    return [(f.alias or n) for n, f in model.model_fields.items()]


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation
