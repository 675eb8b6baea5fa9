"""Fixtures for tests that need a real Redis (marked `redis`).

`redis_server` (session) runs one `redis-server` (the Debian package) on a free loopback
port with its own temporary directory and no persistence (`--save ''`, `--appendonly
no`); `redis_url` (function) flushes it and gives its URL, so tests share one process
without seeing each other's keys. Tests that stop or restart Redis (outages) or need a
password get their own server from `redis_factory`, stopped when the test ends; a
restarted server keeps its port, so clients can reconnect to the same URL.

When `redis-server` is not installed, every test using these fixtures FAILS with the
reason: never skipped (`.ci/run` installs it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

# conftest.py star-imports this module: export only the fixtures.
__all__ = ["redis_factory", "redis_server", "redis_url"]

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process; `stop`/`start`/`restart` keep the port and the directory."""

    def __init__(self, directory: Path, *, password: str | None = None, persistent: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
        self.binary = binary
        self.directory = directory
        self.password = password
        self.persistent = persistent
        self.port = free_loopback_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def log_file(self) -> Path:
        return self.directory / "redis.log"

    def argv(self) -> list[str]:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.log_file),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        else:
            args += ["--save", "", "--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        return args

    def client(self) -> redis.Redis:
        """A synchronous client for the test's own checks (decoded strings)."""
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            decode_responses=True,
            socket_timeout=10,
            socket_connect_timeout=2,
        )

    def start(self) -> None:
        if self.running:
            return
        self.process = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
                pytest.fail(f"redis-server exited with {self.process.returncode}: {stderr.strip()} {log[-2000:]}")
            try:
                with self.client() as probe:
                    if probe.ping():
                        return
            except redis.ConnectionError:
                time.sleep(0.05)
        pytest.fail(f"redis-server did not answer on port {self.port} within {START_TIMEOUT:.0f}s")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL): clients see the connection drop."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
        if process.stderr is not None:
            process.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory(prefix="envspec-redis-") as directory:
        server = RedisServer(Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The shared server's URL, emptied for this test (and restarted if a test left it down)."""
    redis_server.start()
    with redis_server.client() as client:
        client.flushall()
    return redis_server.url


RedisFactory = Callable[..., RedisServer]


def stream_entries(
    url: str, stream: str, *, newest_first: bool = False, count: int | None = None
) -> list[dict[str, str]]:
    """The fields of a stream's entries (oldest first unless `newest_first`), decoded, for a test's checks."""
    with redis.Redis.from_url(url, decode_responses=True, socket_timeout=10) as client:
        reply: Any = client.xrevrange(stream, count=count) if newest_first else client.xrange(stream, count=count)
    return [dict(fields) for _id, fields in reply]


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[RedisFactory]:
    """`redis_factory(password=None, persistent=False)`: a started server of this test's own."""
    servers: list[RedisServer] = []

    def make(*, password: str | None = None, persistent: bool = False) -> RedisServer:
        directory = tmp_path / f"redis-{len(servers)}"
        directory.mkdir()
        server = RedisServer(directory, password=password, persistent=persistent)
        servers.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()
