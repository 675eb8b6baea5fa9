"""`envspec down`: delete an environment and wait until it is gone."""

from __future__ import annotations

import os

import click

from envspec.cli.options import cluster_options, env_id, event_sink, output_format, spec_file, target, timeout_option


def name_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--name",
        metavar="ENV",
        default=None,
        help="The environment's name (as `envspec ls` shows it) instead of reading a spec.",
    )(func)


def check_file_or_name(file: str, name: str | None) -> None:
    """`-f` and `--name` are alternatives; `-f` has a default, so only an explicit one conflicts."""
    context = click.get_current_context()
    if name is not None and context.get_parameter_source("file") is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("give either -f FILE or --name ENV, not both")


@click.command("down")
@spec_file
@name_option
@env_id
@timeout_option
@click.option("--no-wait", is_flag=True, help="Return once the deletion is accepted.")
@output_format("table", "json", default="table")
@cluster_options
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
    from envspec.apply import environment_ref
    from envspec.kube.environments import down

    check_file_or_name(file, name)
    ref = environment_ref(file, name, env_id, os.environ)
    result = down(target(kubeconfig, context), ref, sink=event_sink(output), wait=not no_wait, timeout_seconds=timeout)
    if result.namespace is None:
        click.echo(f"{ref.describe()} is not on the cluster: nothing to delete", err=True)
