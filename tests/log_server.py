"""A local HTTP server that answers `pods/{name}/log` as the API server and kubelet do.

It serves a recorded log (one `<RFC 3339 nano timestamp> <text>` line each) as a
chunked stream, filtered by `sinceTime` (whole seconds: a line is kept when its
timestamp is not before it) and `tailLines`, like the kubelet. Each request is
answered by the next `Answer` of a script: serve some lines and then drop the
connection, cut a line in half, stall, end cleanly, or fail with an HTTP status.
It records every request, so tests can check how a stream was resumed.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

POD_PATH = "/api/v1/namespaces/ns/pods/p"


@dataclass(frozen=True)
class Answer:
    """How the server answers one log request."""

    lines: int | None = None  # send this many of the matching lines, then break (None: all of them)
    cut: bool = False  # then send half of the next line before breaking
    stall: bool = False  # then send nothing more, keeping the connection open until the client closes it
    end: bool = False  # then end the stream cleanly (as the kubelet does when the container exits)
    status: int | None = None  # answer with this HTTP error status instead
    message: str = ""


@dataclass
class LogServer:
    """The server and what it saw; `url` is its address."""

    log: Sequence[str]
    answers: Sequence[Answer] = ()
    container_states: Sequence[dict[str, Any]] = ({"terminated": {"exitCode": 0}},)
    final_newline: bool = True  # False: the log's last line has no newline
    requests: list[dict[str, str]] = field(default_factory=list)
    pod_reads: int = 0
    disconnected: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def answer_for(self, index: int) -> Answer:
        return self.answers[index] if index < len(self.answers) else Answer()

    def lines_for(self, query: dict[str, str]) -> list[str]:
        lines = list(self.log)
        if "sinceTime" in query:
            since = datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
            lines = [line for line in lines if _second_of(line) >= since]
        if "tailLines" in query:
            count = int(query["tailLines"])
            lines = lines[-count:] if count else []
        return lines


def _second_of(line: str) -> datetime:
    stamp = line.split(" ", 1)[0]
    return datetime.fromisoformat(stamp.split(".")[0].rstrip("Z") + "+00:00")


def _handler(server: LogServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            if parts.path.rstrip("/") == "/version":
                self._json(200, {"major": "1", "minor": "34", "gitVersion": "v1.34.1"})
            elif parts.path == POD_PATH:
                states = server.container_states
                state = states[min(server.pod_reads, len(states) - 1)]
                server.pod_reads += 1
                status = {"containerStatuses": [{"name": "t", "state": state}]}
                self._json(200, {"kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}, "status": status})
            elif parts.path == POD_PATH + "/log":
                index = len(server.requests)
                server.requests.append(query)
                self._stream(server.answer_for(index), server.lines_for(query))
            else:
                self._json(404, {"kind": "Status", "code": 404, "message": f"{parts.path} not found"})

        def _json(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _stream(self, answer: Answer, lines: list[str]) -> None:
            if answer.status is not None:
                status = {"kind": "Status", "status": "Failure", "code": answer.status, "message": answer.message}
                self._json(answer.status, status)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            count = len(lines) if answer.lines is None else answer.lines
            for line in lines[:count]:
                last = line is server.log[-1]
                self._chunk(line.encode() + (b"" if last and not server.final_newline else b"\n"))
            broken = answer.lines is not None and not answer.end
            if answer.cut and count < len(lines):
                whole = lines[count].encode() + b"\n"
                # Promise the whole line, send half of it.
                self.wfile.write(f"{len(whole):x}\r\n".encode() + whole[: len(whole) // 2])
                self.wfile.flush()
            if answer.stall:
                self._wait_for_disconnect()
            elif broken:
                self._drop()
            else:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        def _wait_for_disconnect(self) -> None:
            self.connection.settimeout(60)
            with contextlib.suppress(OSError):
                while self.connection.recv(1024):
                    pass
            server.disconnected.set()
            self.close_connection = True

        def _drop(self) -> None:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

    return Handler


@contextlib.contextmanager
def serving(server: LogServer) -> Iterator[LogServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


def write_kubeconfig(path: Path, url: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": url}}],
        "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "tester"}}],
        "current-context": "local",
    }
    path.write_text(json.dumps(config))
    return path
