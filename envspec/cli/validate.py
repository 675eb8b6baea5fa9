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
    Exit codes:
      0   the spec is valid
      1   it has problems (all of them are listed), or it cannot be read, or
          standard output cannot be written
      2   bad command line (an unknown option, -f given twice)
      70  internal error (a bug; the message names a log file)
      130 interrupted
    validate needs no cluster, so never exits 3 or 4.

    \b
    Examples:
      envspec validate
      envspec validate -f examples/fullstack/maestro-env.yaml
      cat maestro-env.yaml | envspec validate -f -
    """
    from envspec.present import validation_text

    click.echo(validation_text(load_spec(file, os.environ)))
