"""`envspec diff`: what `envspec up` would change, without changing anything."""

from __future__ import annotations

import os

import click

from envspec.cli.options import cluster_options, env_id, spec_file, target, timeout_option
from envspec.errors import EnvspecError, ExitCode


@click.command("diff")
@spec_file
@env_id
@timeout_option
@cluster_options
def command(file: str, env_id: str | None, timeout: int, kubeconfig: str | None, context: str | None) -> None:
    """Show, object by object, what `envspec up` would change, and what it would prune.

    Every object is server-side applied as a dry run, so defaults and admission
    (quota, validation) apply as they would for real. Secret values are never
    shown, only whether they would change.

    \b
    Exit codes (as `kubectl diff`):
      0  no differences
      1  differences found
      >1 an error: 2 invalid spec or input, 3 the cluster refused or is unreachable
    """
    from envspec.apply import plan_builder
    from envspec.kube.diff import diff, render_diff

    try:
        build = plan_builder(file, env_id, os.environ)
        result = diff(target(kubeconfig, context), build, timeout_seconds=timeout)
    except EnvspecError as exc:
        if exc.exit_code == ExitCode.USER_ERROR:
            exc.exit_code = ExitCode.USAGE  # 1 means "differences" here
        raise
    click.echo(render_diff(result))
    if result.changed:
        raise click.exceptions.Exit(ExitCode.USER_ERROR)
