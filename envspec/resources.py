"""Where the data files shipped with envspec live (templates, schemas, examples)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    """`templates`, `schemas` or `examples`: inside the wheel, or at the top of a source checkout."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"envspec data directory {name!r} is missing from this installation")


SCHEMA_FILE = "maestro-env.schema.json"


def schema_text(schema: object) -> str:
    """The committed form of the JSON Schema: stable key order, two-space indent, final newline."""
    import json

    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def schema_path() -> Path:
    return data_dir("schemas") / SCHEMA_FILE
