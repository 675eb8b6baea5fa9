"""`envspec init`: write a starter maestro-env.yaml."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import click

from envspec.cli.options import DEFAULT_SPEC_FILE, given_once
from envspec.errors import EnvspecError
from envspec.files import default_mode, ensure_directory, replace_file, write_error
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
    source = data_dir("examples") / example / "maestro-env.yaml"
    if not source.is_file():
        raise EnvspecError(f"--example {example!r}: no such example (choose from {', '.join(example_names())})")
    target = _target(file, force)
    reference = schema_url or str(schema_path())
    body = [line for line in source.read_text(encoding="utf-8").splitlines() if not line.startswith(SCHEMA_COMMENT)]
    ensure_directory(target.parent, f"-f {file}")
    try:
        replace_file(target, "\n".join([SCHEMA_COMMENT + reference, *body]) + "\n", default_mode())
    except OSError as exc:
        raise write_error(target, exc) from None
    click.echo(f"wrote {target} (from example '{example}'); next: envspec validate -f {target}")


def _target(file: str, force: bool) -> Path:
    """The file to write: never a directory, and an existing name (a link included, dangling
    or not) only with --force."""
    if not file.strip():
        raise click.BadParameter("must name a file", param_hint="-f")
    target = Path(file)
    if file.endswith(("/", os.sep)) or target.is_dir():
        raise EnvspecError(f"-f {file}: names a directory; name the file to write, e.g. {target / DEFAULT_SPEC_FILE}")
    if target.is_symlink() and not force:
        raise EnvspecError(
            f"{target} is a symbolic link (to {os.readlink(target)!r}); pass --force to replace the link"
        )
    if target.exists() and not force:
        raise EnvspecError(f"{target} already exists; pass --force to overwrite it")
    return target


def _check_schema_url(value: str | None) -> str | None:
    """The URL goes into a YAML comment: a line break or control character would end it."""
    if value is not None and any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        raise click.BadParameter("must not contain control characters or line breaks", param_hint="--schema-url")
    return value
