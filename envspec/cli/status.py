"""`envspec status`: every object of an environment with its wave and readiness."""

from __future__ import annotations

import json
import os

import click

from envspec.cli.options import (
    check_file_or_name,
    cluster_options,
    env_id,
    name_option,
    output_format,
    spec_file,
    target,
    timeout_option,
)
from envspec.cli.run import run
from envspec.errors import NotReadyError


@click.command("status")
@spec_file
@name_option
@env_id
@output_format("table", "json", default="table")
@timeout_option
@cluster_options
def command(
    file: str,
    name: str | None,
    env_id: str | None,
    output: str,
    timeout: int,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Show every object of an environment with its wave, readiness and message, and its expiry.

    With a spec (-f), objects of the plan that are missing from the cluster are
    listed too. Exits 0 when everything is ready, 4 when something is not.

    \b
    Examples:
      envspec status
      envspec status --name fullstack -o json
    """
    from envspec.kube.deadline import Deadline
    from envspec.operations.spec import environment_ref
    from envspec.operations.status import status
    from envspec.present import status_json, status_table
    from envspec.sinks import Recorder

    check_file_or_name(file, name)
    ref = environment_ref(file, name, env_id, os.environ, with_plan=name is None)
    cluster = target(kubeconfig, context)
    # status prints its result, not a progress stream.
    result = run(
        "status",
        lambda events: status(cluster, ref, deadline=Deadline(timeout)),
        sink=Recorder(),
        environment=ref.environment,
        namespace=ref.namespace,
    )
    if output == "json":
        click.echo(json.dumps(status_json(result), indent=2))
    else:
        click.echo(status_table(result))
    if not result.all_ready:
        missing = len(result.objects) - result.ready_count
        raise NotReadyError(f"{missing} of {len(result.objects)} objects of {result.environment} are not ready")
