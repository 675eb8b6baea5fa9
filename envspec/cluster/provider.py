"""Choosing a provider, remembering it, and the up/down/status entry points.

A cluster's provider is recorded when it is first brought up, so later commands with
`--provider auto` (the default) act on the same kind of cluster whatever the machine
looks like now.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager

from envspec.cluster.build import Binaries, ensure_binaries
from envspec.cluster.info import ClusterInfo, ClusterStatus
from envspec.cluster.kind import KindCluster
from envspec.cluster.kwok import KwokCluster
from envspec.cluster.paths import Layout, validate_name
from envspec.cluster.proc import file_lock, run
from envspec.cluster.progress import Progress, Quiet
from envspec.errors import EnvspecError

PROVIDERS = ("auto", "kwok", "kind")


def docker_works() -> bool:
    """`docker info` succeeds: a CLI alone is not enough, the engine must answer."""
    if shutil.which("docker") is None:
        return False
    return run(["docker", "info"], timeout=20).returncode == 0


def choose_provider(
    requested: str,
    recorded: str | None,
    *,
    kind_on_path: Callable[[], bool],
    docker_ok: Callable[[], bool],
) -> tuple[str, str]:
    """(provider, reason). The probes are callables so they run only when needed."""
    if requested not in PROVIDERS:
        raise EnvspecError(f"unknown provider {requested!r}: use one of {', '.join(PROVIDERS)}")
    if recorded is not None:
        if requested not in ("auto", recorded):
            raise EnvspecError(
                f"this cluster already exists with provider {recorded}; "
                f"remove it first with `envspec cluster down` to switch to {requested}"
            )
        return recorded, "existing cluster"
    if requested != "auto":
        return requested, "requested"
    if kind_on_path() and docker_ok():
        return "kind", "auto: Docker answers and kind is on PATH"
    return "kwok", "auto: no working Docker engine with kind, using kwok"


def read_record(layout: Layout, name: str) -> str | None:
    try:
        value = layout.provider_record(name).read_text().strip()
    except OSError:
        return None
    return value if value in ("kwok", "kind") else None


def _write_record(layout: Layout, name: str, provider: str) -> None:
    path = layout.provider_record(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(provider + "\n")


def _cluster_lock(layout: Layout, name: str, progress: Progress) -> AbstractContextManager[None]:
    return file_lock(
        layout.lock(f"cluster-{name}"),
        waiting=f"cluster {name}: waiting for another envspec process working on it",
        notify=progress.step,
    )


def cluster_up(
    name: str, provider: str = "auto", *, progress: Progress | None = None, layout: Layout | None = None
) -> ClusterInfo:
    """Create the cluster, or reuse/repair the existing one; return once it is ready."""
    validate_name(name)
    progress = progress or Progress()
    layout = layout or Layout.from_env()
    with _cluster_lock(layout, name, progress):
        chosen, why = choose_provider(
            provider,
            read_record(layout, name),
            kind_on_path=lambda: shutil.which("kind") is not None,
            docker_ok=docker_works,
        )
        progress.step(f"cluster {name}: provider {chosen} ({why})")
        # The record is written only once creation can start, so a failed precondition
        # (no kind, no Go) does not tie the name to a provider.
        if chosen == "kind":
            if shutil.which("kind") is None:
                raise EnvspecError(
                    "kind is not on PATH: install it (https://kind.sigs.k8s.io/docs/user/quick-start/) "
                    "or use `--provider kwok`, which needs no Docker"
                )
            _write_record(layout, name, chosen)
            return KindCluster(name, layout, progress).up()
        binaries = ensure_binaries(layout, progress)
        _write_record(layout, name, chosen)
        return KwokCluster(name, layout, progress).up(binaries)


def cluster_down(name: str, *, progress: Progress | None = None, layout: Layout | None = None) -> bool:
    """Delete the cluster and our record of it; False when there was nothing to delete.

    The binary cache is kept: the next `cluster up` is quick.
    """
    validate_name(name)
    progress = progress or Progress()
    layout = layout or Layout.from_env()
    with _cluster_lock(layout, name, progress):
        recorded = read_record(layout, name)
        existed = layout.cluster_dir(name).exists()
        if recorded == "kind":
            progress.step(f"cluster {name}: deleting the kind cluster")
            KindCluster(name, layout, progress).down()
        else:
            kwok = KwokCluster(name, layout, progress)
            if kwok.exists:
                existed = True
                progress.step(f"cluster {name}: stopping the control plane and removing its state")
                kwok.destroy(Binaries.in_layout(layout))
        shutil.rmtree(layout.cluster_dir(name), ignore_errors=True)
        progress.step(f"cluster {name}: deleted" if existed else f"cluster {name}: does not exist, nothing to do")
        return existed


def cluster_status(name: str, *, layout: Layout | None = None) -> ClusterStatus:
    validate_name(name)
    layout = layout or Layout.from_env()
    if read_record(layout, name) == "kind":
        return KindCluster(name, layout, Quiet()).status()
    return KwokCluster(name, layout, Quiet()).status()


def kubeconfig_path(name: str, *, layout: Layout | None = None) -> str:
    """Our kubeconfig of the cluster; an error if the cluster was never brought up."""
    validate_name(name)
    layout = layout or Layout.from_env()
    path = layout.kubeconfig(name)
    if not path.exists():
        raise EnvspecError(f"cluster {name} has no kubeconfig yet: run `envspec cluster up --name {name}`")
    return str(path)
