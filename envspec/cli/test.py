"""`envspec test`: run the spec's tests (or one ad-hoc test) as Jobs in the environment."""

from __future__ import annotations

import os
from pathlib import Path

import click

from envspec.cli.options import Duration, cluster_options, env_id, output_format, report_option, spec_file, target

EPILOG = """\b
Exit codes:
  0   every selected test passed
  1   invalid spec or input (unknown test, a test that can never fit the quota)
  2   bad command line
  3   the Kubernetes API refused a request or could not be reached
  4   the environment is not on the cluster or not ready (or --up did not make it ready)
  5   at least one test failed or could not run
  6   a test timed out, and none failed otherwise
  130 interrupted (SIGINT/SIGTERM): the JUnit report holds what finished
"""

AD_HOC_NAME = "adhoc"


def _env_pairs(values: tuple[str, ...]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, separator, text = value.partition("=")
        if not separator or not key:
            raise click.BadParameter(f"{value!r}: use KEY=VALUE", param_hint="--env")
        pairs[key] = text
    return pairs


@click.command("test", epilog=EPILOG)
@click.argument("names", nargs=-1, metavar="[NAME]...")
@spec_file
@env_id
@click.option("--up", "bring_up", is_flag=True, help="Bring the environment up first (as `envspec up`).")
@click.option("--down", "take_down", is_flag=True, help="Take the environment down afterwards, whatever the result.")
@click.option(
    "--timeout",
    type=Duration(),
    default=None,
    help="Give up on tests still running after this long (default: the tests' own timeouts summed, plus 1m).",
)
@click.option(
    "--junit", metavar="FILE", type=click.Path(dir_okay=False), default=None, help="Write a JUnit XML report."
)
@click.option("--keep", is_flag=True, help="Keep this run's Jobs even when interrupted or cut short by --timeout.")
@click.option("--cleanup", is_flag=True, help="Delete this run's Jobs at the end (default: keep the last 3 runs).")
@click.option("--logs", is_flag=True, help="With -o json: include every log line as a test_log event.")
@click.option("--image", metavar="IMG", default=None, help="Run one ad-hoc test with this image (spec defaults apply).")
@click.option("--command", "command_line", metavar="CMD", default=None, help="The ad-hoc test's command.")
@click.option(
    "--env", "env_values", metavar="K=V", multiple=True, help="An ad-hoc test's variable (references allowed)."
)
@click.option("--name", "ad_hoc_name", metavar="NAME", default=None, help=f"The ad-hoc test's name ({AD_HOC_NAME}).")
@output_format("table", "json", default="table")
@cluster_options
@report_option
def command(
    names: tuple[str, ...],
    file: str,
    env_id: str | None,
    bring_up: bool,
    take_down: bool,
    timeout: int | None,
    junit: str | None,
    keep: bool,
    cleanup: bool,
    logs: bool,
    image: str | None,
    command_line: str | None,
    env_values: tuple[str, ...],
    ad_hoc_name: str | None,
    output: str,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    """Run the spec's tests as Jobs in the environment, with live logs, a summary and an exit code.

    Each selected test (default: all, concurrently as far as the namespace's
    quota allows; else in the spec's order as room frees up) runs as the Job
    `render --tests` shows, named <test>-<run id>. Log lines are printed as they
    come (prefixed `<test> |` when several tests run). A test whose pod cannot
    start (image pull error, unschedulable, refused by quota) fails at once.
    Finished Jobs stay for inspection (`envspec logs TEST`); the last 3 runs per
    test are kept. Ctrl-C deletes this run's Jobs (unless --keep), writes the
    report and exits 130.

    \b
    Examples:
      envspec test --up --down --junit report.xml
      envspec test smoke -o json
      envspec test --image python:3.12 --command "pytest tests/" --env 'API_URL=${api.url}'
    """
    from envspec.operations.spec import test_plans_of
    from envspec.operations.test import TestOptions, run_tests
    from envspec.pipeline import load_spec
    from envspec.runner import ApplyOptions

    if keep and cleanup:
        raise click.UsageError("give either --keep or --cleanup, not both")
    ad_hoc = image is not None
    if not ad_hoc and (command_line is not None or env_values or ad_hoc_name is not None):
        raise click.UsageError("--command, --env and --name describe an ad-hoc test: give --image too")
    extra: dict[str, dict[str, object]] = {}
    selected = names
    if ad_hoc:
        name = ad_hoc_name or AD_HOC_NAME
        test: dict[str, object] = {"image": image, "env": _env_pairs(env_values)}
        if command_line is not None:
            test["command"] = command_line
        extra[name] = test
        selected = (*names, name)
    spec = load_spec(file, os.environ, extra_tests=extra)  # a bad spec fails here, before any request
    plans = test_plans_of(spec, env_id)
    draft = plans.environment(None)
    options = TestOptions(
        names=selected,
        up=bring_up,
        down=take_down,
        timeout_seconds=float(timeout) if timeout is not None else None,
        junit=Path(junit) if junit else None,
        cleanup=cleanup,
        keep=keep,
        log_events=output != "json" or logs,
        apply=ApplyOptions(),
        handle_signals=True,
    )
    cluster = target(kubeconfig, context)
    from envspec.cli.run import run

    run(
        "test",
        lambda events: run_tests(cluster, plans, events=events, options=options),
        output=output,
        environment=draft.environment,
        namespace=draft.namespace,
        detail=file,
        spec=spec,
        env_id=env_id,
    )
