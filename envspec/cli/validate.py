"""`envspec validate`: check a spec, report every problem with its location."""

from __future__ import annotations

import os

import click

from envspec.cli.options import spec_file
from envspec.pipeline import load_spec


@click.command("validate")
@spec_file
def command(file: str) -> None:
    """Check a spec and report every problem at once, each as FILE:LINE:COL: path: message.

    \b
    Exit codes: 0 the spec is valid, 1 it has problems (all of them are listed).

    \b
    Examples:
      envspec validate
      envspec validate -f examples/fullstack/maestro-env.yaml
      cat maestro-env.yaml | envspec validate -f -
    """
    valid = load_spec(file, os.environ)
    spec = valid.spec
    counts = ", ".join(
        f"{len(items)} {label}{'' if len(items) == 1 else 's'}"
        for label, items in (("database", spec.databases), ("service", spec.services), ("test", spec.tests))
    )
    click.echo(f"{valid.source}: OK: environment '{spec.name}' ({counts}; ttl {valid.ttl})")
