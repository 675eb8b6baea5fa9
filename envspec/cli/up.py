"""`envspec up`: create or update an environment on the cluster and wait until it is ready.

Also home of the options every cluster command shares (`--kubeconfig`, `--context`,
`--timeout`) and of the choice of event sink for `-o`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from envspec.cli.options import env_id, output_format, spec_file
from envspec.events import JsonLinesSink, Sink, TerminalSink
from envspec.kube.client import ClusterTarget
from envspec.units import parse_duration

F = TypeVar("F", bound=Callable[..., Any])


class Duration(click.ParamType[int]):
    """`30s`, `10m`, `1h30m` -> seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def cluster_options(func: F) -> F:
    """`--kubeconfig` and `--context`, resolved with $KUBECONFIG and K8S_IN_CLUSTER by ClusterTarget."""
    func = click.option(
        "--context", metavar="NAME", default=None, help="Kubeconfig context to use (default: the current one)."
    )(func)
    decorated: F = click.option(
        "--kubeconfig",
        metavar="PATH",
        default=None,
        help="Kubeconfig file (default: $KUBECONFIG, else the pod's service account when "
        "K8S_IN_CLUSTER=true, else ~/.kube/config).",
    )(func)
    return decorated


def timeout_option(func: F) -> F:
    decorated: F = click.option(
        "--timeout",
        type=Duration(),
        default="10m",
        show_default=True,
        help="Give up after this long (the whole command: requests, retries and waiting).",
    )(func)
    return decorated


def target(kubeconfig: str | None, context: str | None) -> ClusterTarget:
    return ClusterTarget.from_options(kubeconfig, context, os.environ)


def event_sink(output: str) -> Sink:
    """Where progress goes: live lines for people, JSON lines for machines; both on stdout."""
    return JsonLinesSink(sys.stdout) if output == "json" else TerminalSink(sys.stdout)


@click.command("up")
@spec_file
@env_id
@timeout_option
@click.option("--no-wait", is_flag=True, help="Apply every wave without waiting for readiness.")
@output_format("table", "json", default="table")
@cluster_options
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
    from envspec.apply import ApplyOptions, UpRequest, up

    options = ApplyOptions(timeout_seconds=float(timeout), wait=not no_wait)
    up(UpRequest(file, env_id, target(kubeconfig, context), options, os.environ), event_sink(output))
