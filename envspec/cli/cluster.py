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
    state = cluster_status(name)
    click.echo(f"cluster:    {state.name} ({state.provider})")
    click.echo(f"state:      {state.detail}")
    if state.server:
        click.echo(f"server:     {state.server}")
    if state.kubeconfig:
        click.echo(f"kubeconfig: {state.kubeconfig}")
    if state.nodes_total is not None:
        click.echo(f"nodes:      {state.nodes_ready}/{state.nodes_total} Ready")
    for component in state.components:
        memory = f"{component.rss / 2**20:.0f} MiB" if component.rss is not None else "-"
        pid = str(component.pid) if component.pid is not None else "not running"
        click.echo(f"  {component.name:<24} pid {pid:<12} rss {memory}")
    if state.rss_total is not None:
        click.echo(f"memory:     {state.rss_total / 2**20:.0f} MiB RSS (control plane total)")
    if not state.running:
        raise ClusterError(f"cluster {name} is not running: start it with `envspec cluster up --name {name}`")


@command.command("kubeconfig")
@name_option
def kubeconfig(name: str) -> None:
    """Print the path of the cluster's kubeconfig (for `--kubeconfig "$(...)"`)."""
    click.echo(kubeconfig_path(name))
