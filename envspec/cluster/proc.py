"""Subprocesses, process liveness, ports and locks: the OS-facing helpers of the cluster code."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shlex
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from envspec.errors import EnvspecError


def run(
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, capturing its output; never raises on exit status.

    A missing executable or a timeout becomes a CompletedProcess with returncode 127 or
    124 (the shell conventions) so callers handle one kind of failure.
    """
    try:
        return subprocess.run(
            list(cmd),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            timeout=timeout,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as exc:
        return subprocess.CompletedProcess(list(cmd), 127, "", f"{exc}")
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return subprocess.CompletedProcess(list(cmd), 124, out, err + f"\ntimed out after {timeout}s")


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def describe_failure(result: subprocess.CompletedProcess[str], what: str) -> str:
    output = tail((result.stderr or "") + (result.stdout or ""))
    command = shlex.join(str(a) for a in result.args)
    return f"{what} failed (exit {result.returncode}): {command}" + (f"\n{output}" if output else "")


def run_checked(
    cmd: Sequence[str],
    what: str,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> str:
    """Run a command; return its stdout, or raise a user error quoting its last output lines."""
    result = run(cmd, env=env, cwd=cwd, timeout=timeout)
    if result.returncode != 0:
        raise EnvspecError(describe_failure(result, what))
    return result.stdout


# --- processes -------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True when `pid` is a live process; a zombie counts as dead (it only awaits reaping)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return _kill_zero(pid)
    # The state letter follows the parenthesised command name, which may itself hold spaces.
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def _kill_zero(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def process_argv0(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.split(b"\0", 1)[0].decode(errors="replace") or None


def rss_bytes(pid: int) -> int | None:
    """Resident set size of a process, from /proc/<pid>/status (VmRSS is in kB)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def read_pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


# --- ports -----------------------------------------------------------------------------


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port (checked by binding it, like the servers will)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Go servers set SO_REUSEADDR too: connections of a dead server lingering in
        # TIME_WAIT do not keep it from binding again, only a live listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_port_free(port: int, timeout: float = 5.0, host: str = "127.0.0.1") -> bool:
    """Like port_free, but give a just-killed server's sockets a moment to finish closing.

    Right after a crash, sockets of the dead server can linger in FIN_WAIT states, which
    block a new bind for a second or two just like a live listener would.
    """
    deadline = time.monotonic() + timeout
    while not port_free(port, host):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


# --- locks -----------------------------------------------------------------------------


@contextlib.contextmanager
def file_lock(path: Path, *, waiting: str | None = None, notify: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive flock on `path` for the duration of the block.

    Serialises builds and cluster changes between processes (parallel `make test` runs,
    pytest-xdist workers); the kernel releases the lock if the holder dies.
    `waiting` is passed to `notify` when another process holds the lock.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting and notify is not None:
                notify(waiting)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
