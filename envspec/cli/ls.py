"""`envspec ls`: the environments on the cluster."""

from __future__ import annotations

import json

import click

from envspec.cli.options import cluster_options, output_format, target, timeout_option


@click.command("ls")
@output_format("table", "json", default="table")
@timeout_option
@cluster_options
def command(output: str, timeout: int, kubeconfig: str | None, context: str | None) -> None:
    """List every envspec environment on the cluster: name, namespace, age, expiry, readiness.

    \b
    Examples:
      envspec ls
      envspec ls -o json | jq -r '.[] | select(.expiresInSeconds < 600) | .name'
    """
    from envspec.kube.environments import ls, ls_json, ls_table

    listings = ls(target(kubeconfig, context), timeout_seconds=timeout)
    click.echo(json.dumps(ls_json(listings), indent=2) if output == "json" else ls_table(listings))
