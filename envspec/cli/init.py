"""`envspec init`: write a starter maestro-env.yaml."""

from __future__ import annotations

from pathlib import Path

import click

from envspec.cli.options import DEFAULT_SPEC_FILE
from envspec.errors import EnvspecError
from envspec.resources import data_dir, schema_path

SCHEMA_COMMENT = "# yaml-language-server: $schema="


def example_names() -> list[str]:
    return sorted(p.parent.name for p in data_dir("examples").glob("*/maestro-env.yaml"))


@click.command("init")
@click.option(
    "--example",
    default="quickstart",
    show_default=True,
    metavar="NAME",
    help="The example to start from: " + ", ".join(example_names()) + ".",
)
@click.option(
    "-f", "--file", "file", default=DEFAULT_SPEC_FILE, show_default=True, metavar="FILE", help="Where to write."
)
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.option(
    "--schema-url",
    default=None,
    metavar="URL",
    help="Schema reference for editors (default: the schema installed with envspec).",
)
def command(example: str, file: str, force: bool, schema_url: str | None) -> None:
    """Write a starter maestro-env.yaml from one of the bundled examples.

    The first line points editors with YAML language support at envspec's JSON
    Schema, for completion and checks as you type.

    \b
    Examples:
      envspec init
      envspec init --example fullstack -f envs/checkout.yaml
    """
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
    click.echo(f"wrote {target} (from example '{example}'); next: envspec validate -f {target}")
