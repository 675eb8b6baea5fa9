"""Fixtures for tests of `envspec serve`: real uvicorn processes on free loopback ports.

`api_factory` (function) starts `python -m envspec serve` as a user would, with the
tokens and variables a test gives, waits until `/health` answers, and stops every
server it started when the test ends (SIGTERM, then SIGKILL). Its output is kept in a
file, so a test can check what the server logged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from tests.redis_fixtures import free_loopback_port

# conftest.py star-imports this module: export only the fixtures.
__all__ = ["api_factory"]

PREFIX = "/api/v1/k8s-execution"
WRITE_TOKEN = "write-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


class ApiServer:
    """One `envspec serve` process."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.args = list(args)
        self.env = dict(env)
        self.log = log
        self.port = free_loopback_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base}{PREFIX}{path}"

    def start(self) -> ApiServer:
        command = [sys.executable, "-m", "envspec", "serve", "--port", str(self.port), *self.args]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"envspec serve exited with {self.process.returncode}:\n{self.output()}", pytrace=False)
            try:
                httpx.get(self.url("/health"), timeout=10)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        pytest.fail(f"envspec serve did not answer within {START_TIMEOUT:g}s:\n{self.output()}", pytrace=False)

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)

    def restart(self) -> ApiServer:
        """Stop (SIGKILL: no graceful end for running operations) and start again on the same port."""
        self.stop(kill=True)
        return self.start()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(self, token: str | None = WRITE_TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"{self.base}{PREFIX}", headers=headers, timeout=120)


class ApiFactory(Protocol):
    def __call__(
        self, *args: str, kubeconfig: str | None = None, env: Mapping[str, str] | None = None, start: bool = True
    ) -> ApiServer: ...


def server_env(kubeconfig: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("K8S_IN_CLUSTER", "REDIS_URL", "ENVSPEC_API_TOKENS")}
    env["KUBECONFIG"] = kubeconfig or "/nonexistent/kubeconfig"
    env["ENVSPEC_API_TOKENS"] = f"{WRITE_TOKEN},{READ_TOKEN}:read"
    env["K8S_NAMESPACE_PREFIX"] = "quality-fabric"
    env.update(extra or {})
    return env


@pytest.fixture
def api_factory() -> Iterator[ApiFactory]:
    servers: list[ApiServer] = []
    directory = Path(tempfile.mkdtemp(prefix="envspec-api-"))

    def make(
        *args: str, kubeconfig: str | None = None, env: Mapping[str, str] | None = None, start: bool = True
    ) -> ApiServer:
        server = ApiServer(args, server_env(kubeconfig, env), directory / f"server-{len(servers)}.log")
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop()


def json_of(response: httpx.Response) -> Any:
    assert response.headers.get("content-type", "").startswith("application/json"), response.text
    return response.json()
