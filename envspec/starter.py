"""`envspec init`'s work: a starter maestro-env.yaml written from one of the bundled examples."""

from __future__ import annotations

from pathlib import Path

from envspec.errors import EnvspecError
from envspec.resources import data_dir, schema_path

SCHEMA_COMMENT = "# yaml-language-server: $schema="


def example_names() -> list[str]:
    return sorted(p.parent.name for p in data_dir("examples").glob("*/maestro-env.yaml"))


def write_starter(example: str, file: str, *, force: bool, schema_url: str | None) -> Path:
    """Write the example to `file`, its first line pointing editors at the schema; the path written."""
    source = data_dir("examples") / example / "maestro-env.yaml"
    if not source.is_file():
        raise EnvspecError(f"--example {example!r}: no such example (choose from {', '.join(example_names())})")
    target = Path(file)
    if target.exists() and not force:
        raise EnvspecError(f"{target} already exists; pass --force to overwrite it")
    reference = schema_url or str(schema_path())
    body = [line for line in source.read_text(encoding="utf-8").splitlines() if not line.startswith(SCHEMA_COMMENT)]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join([SCHEMA_COMMENT + reference, *body]) + "\n", encoding="utf-8")
    return target
