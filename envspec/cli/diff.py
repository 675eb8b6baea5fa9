"""`envspec diff`: what `envspec up` would change, without changing anything."""

from __future__ import annotations

import json
import os

import click

from envspec.cli.options import cluster_options, env_id, output_format, spec_file, target, timeout_option
from envspec.cli.run import run
from envspec.errors import EnvspecError, ExitCode


@click.command("diff")
@spec_file
@env_id
@timeout_option
@output_format("table", "json", default="table")
@cluster_options
def command(
    file: str, env_id: str | None, timeout: int, output: str, kubeconfig: str | None, context: str | None
) -> None:
    """Show, object by object, what `envspec up` would change, and what it would prune.

    Every object is server-side applied as a dry run, so defaults and admission
    (quota, validation) apply as they would for real. Secret values are never
    shown, only whether they would change.

    \b
    \b
    Examples:
      envspec diff
      envspec diff --id pr-42 -o json | jq '.differences[].ref'

    \b
    Exit codes (as `kubectl diff`):
      0  no differences
      1  differences found
      >1 an error: 2 invalid spec or input, 3 the cluster refused or is unreachable
    """
    from envspec.kube.deadline import Deadline
    from envspec.operations.diff import diff
    from envspec.operations.spec import plan_builder
    from envspec.present import diff_json, diff_text
    from envspec.sinks import Recorder

    try:
        build = plan_builder(file, env_id, os.environ)
        cluster = target(kubeconfig, context)
        result = run("diff", lambda events: diff(cluster, build, deadline=Deadline(timeout)), sink=Recorder())
    except EnvspecError as exc:
        if exc.exit_code == ExitCode.USER_ERROR:
            exc.exit_code = ExitCode.USAGE  # 1 means "differences" here
        raise
    click.echo(json.dumps(diff_json(result), indent=2) if output == "json" else diff_text(result))
    if result.changed:
        raise click.exceptions.Exit(ExitCode.USER_ERROR)
