"""`envspec logs`: print the logs of a service, a database, or a test's last run."""

from __future__ import annotations

import os

import click

from envspec.cli.options import Duration, cluster_options, env_id, spec_file, target


@click.command("logs")
@click.argument("component", metavar="COMPONENT")
@spec_file
@env_id
@click.option("--follow", is_flag=True, help="Keep printing new lines until the pods end (Ctrl-C to stop).")
@click.option(
    "--tail", "tail_lines", type=click.IntRange(min=0), default=None, metavar="N", help="Only the last N lines."
)
@click.option("--since", type=Duration(), default=None, help="Only lines newer than this (e.g. 10m).")
@cluster_options
def command(
    component: str,
    file: str,
    env_id: str | None,
    follow: bool,
    tail_lines: int | None,
    since: int | None,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Print the logs of a service's pods, a database, or every pod of a test's last run.

    With several pods, each line is prefixed with the pod's name. A test's logs are
    those of its newest run (`envspec test`), retries included.

    \b
    Examples:
      envspec logs api --tail 100
      envspec logs db --since 10m --follow
      envspec logs integration
    """
    from envspec.cli.run import run
    from envspec.operations.logs import LogOptions, find_component, show_logs
    from envspec.pipeline import check_id, identity, load_spec

    spec = load_spec(file, os.environ)  # a bad spec fails here, before any request
    names = identity(spec, check_id(env_id))
    chosen = find_component(
        component,
        services=list(spec.spec.services),
        databases=list(spec.spec.databases),
        tests=list(spec.spec.tests),
    )
    cluster = target(kubeconfig, context)
    options = LogOptions(follow=follow, tail_lines=tail_lines, since_seconds=since)
    run(
        "logs",
        lambda events: show_logs(
            cluster,
            chosen,
            environment=names.environment,
            namespace=names.namespace,
            options=options,
            write=click.echo,
            warn=lambda text: click.echo(text, err=True),
        ),
        environment=names.environment,
        namespace=names.namespace,
        detail=file,
    )
