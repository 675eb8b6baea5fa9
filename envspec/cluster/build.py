"""Build the kwok control plane from the Go module proxy and cache the binaries.

Nothing is downloaded as a prebuilt binary: kube-apiserver, kube-controller-manager and
kube-scheduler come from the k8s.io/kubernetes module through a generated wrapper module
(see gomod.py), etcd from go.etcd.io/etcd/server/v3 through another, and kwokctl/kwok
from `go install`. Each component is cached under bin/<component>-<version>/; a build
happens in a temporary directory that is renamed into place only when complete, so an
interrupted build (Ctrl-C, crash, full disk) never leaves an entry that looks usable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from envspec.cluster.gomod import (
    etcd_wrapper_gomod,
    go_directive,
    kubernetes_wrapper_gomod,
    staging_modules,
    tools_go,
    version_ldflags,
)
from envspec.cluster.paths import Layout
from envspec.cluster.proc import file_lock, run, tail
from envspec.cluster.progress import Progress, format_elapsed
from envspec.errors import EnvspecError

# Pinned releases. Kubernetes 1.34 is inside kr8s 0.20's supported range (1.28-1.35);
# kubeadm pairs 1.34 with etcd 3.6. Changing a pin changes the cache key: old entries stay
# until the cache directory is cleaned.
KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.7.0"

MIN_GO = (1, 24)  # kwok v0.7 and Kubernetes 1.34 need it; newer toolchains are fetched by Go itself
HEARTBEAT_SECONDS = 30.0
MARKER = ".envspec-build.json"  # written last into a finished entry


@dataclass(frozen=True)
class Component:
    """One cached build: its binaries share a version and a cache key."""

    name: str
    version: str
    binaries: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


KWOK = Component("kwok", KWOK_VERSION, ("kwokctl", "kwok"))
ETCD = Component("etcd", ETCD_VERSION, ("etcd",))
KUBERNETES = Component(
    "kubernetes", KUBERNETES_VERSION, ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
)
COMPONENTS = (KWOK, ETCD, KUBERNETES)  # cheapest first, so a broken toolchain fails fast


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of everything the kwok provider runs."""

    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    etcd: Path
    kwok: Path
    kwokctl: Path

    @classmethod
    def in_layout(cls, layout: Layout) -> Binaries:
        kube = layout.entry(KUBERNETES.key)
        return cls(
            kube_apiserver=kube / "kube-apiserver",
            kube_controller_manager=kube / "kube-controller-manager",
            kube_scheduler=kube / "kube-scheduler",
            etcd=layout.entry(ETCD.key) / "etcd",
            kwok=layout.entry(KWOK.key) / "kwok",
            kwokctl=layout.entry(KWOK.key) / "kwokctl",
        )


class BuildError(EnvspecError):
    """A build step failed; the message names the log file."""


# --- the Go toolchain ------------------------------------------------------------------

GO_MISSING = (
    "Go is not installed (no `go` on PATH). The local cluster builds etcd, kube-apiserver, "
    "kube-controller-manager, kube-scheduler and kwok from source on first use: install Go "
    "{min} or newer from https://go.dev/dl/ (or your distribution's golang package), "
    "or use `envspec cluster up --provider kind` on a machine with Docker and kind."
)


@dataclass(frozen=True)
class GoToolchain:
    go: str
    version: str  # as `go env GOVERSION` prints it, e.g. go1.26.8


def parse_go_version(text: str) -> tuple[int, int] | None:
    match = re.search(r"go(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def find_go() -> GoToolchain:
    # /usr/local/go is where the official tarball installs; it is often not on PATH.
    go = shutil.which("go") or next((p for p in ("/usr/local/go/bin/go",) if os.access(p, os.X_OK)), None)
    minimum = f"{MIN_GO[0]}.{MIN_GO[1]}"
    if go is None:
        raise EnvspecError(GO_MISSING.format(min=minimum))
    result = run([go, "env", "GOVERSION"], timeout=60)
    version = result.stdout.strip()
    parsed = parse_go_version(version)
    if result.returncode != 0 or parsed is None:
        raise EnvspecError(f"`{go} env GOVERSION` failed: {tail(result.stderr)}")
    if parsed < MIN_GO:
        raise EnvspecError(f"{go} is {version}; the local cluster needs Go {minimum} or newer (https://go.dev/dl/)")
    return GoToolchain(go=go, version=version)


def go_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every go command we run."""
    env = dict(os.environ)
    env.update(
        {
            # A user's GOFLAGS (-mod=vendor, ...) or a go.work above the cache directory
            # must not change what gets built.
            "GOFLAGS": "-buildvcs=false",
            "GOWORK": "off",
            "GO111MODULE": "on",
            # Static binaries, as upstream releases them; no C compiler needed.
            "CGO_ENABLED": "0",
        }
    )
    env.update(extra or {})
    return env


# --- running go with a log and a heartbeat ---------------------------------------------

_PACKAGE_LINE = re.compile(r"^[\w.-]+(/[\w.~+-]+)+$")


class _BuildSession:
    """Runs the go commands of one component build, logging everything to one file."""

    def __init__(self, go: GoToolchain, component: Component, log_path: Path, progress: Progress) -> None:
        self.go = go
        self.component = component
        self.log_path = log_path
        self.progress = progress
        self.log: TextIO = log_path.open("w")
        self.log.write(f"# envspec build of {component.label} with {go.version} ({go.go})\n")
        self.log.flush()

    def close(self) -> None:
        self.log.close()

    def mod_download(self, module: str, cwd: Path) -> dict[str, Any]:
        """`go mod download -json module@version`: where Go put its go.mod, .info and sources."""
        cmd = [self.go.go, "mod", "download", "-json", module]
        self._header(cmd, cwd)
        result = run(cmd, env=go_env(), cwd=cwd)
        self.log.write(result.stdout + result.stderr)
        self.log.flush()
        try:
            info: dict[str, Any] = json.loads(result.stdout)
        except json.JSONDecodeError:
            info = {}
        if result.returncode != 0 or "GoMod" not in info:
            detail = str(info.get("Error") or tail(result.stderr))
            raise BuildError(self._failure(cmd, result.returncode, detail))
        return info

    def run_go(self, args: Sequence[str], cwd: Path, extra_env: Mapping[str, str] | None = None) -> None:
        cmd = [self.go.go, *args]
        self._header(cmd, cwd, extra_env)
        start = time.monotonic()
        log_start = self.log.tell()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=go_env(extra_env), stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        try:
            while True:
                try:
                    code = proc.wait(timeout=HEARTBEAT_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    self.progress.step(
                        f"{self.component.label}: go {args[0]} running for "
                        f"{format_elapsed(time.monotonic() - start)}, {self._activity(log_start)}"
                    )
        except BaseException:
            # Ctrl-C or an error of ours: do not leave a compiler running behind us.
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        if code != 0:
            self.log.flush()
            detail = tail(self._log_since(log_start), 20)
            raise BuildError(self._failure(cmd, code, detail))

    def _activity(self, log_start: int) -> str:
        lines = self._log_since(log_start).splitlines()
        downloads = sum(1 for line in lines if line.startswith("go: downloading "))
        packages = sum(1 for line in lines if _PACKAGE_LINE.match(line))
        return f"{packages} packages compiled, {downloads} modules downloaded"

    def _log_since(self, offset: int) -> str:
        self.log.flush()
        return self.log_path.read_bytes()[offset:].decode(errors="replace")

    def _header(self, cmd: Sequence[str], cwd: Path, extra_env: Mapping[str, str] | None = None) -> None:
        env = " ".join(f"{k}={v}" for k, v in (extra_env or {}).items())
        self.log.write(f"\n$ (cd {cwd} && {env + ' ' if env else ''}{' '.join(cmd)})\n")
        self.log.flush()

    def _failure(self, cmd: Sequence[str], code: int, detail: str) -> str:
        shown = " ".join(cmd[1:3])
        return (
            f"building {self.component.label} failed: `go {shown} ...` exited with {code}\n"
            f"{detail}\nFull log: {self.log_path}"
        )


# --- the three recipes -----------------------------------------------------------------


def build_kwok(session: _BuildSession, workdir: Path, out: Path) -> None:
    # kwok's go.mod has no replace directives, so plain `go install pkg@version` works.
    version = session.component.version
    session.run_go(
        [
            "install",
            "-v",
            "-trimpath",
            "-ldflags=-s -w",
            f"sigs.k8s.io/kwok/cmd/kwokctl@{version}",
            f"sigs.k8s.io/kwok/cmd/kwok@{version}",
        ],
        cwd=workdir,
        extra_env={"GOBIN": str(out)},
    )


def build_etcd(session: _BuildSession, workdir: Path, out: Path) -> None:
    version = session.component.version
    module = "go.etcd.io/etcd/server/v3"
    info = session.mod_download(f"{module}@{version}", cwd=workdir)
    go_version = go_directive(Path(info["GoMod"]).read_text()) or f"{MIN_GO[0]}.{MIN_GO[1]}"
    src = workdir / "src"
    src.mkdir()
    (src / "go.mod").write_text(etcd_wrapper_gomod(version, go_version))
    (src / "tools.go").write_text(tools_go([module]))
    session.run_go(["mod", "tidy"], cwd=src)
    # etcd's version string is a variable already holding the release number in the
    # module source; only GitSHA (unknown for a module build) stays at its placeholder.
    session.run_go(["build", "-v", "-trimpath", "-ldflags=-s -w", "-o", str(out / "etcd"), module], cwd=src)
    _keep_wrapper(src, out)


KUBE_COMMANDS = tuple(f"k8s.io/kubernetes/cmd/{name}" for name in KUBERNETES.binaries)


def build_kubernetes(session: _BuildSession, workdir: Path, out: Path) -> None:
    version = session.component.version
    info = session.mod_download(f"k8s.io/kubernetes@{version}", cwd=workdir)
    release_gomod = Path(info["GoMod"]).read_text()
    staging = staging_modules(release_gomod)
    if not staging:
        raise BuildError(f"k8s.io/kubernetes {version}: its go.mod lists no v0.0.0 staging modules ({info['GoMod']})")
    # The release date of the tag stands in for a build date: reproducible and meaningful.
    build_date = json.loads(Path(info["Info"]).read_text()).get("Time", "1970-01-01T00:00:00Z")
    go_version = go_directive(release_gomod) or f"{MIN_GO[0]}.{MIN_GO[1]}"
    src = workdir / "src"
    src.mkdir()
    (src / "go.mod").write_text(kubernetes_wrapper_gomod(version, go_version, staging))
    (src / "tools.go").write_text(tools_go(KUBE_COMMANDS))
    session.run_go(["mod", "tidy"], cwd=src)
    ldflags = " ".join(["-s", "-w", *version_ldflags(version, build_date)])
    # One invocation for the three commands: they share most packages.
    session.run_go(["build", "-v", "-trimpath", f"-ldflags={ldflags}", "-o", f"{out}/", *KUBE_COMMANDS], cwd=src)
    _keep_wrapper(src, out)


def _keep_wrapper(src: Path, out: Path) -> None:
    """Keep the generated go.mod/go.sum beside the binaries: they say exactly what was built."""
    keep = out / "wrapper"
    keep.mkdir()
    for name in ("go.mod", "go.sum"):
        if (src / name).exists():
            shutil.copy2(src / name, keep / name)


RECIPES: dict[str, Callable[[_BuildSession, Path, Path], None]] = {
    KWOK.name: build_kwok,
    ETCD.name: build_etcd,
    KUBERNETES.name: build_kubernetes,
}

# What `<binary> --version` must print for the build to count: catches wrong ldflags.
EXPECTED_VERSION_TEXT: dict[str, str] = {
    "kube-apiserver": f"Kubernetes {KUBERNETES_VERSION}",
    "kube-controller-manager": f"Kubernetes {KUBERNETES_VERSION}",
    "kube-scheduler": f"Kubernetes {KUBERNETES_VERSION}",
    "etcd": f"etcd Version: {ETCD_VERSION.lstrip('v')}",
    "kwokctl": KWOK_VERSION,
    "kwok": KWOK_VERSION,
}


# --- the cache -------------------------------------------------------------------------


def entry_complete(entry: Path, component: Component) -> bool:
    """A finished entry has its marker and every binary, executable."""
    if not (entry / MARKER).is_file():
        return False
    return all(os.access(entry / name, os.X_OK) for name in component.binaries)


Builder = Callable[[Path, Path], None]  # (scratch directory, output directory) -> None


def install_entry(layout: Layout, component: Component, progress: Progress, builder: Builder) -> tuple[Path, bool]:
    """Return the cache entry of `component`, building it with `builder` if needed.

    The second value is True when a build happened. The builder fills an output
    directory inside a temporary directory next to the entry; only a complete output is
    renamed into place (an atomic rename on one filesystem).
    """
    entry = layout.entry(component.key)
    if entry_complete(entry, component):
        return entry, False
    layout.bin_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(
        layout.lock(f"build-{component.key}"),
        waiting=f"{component.label}: waiting for another envspec process building it",
        notify=progress.step,
    ):
        if entry_complete(entry, component):
            return entry, False  # another process built it while we waited
        if entry.exists():
            shutil.rmtree(entry)  # hand-damaged entry: rebuild it whole
        for stale in layout.bin_dir.glob(f".tmp-{component.key}-*"):
            # Left by a killed build of this key; we hold its lock, so nobody uses it.
            shutil.rmtree(stale, ignore_errors=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".tmp-{component.key}-", dir=layout.bin_dir))
        try:
            work, out = scratch / "work", scratch / "out"
            work.mkdir()
            out.mkdir()
            builder(work, out)
            missing = [name for name in component.binaries if not os.access(out / name, os.X_OK)]
            if missing:
                raise BuildError(f"building {component.label} produced no {', '.join(missing)} in {out}")
            os.rename(out, entry)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return entry, True


def _verify_versions(out: Path, component: Component) -> dict[str, str]:
    reported: dict[str, str] = {}
    for name in component.binaries:
        result = run([str(out / name), "--version"], timeout=60)
        text = (result.stdout + result.stderr).strip()
        expected = EXPECTED_VERSION_TEXT.get(name, "")
        if result.returncode != 0 or expected not in text:
            raise BuildError(f"{out / name} --version printed {text!r}, expected it to contain {expected!r}")
        reported[name] = text.splitlines()[0] if text else ""
    return reported


def ensure_binaries(layout: Layout, progress: Progress) -> Binaries:
    """Build whatever is missing from the cache (Go needed only then); return the paths."""
    pending = [c for c in COMPONENTS if not entry_complete(layout.entry(c.key), c)]
    if not pending:
        progress.step("binaries: cached (" + ", ".join(c.label for c in COMPONENTS) + ")")
        return Binaries.in_layout(layout)
    go = find_go()
    layout.logs_dir.mkdir(parents=True, exist_ok=True)
    for component in COMPONENTS:
        if component not in pending:
            progress.step(f"{component.label}: cached")
            continue
        log_path = layout.build_log(component.key)
        started = time.monotonic()
        progress.step(f"{component.label}: building with {go.version} (first use; log: {log_path})")

        def builder(workdir: Path, out: Path, component: Component = component, log_path: Path = log_path) -> None:
            session = _BuildSession(go, component, log_path, progress)
            try:
                recipe_started = time.monotonic()
                RECIPES[component.name](session, workdir, out)
                versions = _verify_versions(out, component)
                marker = {
                    "component": component.name,
                    "version": component.version,
                    "go": go.version,
                    "seconds": round(time.monotonic() - recipe_started, 1),
                    "reported_versions": versions,
                }
                (out / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            finally:
                session.close()

        _, built = install_entry(layout, component, progress, builder)
        if built:
            progress.step(f"{component.label}: built in {format_elapsed(time.monotonic() - started)}")
        else:
            progress.step(f"{component.label}: cached (built by another process)")
    return Binaries.in_layout(layout)
