"""`envspec watch`: bring an environment up and reapply it on every edit of the spec."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from envspec.cli.options import Duration, cluster_options, env_id, output_format, report_option, spec_file, target
from envspec.cli.run import run_until_stopped

if TYPE_CHECKING:
    from envspec.pipeline import ValidSpec


@click.command("watch")
@spec_file
@env_id
@click.option("--down-on-exit", is_flag=True, help="Take the environment down when the watch ends (Ctrl-C).")
@click.option(
    "--timeout",
    type=Duration(),
    default="5m",
    show_default=True,
    help="How long one reapply may take, waiting included (the first up gets 10m).",
)
@output_format("table", "json", default="table")
@cluster_options
@report_option
def command(
    file: str,
    env_id: str | None,
    down_on_exit: bool,
    timeout: int,
    output: str,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Bring the environment up, then reapply it every time the spec file is saved.

    Each save is validated first: an invalid spec is reported with the location of
    every problem and the environment is left exactly as it is. A valid one is
    compared with what was applied last; only the objects that changed are applied
    (in wave order), removed ones are pruned, and the changed workloads are waited
    for. One line per cycle says what changed and how long it took. An API error
    is reported and the next save retries. While watching, the environment's
    expiry is renewed (every ttl/3, at least once a minute) so it never expires
    under you.

    Ctrl-C stops watching and leaves the environment up, or deletes it with
    --down-on-exit.

    \b
    Exit codes: 0 stopped by Ctrl-C or SIGTERM, 1 the spec is invalid at start or
    the namespace is not envspec's, 3 the API could not be reached, 130 a second Ctrl-C.

    \b
    Examples:
      envspec watch
      envspec watch -f examples/quickstart/maestro-env.yaml --id dev --down-on-exit
    """
    from envspec.lifecycle.expiry import system_clock
    from envspec.operations.watch import WatchOptions, WatchRequest, watch
    from envspec.pipeline import check_id, identity

    options = WatchOptions(
        down_on_exit=down_on_exit, cycle_timeout_seconds=float(timeout), cycle_details=output == "json"
    )
    request = WatchRequest(file, env_id, target(kubeconfig, context), os.environ, options)
    spec = _spec_at_start(file)
    names = identity(spec, check_id(env_id)) if spec is not None else None
    # Until SIGINT/SIGTERM; a second signal stops at once (130).
    run_until_stopped(
        "watch",
        lambda events, stop: watch(request, events=events, clock=system_clock, stop=stop),
        output=output,
        detail=file,
        environment=names.environment if names else None,
        namespace=names.namespace if names else None,
        spec=spec,
        env_id=env_id,
    )


def _spec_at_start(file: str) -> ValidSpec | None:
    """The spec as it is when watch starts (its reporting holds for the whole watch); None if invalid:
    watch itself reports an invalid spec, in its own way."""
    from envspec.errors import EnvspecError
    from envspec.pipeline import load_spec

    try:
        return load_spec(file, os.environ)
    except EnvspecError:
        return None
