"""`envspec init`: write a starter maestro-env.yaml."""

from __future__ import annotations

import click

from envspec.cli.options import DEFAULT_SPEC_FILE
from envspec.starter import example_names, write_starter


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
    target = write_starter(example, file, force=force, schema_url=schema_url)
    click.echo(f"wrote {target} (from example '{example}'); next: envspec validate -f {target}")
