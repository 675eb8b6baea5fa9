"""`envspec down`: delete an environment and wait until it is gone."""

from __future__ import annotations

import os

import click

from envspec.cli.options import (
    check_file_or_name,
    cluster_options,
    env_id,
    name_option,
    output_format,
    report_option,
    spec_file,
    target,
    timeout_option,
)
from envspec.cli.run import run


@click.command("down")
@spec_file
@name_option
@env_id
@timeout_option
@click.option("--no-wait", is_flag=True, help="Return once the deletion is accepted.")
@output_format("table", "json", default="table")
@cluster_options
@report_option
def command(
    file: str,
    name: str | None,
    env_id: str | None,
    timeout: int,
    no_wait: bool,
    output: str,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Delete an environment's namespace (and its cluster-scoped objects) and wait until it is gone.

    A namespace without the label app.kubernetes.io/managed-by=envspec is never
    deleted. An environment that is not on the cluster is nothing to do.

    \b
    Examples:
      envspec down
      envspec down --name fullstack --id pr-42
    """
    from envspec.kube.deadline import Deadline
    from envspec.operations.down import down
    from envspec.operations.spec import environment_ref_and_spec

    check_file_or_name(file, name)
    ref, spec = environment_ref_and_spec(file, name, env_id, os.environ)
    cluster = target(kubeconfig, context)
    result = run(
        "down",
        lambda events: down(cluster, ref, events=events, wait=not no_wait, deadline=Deadline(timeout)),
        output=output,
        environment=ref.environment,
        namespace=ref.namespace,
        spec=spec,
        env_id=env_id,
    )
    if result.namespace is None:
        click.echo(f"{ref.describe()} is not on the cluster: nothing to delete", err=True)
