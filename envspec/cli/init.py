"""`envspec init`: write a starter maestro-env.yaml."""

from __future__ import annotations

import unicodedata

import click

from envspec.cli.options import DEFAULT_SPEC_FILE, given_once
from envspec.errors import display_path
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
    "-f",
    "--file",
    "file",
    multiple=True,
    callback=given_once,
    default=[DEFAULT_SPEC_FILE],
    show_default=True,
    metavar="FILE",
    help="Where to write (a symbolic link there is replaced, never written through).",
)
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.option(
    "--schema-url",
    default=None,
    metavar="URL",
    callback=lambda ctx, param, value: _check_schema_url(value),
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
    if not file.strip():
        raise click.BadParameter("must name a file", param_hint="-f")
    target = write_starter(example, file, force=force, schema_url=schema_url)
    click.echo(
        f"wrote {display_path(target)} (from example '{example}'); next: envspec validate -f {display_path(target)}"
    )


def _check_schema_url(value: str | None) -> str | None:
    """The URL goes into a YAML comment: a line break or control character would end it."""
    if value is not None and any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        raise click.BadParameter("must not contain control characters or line breaks", param_hint="--schema-url")
    return value
