"""`envspec extend`: push an environment's expiry to now + ttl."""

from __future__ import annotations

import os

import click

from envspec.cli.options import (
    Duration,
    check_file_or_name,
    cluster_options,
    env_id,
    name_option,
    output_format,
    spec_file,
    target,
)
from envspec.cli.run import run


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
    from envspec.lifecycle.expiry import system_clock
    from envspec.operations.extend import extend
    from envspec.operations.spec import environment_ref

    check_file_or_name(file, name)
    ref = environment_ref(file, name, env_id, os.environ)
    cluster = target(kubeconfig, context)
    # The terminal shows the lease_renewed event as one sentence (what the expiry was, what it is).
    run(
        "extend",
        lambda events: extend(cluster, ref, ttl_seconds=ttl, clock=system_clock, events=events),
        output=output,
        environment=ref.environment,
        namespace=ref.namespace,
    )
