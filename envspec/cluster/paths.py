"""Where the cluster machinery keeps its files.

Everything lives under one cache directory so that `rm -rf` of it is a full reset,
and so that nothing is ever written to ~/.kube or ~/.kwok:

    <root>/bin/<component>-<version>/   built binaries, one directory per cache key
    <root>/bin/.tmp-*                    builds in progress (renamed into place when done)
    <root>/logs/                         build and kwokctl logs, named in error messages
    <root>/locks/                        flock files serialising builds and cluster changes
    <root>/kwok/                         KWOK_WORKDIR: kwokctl's cluster directories
    <root>/clusters/<name>/              our record of a cluster: provider, kubeconfig
    <root>/kube-cache/                   KUBECACHEDIR, so kubectl leaves ~/.kube alone
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from envspec.errors import EnvspecError

CACHE_ENV = "ENVSPEC_CACHE_DIR"
DEFAULT_NAME = "envspec"

# DNS-label-like: kind uses the name in container and network names, kwokctl in paths.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")


def validate_name(name: str) -> str:
    """Return `name` if it is a usable cluster name, else raise a user error."""
    if not _NAME.match(name):
        raise EnvspecError(
            f"invalid cluster name {name!r}: use 1-40 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return name


def default_cache_root() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "envspec"


@dataclass(frozen=True)
class Layout:
    """The directory tree under one cache root."""

    root: Path

    @classmethod
    def from_env(cls) -> Layout:
        return cls(default_cache_root().resolve())

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"

    @property
    def kwok_workdir(self) -> Path:
        return self.root / "kwok"

    @property
    def kube_cache_dir(self) -> Path:
        return self.root / "kube-cache"

    def entry(self, key: str) -> Path:
        """The cache entry of one component build, e.g. bin/kubernetes-v1.34.4."""
        return self.bin_dir / key

    def build_log(self, key: str) -> Path:
        return self.logs_dir / f"build-{key}.log"

    def lock(self, what: str) -> Path:
        return self.locks_dir / f"{what}.lock"

    def cluster_dir(self, name: str) -> Path:
        return self.root / "clusters" / name

    def kubeconfig(self, name: str) -> Path:
        return self.cluster_dir(name) / "kubeconfig"

    def provider_record(self, name: str) -> Path:
        return self.cluster_dir(name) / "provider"
