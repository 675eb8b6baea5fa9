"""`envspec init`'s work: a starter maestro-env.yaml written from one of the bundled examples."""

from __future__ import annotations

import os
from pathlib import Path

from envspec.errors import EnvspecError, display_path
from envspec.files import default_mode, ensure_directory, replace_file, write_error
from envspec.resources import data_dir, schema_path

SCHEMA_COMMENT = "# yaml-language-server: $schema="
DEFAULT_FILE = "maestro-env.yaml"


def example_names() -> list[str]:
    return sorted(p.parent.name for p in data_dir("examples").glob("*/maestro-env.yaml"))


def write_starter(example: str, file: str, *, force: bool, schema_url: str | None) -> Path:
    """Write the example to `file`, its first line pointing editors at the schema; the path written."""
    source = data_dir("examples") / example / "maestro-env.yaml"
    if not source.is_file():
        raise EnvspecError(f"--example {example!r}: no such example (choose from {', '.join(example_names())})")
    target = _target(file, force)
    reference = schema_url or str(schema_path())
    body = [line for line in source.read_text(encoding="utf-8").splitlines() if not line.startswith(SCHEMA_COMMENT)]
    ensure_directory(target.parent, f"-f {display_path(file)}")
    try:
        replace_file(target, "\n".join([SCHEMA_COMMENT + reference, *body]) + "\n", default_mode())
    except OSError as exc:
        raise write_error(target, exc) from None
    return target


def _target(file: str, force: bool) -> Path:
    """The file to write: never a directory, and an existing name (a link included, dangling
    or not) only with --force, which replaces the link rather than writing through it."""
    target = Path(file)
    if file.endswith(("/", os.sep)) or target.is_dir():
        example = display_path(target / DEFAULT_FILE)
        raise EnvspecError(f"-f {display_path(file)}: names a directory; name the file to write, e.g. {example}")
    if target.is_symlink() and not force:
        link = display_path(os.readlink(target))
        raise EnvspecError(f"{display_path(target)} is a symbolic link (to '{link}'); pass --force to replace the link")
    if target.exists() and not force:
        raise EnvspecError(f"{display_path(target)} already exists; pass --force to overwrite it")
    return target
