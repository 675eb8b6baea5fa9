"""`envspec gc`: delete expired environments, once or in a loop; or print the in-cluster janitor."""

from __future__ import annotations

import click

from envspec.cli.options import Duration, cluster_options, output_format, report_option, target
from envspec.cli.run import output_sink, run, run_until_stopped


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Report what would be deleted; delete nothing.")
@click.option("--loop", is_flag=True, help="Sweep every --interval until SIGTERM or Ctrl-C.")
@click.option("--interval", type=Duration(), default="30s", show_default=True, help="Time between sweeps (--loop).")
@click.option(
    "--stuck-after",
    type=Duration(),
    default="5m",
    show_default=True,
    help="Report environments whose namespace has been Terminating longer than this, with what blocks them.",
)
@output_format("table", "json", default="table")
@cluster_options
@report_option
@click.option(
    "--print-manifests",
    is_flag=True,
    help="Print the manifests that run `envspec gc --loop` inside the cluster, and exit.",
)
@click.option(
    "--janitor-namespace",
    metavar="NAMESPACE",
    default="envspec-system",
    show_default=True,
    help="With --print-manifests: the namespace the janitor runs in.",
)
@click.option(
    "--image",
    metavar="IMAGE",
    default=None,
    help="With --print-manifests: the envspec image (built from the repository's Dockerfile) "
    "[default: envspec:<version>].",
)
def command(
    dry_run: bool,
    loop: bool,
    interval: int,
    stuck_after: int,
    output: str,
    kubeconfig: str | None,
    context: str | None,
    print_manifests: bool,
    janitor_namespace: str,
    image: str | None,
) -> None:
    """Delete the environments whose expiry (envspec.dev/expires-at) has passed.

    One sweep lists the namespaces labelled app.kubernetes.io/managed-by=envspec
    (one paginated list) and deletes those whose expiry is in the past, each with
    its reason. Namespaces without that label are never touched, whatever their
    name. `ttl: never` environments never expire. A missing or unreadable expiry
    is reported and left alone. Namespaces stuck in Terminating are reported with
    what blocks them.

    With --loop, sweeps repeat every --interval until SIGTERM or Ctrl-C, which end
    the loop after the sweep under way; a sweep that fails (API down) is reported
    and tried again at the next interval.

    \b
    Exit codes: 0 done (also: a loop stopped by a signal), 3 the API could not be
    listed or a delete failed (one sweep), 130 a second Ctrl-C.

    \b
    Examples:
      envspec gc --dry-run
      envspec gc --loop --interval 1m -o json
      envspec gc --print-manifests --image registry.example.com/envspec:0.1.0 | kubectl apply -f -
    """
    if print_manifests:
        _print_manifests(janitor_namespace, image, interval, stuck_after, output)
        return
    from envspec.lifecycle.expiry import system_clock
    from envspec.operations.gc import GcOptions, gc, gc_loop

    options = GcOptions(dry_run=dry_run, stuck_after_seconds=float(stuck_after))
    cluster = target(kubeconfig, context)
    if loop:
        # A signal ends the loop after the sweep under way (exit 0); a second one at once (130).
        run_until_stopped(
            "gc",
            lambda events, stop: gc_loop(
                cluster, interval_seconds=float(interval), stop=stop, clock=system_clock, events=events, options=options
            ),
            sink=output_sink(output, timestamps=True),
        )
    else:
        run("gc", lambda events: gc(cluster, clock=system_clock, events=events, options=options), output=output)


def _print_manifests(namespace: str, image: str | None, interval: int, stuck_after: int, output: str) -> None:
    from envspec.lifecycle.janitor import DEFAULT_IMAGE, janitor_manifests
    from envspec.present import manifests_text

    manifests = janitor_manifests(
        namespace=namespace,
        image=image or DEFAULT_IMAGE,
        interval_seconds=interval,
        stuck_after_seconds=stuck_after,
    )
    click.echo(manifests_text(manifests, output), nl=False)
