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
from tests.chromium_cdp import Chromium

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
        # Another server shows the same last operation: it reads it from the namespace's record.
        other = api_factory("--no-auth", kubeconfig=kube_cluster.kubeconfig)
        elsewhere = chromium("--dump-dom", f"{other.base}/")
        assert elsewhere.returncode == 0, elsewhere.stderr[-2000:]
        operations = elsewhere.stdout.split('<table id="operations">', 1)[1]
        run = next(line for line in operations.split("<tr>") if f"<td>{execution_id}</td>" in line)
        assert "<td>create</td>" in run and 'class="status success"' in run
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


def log_in(browser: Chromium, token: str) -> None:
    """Type the token into the login form and press its button, as a person would."""
    browser.wait_for("document.querySelector('input[name=token]') !== null")
    browser.evaluate("document.querySelector('input[name=token]').focus()")
    browser.call("Input.insertText", {"text": token}, session=True)
    browser.evaluate("window.beforeLogin = true; document.querySelector('form[action=\"/login\"] button').click()")
    browser.wait_for("window.beforeLogin === undefined && document.readyState === 'complete'")


def test_in_chromium_the_token_is_given_through_the_form_and_never_shows_in_the_page_or_url(
    kube_cluster: ClusterInfo, api_factory: ApiFactory
) -> None:
    server = api_factory(kubeconfig=kube_cluster.kubeconfig)
    execution_id = f"dash-{uuid.uuid4().hex[:6]}"
    create(server, execution_id)
    wrong = f"wrong-token-{uuid.uuid4().hex}"
    try:
        with Chromium() as browser:
            browser.open(f"{server.base}/")
            assert "<table" not in browser.html() and 'action="/login"' in browser.html()

            log_in(browser, wrong)
            assert "that token is not valid" in browser.html() and wrong not in browser.html()

            log_in(browser, READ_TOKEN)
            browser.wait_for("document.getElementById('environments') !== null")
            page = browser.html()
            row = next(line for line in page.split("<tr>") if f"<td>{execution_id}</td>" in line)
            assert 'class="status ready"' in row
            assert browser.url() == f"{server.base}/"  # after the login's redirect: no token in the URL
            assert READ_TOKEN not in page and READ_TOKEN not in browser.url()
            visited = browser.evaluate("performance.getEntries().map(e => e.name).join(' ')")
            assert READ_TOKEN not in visited
            assert browser.evaluate("document.cookie") == ""  # HttpOnly: no script can read it
            [cookie] = [c for c in browser.cookies() if c["name"] == "envspec_dashboard"]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["session"]

            # The page reloads itself (meta refresh): the session cookie keeps it open.
            browser.evaluate("window.beforeRefresh = true")
            browser.wait_for("window.beforeRefresh === undefined && document.readyState === 'complete'", 30)
            browser.wait_for("document.getElementById('environments') !== null")
            assert f"<td>{execution_id}</td>" in browser.html() and READ_TOKEN not in browser.html()

            browser.evaluate(
                "window.beforeLogout = true; document.querySelector('form[action=\"/logout\"] button').click()"
            )
            browser.wait_for("window.beforeLogout === undefined && document.readyState === 'complete'")
            assert 'action="/login"' in browser.html() and "<table" not in browser.html()
    finally:
        delete(server, execution_id)
    assert READ_TOKEN not in server.output() and wrong not in server.output()
