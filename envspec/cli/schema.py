"""`envspec schema`: the JSON Schema of maestro-env.yaml."""

from __future__ import annotations

import click

from envspec.model import json_schema
from envspec.resources import schema_text


@click.command("schema")
def command() -> None:
    """Print the JSON Schema of maestro-env.yaml, generated from envspec's model.

    Editors use it for completion and checks; point them at it with a first line
    `# yaml-language-server: $schema=PATH` (`envspec init` writes one).
    The same text is committed as schemas/maestro-env.schema.json.
    """
    click.echo(schema_text(json_schema()), nl=False)
