"""`envspec ls`: the environments on the cluster."""

from __future__ import annotations

import json

import click

from envspec.cli.options import cluster_options, output_format, target, timeout_option
from envspec.cli.run import run


@click.command("ls")
@output_format("table", "json", default="table")
@timeout_option
@cluster_options
def command(output: str, timeout: int, kubeconfig: str | None, context: str | None) -> None:
    """List every envspec environment on the cluster: name, namespace, age, expiry, readiness.

    \b
    Examples:
      envspec ls
      envspec ls -o json | jq -r '.[] | select(.expires_in_seconds < 600) | .name'
    """
    from envspec.kube.deadline import Deadline
    from envspec.operations.status import ls
    from envspec.present import ls_json, ls_table
    from envspec.sinks import Recorder

    cluster = target(kubeconfig, context)
    listings = run("ls", lambda events: ls(cluster, deadline=Deadline(timeout)), sink=Recorder())
    click.echo(json.dumps(ls_json(listings), indent=2) if output == "json" else ls_table(listings))
