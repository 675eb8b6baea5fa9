"""Transient failures between envspec and the real API server: retries, watch resumption.

A small TCP proxy sits between envspec and the local control plane and, on demand,
resets every connection or refuses new ones for a while, as a flaky network or a
restarting API server would. Everything else is the real API server.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from ruamel.yaml import YAML

from envspec.errors import ClusterError
from envspec.kube import kinds
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.informer import Informer
from envspec.kube.ssa import list_objects, server_side_apply

pytestmark = pytest.mark.cluster


class FaultyProxy:
    """Forwards TCP to the API server; `reset_for` and `refuse_for` break it for a while."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._resetting_until = 0.0
        self._stopped = False
        self._listen()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # listener closed
            if time.monotonic() < self._resetting_until:
                self._reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                self._reset(client)
                continue
            with self._lock:
                self._open.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _reset(connection: socket.socket) -> None:
        # SO_LINGER with a zero timeout makes close() send RST: "connection reset by peer".
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        connection.close()

    def _reset_open_connections(self) -> None:
        with self._lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    self._reset(connection)
            self._open.clear()

    def reset_for(self, seconds: float) -> None:
        """Reset every open connection and every new one for `seconds`."""
        self._resetting_until = time.monotonic() + seconds
        self._reset_open_connections()

    def refuse_for(self, seconds: float) -> None:
        """Stop listening (connection refused) for `seconds`, then listen on the same port again."""
        self._close_listener()
        self._reset_open_connections()

        def reopen() -> None:
            time.sleep(seconds)
            if not self._stopped:
                self._listen()

        threading.Thread(target=reopen, daemon=True).start()

    def _close_listener(self) -> None:
        if self._listener is not None:
            # shutdown() first: on Linux, close() alone neither stops a blocked accept() nor the listening.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()

    def stop(self) -> None:
        self._stopped = True
        self._close_listener()
        self._reset_open_connections()


@pytest.fixture
def proxy(kube_cluster: Any, tmp_path: Path) -> Iterator[tuple[FaultyProxy, ClusterTarget]]:
    config = YAML(typ="safe", pure=True).load(Path(kube_cluster.kubeconfig).read_text())
    cluster = config["clusters"][0]["cluster"]
    host, port = cluster["server"].removeprefix("https://").rsplit(":", 1)
    faulty = FaultyProxy((host, int(port)))
    cluster["server"] = f"https://{host}:{faulty.port}"  # same host: the serving certificate still matches
    path = tmp_path / "kubeconfig"
    with path.open("w") as out:
        YAML(typ="safe", pure=True).dump(config, out)
    yield faulty, ClusterTarget(str(path))
    faulty.stop()


def run(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return anyio.run(partial(function, *args, **kwargs))


@pytest.mark.parametrize("fault", ["reset", "refuse"])
def test_requests_are_retried_through_a_short_outage(proxy: tuple[FaultyProxy, ClusterTarget], fault: str) -> None:
    faulty, target = proxy

    async def list_during_outage() -> tuple[int, float]:
        async with connect(target) as api:
            (faulty.reset_for if fault == "reset" else faulty.refuse_for)(1.5)
            started = time.monotonic()
            listing = await list_objects(api, kinds.NAMESPACE, None, deadline=Deadline(30))
            return len(listing.items), time.monotonic() - started

    count, seconds = run(list_during_outage)
    assert count >= 4  # default, kube-system, ...: the real answer, after the outage
    assert seconds >= 1.2  # it waited the outage out (no upper bound: the machine is shared)


def test_retries_stop_at_the_deadline_with_a_clear_message(proxy: tuple[FaultyProxy, ClusterTarget]) -> None:
    faulty, target = proxy
    name = "never-" + uuid.uuid4().hex[:6]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}

    async def apply_during_outage() -> None:
        async with connect(target) as api:
            faulty.reset_for(30)
            await server_side_apply(api, kinds.NAMESPACE, namespace, deadline=Deadline(2))

    with pytest.raises(ClusterError) as failure:
        run(apply_during_outage)
    assert failure.value.message.startswith(f"applying namespace/{name}: ")
    assert "gave up after" in failure.value.message


def test_a_watch_resumes_when_the_server_ends_it(kube_cluster: Any, kube_namespace: str) -> None:
    """kube-apiserver ends every watch after its timeout; the informer resumes without relisting."""
    target = ClusterTarget(str(kube_cluster.kubeconfig))
    config_maps = kinds.MANAGED_KINDS[("v1", "ConfigMap")]

    async def watch_while_creating() -> Informer:
        async with connect(target) as api:
            informer = Informer(api, config_maps, kube_namespace, on_change=lambda: None)
            informer.watch_seconds = 1  # the server closes the stream after a second
            async with anyio.create_task_group() as group:
                group.start_soon(informer.run)
                await informer.synced.wait()
                for index in range(3):
                    manifest = {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": f"made-{index}", "namespace": kube_namespace},
                    }
                    await server_side_apply(api, config_maps, manifest, deadline=Deadline(10))
                    await anyio.sleep(1.3)
                await anyio.sleep(0.5)
                group.cancel_scope.cancel()
            return informer

    informer = run(watch_while_creating)
    assert {"made-0", "made-1", "made-2"} <= {key.split("/")[1] for key in informer.objects}
    assert informer.resumes >= 2 and informer.relists == 0


def test_a_watch_survives_dropped_connections(proxy: tuple[FaultyProxy, ClusterTarget], kube_namespace: str) -> None:
    faulty, target = proxy
    config_maps = kinds.MANAGED_KINDS[("v1", "ConfigMap")]

    async def watch_across_resets() -> Informer:
        async with connect(target) as api:
            informer = Informer(api, config_maps, kube_namespace, on_change=lambda: None)
            async with anyio.create_task_group() as group:
                group.start_soon(informer.run)
                await informer.synced.wait()
                faulty.reset_for(1.0)
                await anyio.sleep(1.2)
                manifest = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "after", "namespace": kube_namespace},
                }
                await server_side_apply(api, config_maps, manifest, deadline=Deadline(10))
                with anyio.fail_after(15):
                    while informer.get("after", kube_namespace) is None:
                        await anyio.sleep(0.05)
                group.cancel_scope.cancel()
            return informer

    informer = run(watch_across_resets)
    assert informer.get("after", kube_namespace) is not None
