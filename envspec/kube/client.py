"""Connecting to the cluster: one kr8s async `Api` per command, with HTTP timeouts.

Where the cluster is comes from, in order: `--kubeconfig`, `$KUBECONFIG`, the pod's
service account when `K8S_IN_CLUSTER=true`, `~/.kube/config`. `--context` picks a
context of the kubeconfig.

kr8s sets no HTTP timeouts and lets raw httpx errors escape; `connect` sets the
timeouts and turns "cannot reach the cluster" into a `ClusterError` that says
which cluster and why.
"""

from __future__ import annotations

import errno
import os
import warnings
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import kr8s.asyncio
from kr8s import ServerError

from envspec.errors import ClusterError

IN_CLUSTER_ENV = "K8S_IN_CLUSTER"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_KUBECONFIG = "~/.kube/config"

# Ordinary requests: a local or cloud API server answers in well under a second; 30 s
# leaves room for a slow admission webhook. Connecting should never take 5 s.
REQUEST_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# Authenticating and the first request (kr8s asks for /version) together.
CONNECT_SECONDS = 15.0


@dataclass(frozen=True)
class ClusterTarget:
    """Which cluster to talk to and as whom, decided from options and environment."""

    kubeconfig: str | None = None  # a path, or several joined by ':' like $KUBECONFIG
    context: str | None = None
    in_cluster: bool = False
    service_account_dir: str = SERVICE_ACCOUNT_DIR

    @classmethod
    def from_options(cls, kubeconfig: str | None, context: str | None, environ: Mapping[str, str]) -> ClusterTarget:
        """`--kubeconfig` wins over `$KUBECONFIG`, which wins over `K8S_IN_CLUSTER=true`."""
        path = kubeconfig or environ.get("KUBECONFIG") or None
        in_cluster = path is None and environ.get(IN_CLUSTER_ENV, "").strip().lower() == "true"
        return cls(kubeconfig=path, context=context, in_cluster=in_cluster)

    def describe(self) -> str:
        if self.in_cluster:
            return "in-cluster service account"
        where = f"kubeconfig {self.kubeconfig or DEFAULT_KUBECONFIG}"
        return f"{where}, context {self.context}" if self.context else where


@asynccontextmanager
async def connect(target: ClusterTarget) -> AsyncIterator[Any]:
    """An authenticated kr8s async Api with timeouts set, closed on exit.

    Yields `kr8s.asyncio.Api` (typed Any: kr8s ships no usable annotations).
    """
    api = await _open(target)
    try:
        yield api
    finally:
        await close(api)


async def _open(target: ClusterTarget) -> Any:
    if target.in_cluster:
        source: Any = service_account_kubeconfig(Path(target.service_account_dir), os.environ)
    else:
        source = target.kubeconfig or DEFAULT_KUBECONFIG
        # Only for a path the user gave: without one, kr8s may still find a service account.
        paths = [p for p in (target.kubeconfig or "").split(os.pathsep) if p]
        missing = [p for p in paths if not Path(p).expanduser().exists()]
        if paths and len(missing) == len(paths):
            raise ClusterError(
                f"no kubeconfig at {', '.join(missing)}: pass --kubeconfig PATH or set KUBECONFIG "
                "(for a local cluster: export KUBECONFIG=$(envspec cluster kubeconfig))"
            )
    try:
        # kr8s's first request (/version) has no timeout yet: bound the whole handshake.
        with anyio.fail_after(CONNECT_SECONDS), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # kr8s's version-support warning is not the user's business
            # Not `kr8s.asyncio.api()`: it hands one cached Api per (thread, loop, arguments) to every
            # caller, so concurrent operations in one process (the REST API runs several) would share
            # a session that the first to finish closes, and re-authenticate it under each other.
            api = await kr8s.asyncio.Api(bypass_factory=True, kubeconfig=source, context=target.context)
    except TimeoutError as exc:
        raise ClusterError(
            f"the Kubernetes API did not answer within {CONNECT_SECONDS:g}s ({target.describe()})"
        ) from exc
    except httpx.TransportError as exc:
        raise ClusterError(f"cannot reach the Kubernetes API ({target.describe()}): {transport_reason(exc)}") from exc
    except ServerError as exc:  # e.g. 401 on /version: credentials the server does not accept
        raise ClusterError(f"the Kubernetes API refused envspec ({target.describe()}): {exc}") from exc
    except (ValueError, KeyError, OSError) as exc:
        # kr8s: "Unable to find valid credentials", "No such context x", unreadable files.
        raise ClusterError(f"cannot use {target.describe()}: {exc}") from exc
    api.timeout = REQUEST_TIMEOUT
    return api


async def close(api: Any) -> None:
    """Close the HTTP session; kr8s offers no public way, and an unclosed one warns at exit."""
    session = getattr(api, "_session", None)
    if session is not None:
        with anyio.CancelScope(shield=True):
            await session.aclose()


def service_account_kubeconfig(directory: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    """A kubeconfig (as a dict) for the pod's service account, as client-go's in-cluster config."""
    host = environ.get("KUBERNETES_SERVICE_HOST")
    port = environ.get("KUBERNETES_SERVICE_PORT", "443")
    token_file = directory / "token"
    if not host:
        raise ClusterError(f"{IN_CLUSTER_ENV}=true but KUBERNETES_SERVICE_HOST is not set: not running in a pod?")
    try:
        token = token_file.read_text().strip()
    except OSError as exc:
        raise ClusterError(f"{IN_CLUSTER_ENV}=true but the service account token is unreadable: {exc}") from exc
    server_host = f"[{host}]" if ":" in host else host  # IPv6
    cluster: dict[str, Any] = {"server": f"https://{server_host}:{port}"}
    if (directory / "ca.crt").exists():
        cluster["certificate-authority"] = str(directory / "ca.crt")
    context: dict[str, Any] = {"cluster": "in-cluster", "user": "service-account"}
    namespace_file = directory / "namespace"
    if namespace_file.exists():
        context["namespace"] = namespace_file.read_text().strip()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": cluster}],
        "users": [{"name": "service-account", "user": {"token": token}}],
        "contexts": [{"name": "in-cluster", "context": context}],
        "current-context": "in-cluster",
    }


def transport_reason(exc: BaseException) -> str:
    """A short human reason for a network failure: 'connection refused', 'timed out'."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno is not None:
            if cause.errno == errno.ECONNREFUSED:
                return "connection refused"
            if cause.errno == errno.ECONNRESET:
                return "connection reset"
            return os.strerror(cause.errno).lower()
        cause = cause.__cause__ or cause.__context__
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return "connection refused"
    return text
