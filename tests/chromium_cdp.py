"""Driving the real headless Chromium (Debian `chromium`) through the DevTools protocol, for
tests that act in a page as a person would (fill a form, press its button) rather than only
load it (`--dump-dom`).

Chromium speaks the protocol over a pair of pipes with `--remote-debugging-pipe`: it reads
commands from its file descriptor 3 and writes answers and events to 4, each message JSON
ended by a NUL byte. No websocket client is needed. One page target is opened and attached
with `flatten`, so every page command carries its `sessionId`.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from types import TracebackType
from typing import Any

import pytest

COMMAND_TIMEOUT = 60.0
TRAMPOLINE = (
    "import fcntl, os, sys\n"
    "high = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3]]\n"
    "os.dup2(high[0], 3)\n"
    "os.dup2(high[1], 4)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n"
)


class Chromium:
    """One headless Chromium with one page; `with Chromium() as browser: browser.open(url)`."""

    def __init__(self) -> None:
        binary = shutil.which("chromium")
        if binary is None:
            pytest.fail("chromium is not installed (Debian package chromium; .ci/run installs it)")
        self.binary = binary
        self.profile = tempfile.mkdtemp(prefix="envspec-chromium-")
        self.process: subprocess.Popen[bytes] | None = None
        self._to_browser = -1
        self._from_browser = -1
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None

    def __enter__(self) -> Chromium:
        # Chromium reads commands from its fd 3 and writes to its fd 4: a small trampoline puts the
        # pipes' ends there (by way of high numbers, so that neither end overwrites the other) and
        # executes chromium.
        commands_read, commands_write = os.pipe()
        answers_read, answers_write = os.pipe()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                TRAMPOLINE,
                str(commands_read),
                str(answers_write),
                self.binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--remote-debugging-pipe",
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(commands_read, answers_write),
        )
        os.close(commands_read)
        os.close(answers_write)
        self._to_browser, self._from_browser = commands_write, answers_read
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(30)
        for descriptor in (self._to_browser, self._from_browser):
            if descriptor >= 0:
                os.close(descriptor)
        shutil.rmtree(self.profile, ignore_errors=True)

    # ---------------------------------------------------------------- the protocol

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: bool = False) -> dict[str, Any]:
        """Send one command and return its result (events that come in between are dropped)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + COMMAND_TIMEOUT
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise AssertionError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result

    def _read(self, deadline: float) -> dict[str, Any]:
        with selectors.DefaultSelector() as selector:
            selector.register(self._from_browser, selectors.EVENT_READ)
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise AssertionError("chromium did not answer in time")
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise AssertionError("chromium closed its DevTools pipe")
                self._buffer += chunk
        text, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(text)
        return message

    # ---------------------------------------------------------------- the page

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def wait_for(self, condition: str, timeout: float = COMMAND_TIMEOUT) -> None:
        """Until the expression is true in the page (a bounded wait for the page to get there)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.evaluate(f"Boolean({condition})"):
                    return
            except AssertionError:
                pass  # the page is being replaced (a navigation): ask again
            assert time.monotonic() < deadline, f"the page never got to: {condition}"
            time.sleep(0.1)

    def html(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))

    def url(self) -> str:
        return str(self.evaluate("location.href"))

    def cookies(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call("Network.getCookies", session=True).get("cookies", [])
        return found
