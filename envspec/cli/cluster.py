"""`envspec cluster up|down|status|kubeconfig`: the local cluster for development and CI."""

from __future__ import annotations

import shlex

import click

from envspec.cluster import DEFAULT_NAME, PROVIDERS, cluster_down, cluster_status, cluster_up, kubeconfig_path
from envspec.cluster.progress import Progress, format_elapsed
from envspec.errors import ClusterError

name_option = click.option(
    "--name", default=DEFAULT_NAME, show_default=True, metavar="NAME", help="Cluster name (several can coexist)."
)


@click.group("cluster")
def command() -> None:
    """Manage the local Kubernetes cluster for development and CI.

    \b
    Without Docker (provider kwok), a real control plane (etcd, kube-apiserver,
    kube-controller-manager, kube-scheduler) runs with simulated nodes: pods are
    scheduled and marked Running, but no container runs. Its binaries are built from
    Go modules on first use and cached in ~/.cache/envspec (ENVSPEC_CACHE_DIR).
    With Docker and kind on PATH, `--provider auto` uses kind instead.
    ~/.kube/config is never modified: use the printed KUBECONFIG.
    """
    from envspec.cli.main import start_collecting

    start_collecting()  # a build runs for minutes: no reason to keep the collector paused


@command.command("up")
@name_option
@click.option(
    "--provider",
    type=click.Choice(PROVIDERS),
    default="auto",
    show_default=True,
    help="auto = kind when `docker info` works and kind is on PATH, else kwok.",
)
def up(name: str, provider: str) -> None:
    """Start the cluster, or reuse/repair it; print `export KUBECONFIG=...`.

    Progress goes to stderr, so `eval "$(envspec cluster up)"` sets KUBECONFIG.
    """
    progress = Progress()
    info = cluster_up(name, provider, progress=progress)
    progress.step(f"cluster {name}: up in {format_elapsed(progress.elapsed())} ({info.provider}, {info.server})")
    click.echo(f"export KUBECONFIG={shlex.quote(info.kubeconfig)}")


@command.command("down")
@name_option
def down(name: str) -> None:
    """Stop the cluster and delete its state (the binary cache is kept)."""
    cluster_down(name, progress=Progress())


@command.command("status")
@name_option
def status(name: str) -> None:
    """Show the cluster's state; exit 3 when it is not running."""
    from envspec.present import cluster_status_text

    state = cluster_status(name)
    click.echo(cluster_status_text(state))
    if not state.running:
        raise ClusterError(f"cluster {name} is not running: start it with `envspec cluster up --name {name}`")


@command.command("kubeconfig")
@name_option
def kubeconfig(name: str) -> None:
    """Print the path of the cluster's kubeconfig (for `--kubeconfig "$(...)"`)."""
    click.echo(kubeconfig_path(name))
