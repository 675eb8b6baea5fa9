"""The dashboard at `GET /`: loaded in a real headless Chromium (Debian `chromium`) against a
server on the local cluster, it shows the environments; its token is given once in a form
and kept in a session cookie that opens the dashboard only, never the API."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from envspec.cluster import ClusterInfo
from tests.api_fixtures import READ_TOKEN, ApiFactory, ApiServer

pytestmark = pytest.mark.cluster

CONFIG = {"app_image": "myapp:latest", "app_port": 8000, "database": "redis", "ttl_minutes": 45}


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed (Debian package chromium; .ci/run installs it)")
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def create(server: ApiServer, execution_id: str) -> None:
    with server.client() as client:
        assert client.post("/environments", json={"execution_id": execution_id, "config": CONFIG}).status_code == 202
        ready = client.get(f"/environments/{execution_id}", params={"wait": 120}).json()
        assert ready["status"] == "ready", ready


def delete(server: ApiServer, execution_id: str) -> None:
    with server.client() as client:
        client.delete(f"/environments/{execution_id}")
        client.get(f"/environments/{execution_id}", params={"wait": 120})


def test_the_dashboard_in_headless_chromium_shows_the_environments(
    kube_cluster: ClusterInfo, api_factory: ApiFactory, tmp_path: Path
) -> None:
    server = api_factory("--no-auth", kubeconfig=kube_cluster.kubeconfig)
    execution_id = f"dash-{uuid.uuid4().hex[:6]}"
    create(server, execution_id)
    try:
        dom = chromium("--dump-dom", f"{server.base}/")
        assert dom.returncode == 0, dom.stderr[-2000:]
        page = dom.stdout
        assert '<table id="environments">' in page
        row = next(line for line in page.split("<tr>") if f"<td>{execution_id}</td>" in line)
        assert f"<td>quality-fabric-{execution_id}</td>" in row and 'class="status ready"' in row
        assert '<table id="operations">' in page and "create" in page and 'class="status success"' in page
        assert "http://" not in page.replace(server.base, "") and "https://" not in page  # no external asset
        screenshot = tmp_path / "dashboard.png"
        shot = chromium("--window-size=1200,700", "--hide-scrollbars", f"--screenshot={screenshot}", f"{server.base}/")
        assert shot.returncode == 0, shot.stderr[-2000:]
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        delete(server, execution_id)


def test_the_dashboard_token_is_a_session_cookie_for_the_dashboard_only(
    kube_cluster: ClusterInfo, api_factory: ApiFactory
) -> None:
    server = api_factory(kubeconfig=kube_cluster.kubeconfig)
    with httpx.Client(base_url=server.base) as browser:
        first = browser.get("/")
        assert first.status_code == 200 and 'action="/login"' in first.text and "<table" not in first.text
        wrong = browser.post("/login", data={"token": "not-a-token-0123456789"})
        assert wrong.status_code == 401 and "that token is not valid" in wrong.text
        assert "not-a-token" not in wrong.text
        given = browser.post("/login", data={"token": READ_TOKEN}, follow_redirects=False)
        assert given.status_code == 303 and given.headers["location"] == "/"
        cookie = given.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "expires" not in cookie
        shown = browser.get("/")
        assert shown.status_code == 200 and '<table id="environments">' in shown.text
        assert READ_TOKEN not in shown.text
        api = browser.get("/api/v1/k8s-execution/environments")  # the cookie is sent, and not honoured
        assert api.status_code == 401
        browser.post("/logout")
        assert 'action="/login"' in browser.get("/").text
    assert READ_TOKEN not in server.output()
