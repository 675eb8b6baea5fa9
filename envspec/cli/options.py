"""Options shared by several commands, so every command spells them the same way.

Imported by every command, `render` included: what needs kr8s is imported inside the
functions that use it.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from envspec.units import parse_duration

if TYPE_CHECKING:
    from envspec.kube.client import ClusterTarget

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SPEC_FILE = "maestro-env.yaml"


def given_once(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> str:
    """A `multiple` option given at most once: repeating `-f` is refused instead of the last
    one silently winning."""
    if len(values) > 1:
        shown = ", ".join(repr(value) for value in values)
        raise click.BadParameter(f"given {len(values)} times ({shown}); give it once", ctx=ctx, param=param)
    return values[0] if values else DEFAULT_SPEC_FILE


def spec_file(func: F) -> F:
    decorated: F = click.option(
        "-f",
        "--file",
        "file",
        multiple=True,
        callback=given_once,
        default=[DEFAULT_SPEC_FILE],
        show_default=True,
        metavar="FILE",
        help="The spec to read; '-' reads standard input.",
    )(func)
    return decorated


def env_id(func: F) -> F:
    decorated: F = click.option(
        "--id",
        "env_id",
        metavar="ID",
        default=None,
        help="Instance id, so one spec can run several times side by side: the namespace becomes "
        "<prefix>-<name>-<id> (1-20 characters of a-z, 0-9 and '-').",
    )(func)
    return decorated


def output_format(*choices: str, default: str) -> Callable[[F], F]:
    def decorator(func: F) -> F:
        decorated: F = click.option(
            "-o",
            "--output",
            "output",
            type=click.Choice(choices),
            default=default,
            show_default=True,
            help="Output format.",
        )(func)
        return decorated

    return decorator


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
    from envspec.kube.client import ClusterTarget  # kr8s stays off the render path

    return ClusterTarget.from_options(kubeconfig, context, os.environ)


def name_option(func: F) -> F:
    decorated: F = click.option(
        "--name",
        metavar="ENV",
        default=None,
        help="The environment's name (as `envspec ls` shows it) instead of reading a spec.",
    )(func)
    return decorated


def check_file_or_name(file: str, name: str | None) -> None:
    """`-f` and `--name` are alternatives; `-f` has a default, so only an explicit one conflicts."""
    context = click.get_current_context()
    if name is not None and context.get_parameter_source("file") is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("give either -f FILE or --name ENV, not both")


def discard_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so that the output still buffered is dropped
    quietly instead of failing again when Python flushes it at exit."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return  # not a real file (a test runner's capture): nothing is flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


REPORT_REDIS_META = "envspec.report_redis"  # where `--report-redis` leaves its URL for `cli.run`


def checked_redis_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A click callback: a Redis URL option, refused as a usage error (its password masked)
    when redis-py would refuse it later."""
    if value is None or not value.strip():
        return None
    from envspec.report.redis_url import mask_url, redis_url_problem

    url = value.strip()
    problem = redis_url_problem(url)
    if problem is not None:
        raise click.BadParameter(f"{mask_url(url)}: {problem}", ctx, param)
    return url


def _remember_report_url(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    url = checked_redis_url(ctx, param, value)
    if url is not None:
        ctx.meta[REPORT_REDIS_META] = url


def report_option(func: F) -> F:
    """`--report-redis URL` (or $ENVSPEC_REPORT_REDIS): also report to Redis Streams.

    Not a parameter of the command: the URL is left in the click context, where
    `cli.run` composes the Redis sink into the sinks. No command knows that sink.
    """
    decorated: F = click.option(
        "--report-redis",
        metavar="URL",
        envvar="ENVSPEC_REPORT_REDIS",
        default=None,
        expose_value=False,
        callback=_remember_report_url,
        help="Also publish status entries and a results record to Redis Streams at this URL "
        "(wins over the spec's reporting.redis.url) [env: ENVSPEC_REPORT_REDIS].",
    )(func)
    return decorated
