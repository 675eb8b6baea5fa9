"""`envspec extend`: push an environment's expiry to now + ttl."""

from __future__ import annotations

import os
import sys

import click

from envspec.cli.down import check_file_or_name, name_option
from envspec.cli.options import Duration, cluster_options, env_id, output_format, spec_file, target


@click.command("extend")
@spec_file
@name_option
@env_id
@click.option(
    "--ttl",
    type=Duration(),
    default=None,
    help="New lifetime from now, e.g. 2h or 1h30m [default: the environment's own ttl].",
)
@output_format("table", "json", default="table")
@cluster_options
def command(
    file: str,
    name: str | None,
    env_id: str | None,
    ttl: int | None,
    output: str,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Push an environment's expiry to now + TTL, so gc leaves it alone that much longer.

    One patch of the namespace's envspec.dev/expires-at (and kube-janitor's
    janitor/expires, the same instant). Refused for a namespace envspec does not
    manage, one being deleted, and an environment with `ttl: never`.

    \b
    Exit codes: 0 extended, 1 refused or not found, 3 the API could not be reached.

    \b
    Examples:
      envspec extend --ttl 2h
      envspec extend --name fullstack --id pr-42 --ttl 30m
    """
    from envspec.apply import environment_ref
    from envspec.events import JsonLinesSink
    from envspec.lifecycle.expiry import system_clock
    from envspec.lifecycle.lease import describe_extension, extend
    from envspec.lifecycle.output import EventLog, LifecycleSink

    check_file_or_name(file, name)
    ref = environment_ref(file, name, env_id, os.environ)
    # The table form is the one sentence below; JSON is the lease_renewed event.
    sink: LifecycleSink = JsonLinesSink(sys.stdout) if output == "json" else EventLog()
    extension = extend(target(kubeconfig, context), ref, ttl_seconds=ttl, clock=system_clock, sink=sink)
    if output != "json":
        click.echo(describe_extension(extension))
