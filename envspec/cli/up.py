"""`envspec up`: create or update an environment on the cluster and wait until it is ready."""

from __future__ import annotations

import os

import click

from envspec.cli.options import (
    cluster_options,
    env_id,
    output_format,
    report_option,
    spec_file,
    target,
    timeout_option,
)
from envspec.cli.run import run


@click.command("up")
@spec_file
@env_id
@timeout_option
@click.option("--no-wait", is_flag=True, help="Apply every wave without waiting for readiness.")
@output_format("table", "json", default="table")
@cluster_options
@report_option
def command(
    file: str, env_id: str | None, timeout: int, no_wait: bool, output: str, kubeconfig: str | None, context: str | None
) -> None:
    """Create or update the environment on the cluster and wait until it is ready.

    Objects are applied wave by wave with server-side apply (field manager
    `envspec`); each wave must be ready before the next starts. Objects of the
    environment that the spec no longer has are pruned. An unchanged spec sends
    no write but the renewal of the namespace's expiry (now + ttl). Database
    passwords are generated on the first `up` and kept ever after.

    \b
    Examples:
      envspec up
      envspec up -f maestro-env.yaml --id pr-42 --timeout 5m
      envspec up -o json | jq -c 'select(.event == "summary")'
    """
    from envspec.operations.spec import builder_of
    from envspec.operations.up import up
    from envspec.pipeline import load_spec
    from envspec.runner import ApplyOptions

    spec = load_spec(file, os.environ)  # a bad spec fails here, before any request
    build = builder_of(spec, env_id)
    draft = build(None)
    cluster = target(kubeconfig, context)
    options = ApplyOptions(timeout_seconds=float(timeout), wait=not no_wait)
    run(
        "up",
        lambda events: up(cluster, build, events=events, options=options),
        output=output,
        environment=draft.environment,
        namespace=draft.namespace,
        detail=file,
        spec=spec,
        env_id=env_id,
    )
