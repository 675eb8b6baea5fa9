"""`envspec serve` without a cluster: a real uvicorn process whose kubeconfig does not exist.

What must hold before any cluster is asked: the routes and the OpenAPI document, the
offline docs, auth on every endpoint, 422 with JSON paths, 413, JSON 404/405, 503 when
the Kubernetes API cannot be reached, refusing to start without tokens, and no token
in any answer or log line.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api_fixtures import PREFIX, READ_TOKEN, WRITE_TOKEN, ApiServer, json_of, server_env

# (method, path, writes) of every endpoint that needs a token.
ENDPOINTS = [
    ("POST", "/environments", True),
    ("GET", "/environments", False),
    ("GET", "/environments/test-001", False),
    ("DELETE", "/environments/test-001", True),
    ("POST", "/environments/test-001/extend", True),
    ("GET", "/environments/test-001/events", False),
    ("POST", "/jobs", True),
    ("GET", "/jobs/job-1", False),
    ("POST", "/cleanup", True),
]
CREATE: dict[str, object] = {
    "execution_id": "test-001",
    "config": {"app_image": "myapp:latest", "app_port": 8000, "database": "postgresql"},
}


@pytest.fixture(scope="module")
def offline() -> Iterator[ApiServer]:
    server = ApiServer([], server_env(None, None), Path(tempfile.mkdtemp(prefix="envspec-api-")) / "server.log")
    server.start()
    yield server
    server.stop()


def body_for(method: str, path: str) -> dict[str, object] | None:
    if method == "POST" and path == "/environments":
        return CREATE
    if method == "POST" and path == "/jobs":
        return {"environment_id": "test-001", "test_image": "tests:1", "test_command": "pytest"}
    return {} if method == "POST" else None


def test_the_routes_are_the_originals_under_the_prefix(offline: ApiServer) -> None:
    document = json_of(httpx.get(f"{offline.base}/openapi.json"))
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) == {
        f"{PREFIX}/health",
        f"{PREFIX}/environments",
        f"{PREFIX}/environments/{{environment_id}}",
        f"{PREFIX}/environments/{{environment_id}}/extend",
        f"{PREFIX}/environments/{{environment_id}}/events",
        f"{PREFIX}/jobs",
        f"{PREFIX}/jobs/{{job_id}}",
        f"{PREFIX}/cleanup",
    }
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_the_docs_load_nothing_from_another_host(offline: ApiServer) -> None:
    page = httpx.get(f"{offline.base}/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/docs/assets/") for a in assets), assets
    assert "//" not in " ".join(re.findall(r"url: '([^']+)'", page.text))
    for asset in assets:
        served = httpx.get(f"{offline.base}{asset}")
        assert served.status_code == 200 and len(served.content) > 0, asset
    script = httpx.get(f"{offline.base}/docs/assets/swagger-ui-bundle.js").text
    assert "isOAS31" in script  # a Swagger UI that renders OpenAPI 3.1, as FastAPI writes it


def test_health_needs_no_token_and_says_the_cluster_is_unreachable(offline: ApiServer) -> None:
    answer = httpx.get(offline.url("/health"))
    assert answer.status_code == 200
    health = json_of(answer)
    assert health["status"] == "degraded" and health["kubernetes"]["reachable"] is False
    assert "no kubeconfig" in health["kubernetes"]["error"] and health["redis"] is None


@pytest.mark.parametrize(("method", "path", "writes"), ENDPOINTS)
def test_every_endpoint_but_health_needs_a_token(offline: ApiServer, method: str, path: str, writes: bool) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": f"Basic {WRITE_TOKEN}"}):
        answer = httpx.request(method, offline.url(path), json=body_for(method, path), headers=headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"
        assert json_of(answer)["detail"] == "a valid bearer token is required"
    read_only = httpx.request(
        method, offline.url(path), json=body_for(method, path), headers={"Authorization": f"Bearer {READ_TOKEN}"}
    )
    if writes:
        assert read_only.status_code == 403 and json_of(read_only)["detail"] == "this token may only read"
    else:  # allowed; the cluster cannot be reached from this server
        assert read_only.status_code in (404, 503), read_only.text


def test_an_unreachable_cluster_is_503_with_the_reason(offline: ApiServer) -> None:
    with offline.client() as client:
        answer = client.get("/environments")
    assert answer.status_code == 503 and "no kubeconfig at /nonexistent/kubeconfig" in json_of(answer)["detail"]


def problems_of(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 422, answer.text
    body = json_of(answer)
    assert body["detail"] == "invalid request"
    return [f"{p['path']}: {p['message']}" if p["path"] else p["message"] for p in body["problems"]]


def test_invalid_bodies_are_422_with_every_problem_and_its_json_path(offline: ApiServer) -> None:
    with offline.client() as client:
        config = problems_of(
            client.post("/environments", json={"execution_id": "t1", "config": {"app_port": "x", "database": "db2"}})
        )
        assert config[0] == "config.app_image: required"
        assert config[1].startswith("config.app_port: ") and config[2].startswith("config.database: ")
        spec = {
            "apiVersion": "envspec/v1",
            "services": {"api": {"image": "x", "replicas": -1, "prot": 80}},
        }
        located = problems_of(client.post("/environments", json={"execution_id": "t2", "spec": spec}))
        assert any(p.startswith("spec.services.api.replicas: must be an integer between 0 and") for p in located)
        assert any(p.startswith("spec.services.api.prot: ") and "did you mean 'port'" in p for p in located), located
        crowd = {"execution_id": "t4", "config": {"app_image": "x", "replicas": 51}}
        assert problems_of(client.post("/environments", json=crowd)) == [
            "config.replicas: 51 replicas; this server allows at most 50 per service"
        ]
        mixed = problems_of(client.post("/environments", json={"execution_id": "Bad_ID", "config": {"app_port": 0}}))
        assert [p.split(":")[0] for p in mixed] == ["config.app_image", "config.app_port", "execution_id"], mixed
        assert problems_of(client.post("/environments", json={"config": {"app_image": "x"}})) == [
            "execution_id: required"
        ]
        neither = problems_of(client.post("/environments", json={"execution_id": "t3"}))
        assert neither == ["operation 'create' needs `config` or `spec`"], neither
        assert problems_of(
            client.post("/environments", content=b"{not json", headers={"content-type": "application/json"})
        )
        assert problems_of(client.post("/environments", json=[1, 2]))
        not_utf8 = client.post("/environments", content=b"\xff\xfe{", headers={"content-type": "application/json"})
        assert problems_of(not_utf8) == ["the body is not valid UTF-8 JSON"]


def test_an_execution_id_that_cannot_name_a_namespace_is_422(offline: ApiServer) -> None:
    with offline.client() as client:
        for execution_id in ("Test_001", "-x", "a" * 41):
            found = problems_of(client.post("/environments", json={**CREATE, "execution_id": execution_id}))
            assert len(found) == 1 and found[0].startswith("execution_id: "), found
        spec = {"apiVersion": "envspec/v1", "namespacePrefix": "p" * 40, "services": {"a": {"image": "x"}}}
        too_long = problems_of(client.post("/environments", json={"execution_id": "e" * 30, "spec": spec}))
        assert too_long == [
            f"execution_id: the namespace '{'p' * 40}-{'e' * 30}' would be 71 characters; at most 63"
        ], too_long


def test_ids_labels_and_waits_are_checked_before_the_cluster_is_asked(offline: ApiServer) -> None:
    with offline.client() as client:
        assert problems_of(client.get("/environments/Not_A_Label"))[0].startswith("path.environment_id: ")
        assert problems_of(client.get("/environments/x", params={"wait": "-1"}))[0].startswith("query.wait: ")
        assert problems_of(client.get("/environments", params={"label": "team"})) == [
            "query.label[0]: expected key=value with a label's name and value"
        ]
        assert problems_of(client.get("/environments", params={"label": "a=b,app.kubernetes.io/managed-by!=x"}))
        assert problems_of(client.post("/environments/x/extend", json={"ttl_minutes": 0}))[0].startswith(
            "ttl_minutes: "
        )
        assert problems_of(client.post("/cleanup", json={"dry_run": "perhaps"}))[0].startswith("dry_run: ")


def test_bodies_over_one_mebibyte_are_413(offline: ApiServer) -> None:
    big = b'{"execution_id": "x", "spec": {"pad": "' + b"a" * (1024 * 1024) + b'"}}'
    with offline.client() as client:
        declared = client.post("/environments", content=big, headers={"content-type": "application/json"})
        assert declared.status_code == 413 and "over 1048576 bytes" in json_of(declared)["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it is read
            for start in range(0, len(big), 64 * 1024):
                yield big[start : start + 64 * 1024]

        streamed = client.post("/environments", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413


def test_unknown_routes_and_methods_answer_json(offline: ApiServer) -> None:
    missing = httpx.get(f"{offline.base}{PREFIX}/nothing-here")
    assert missing.status_code == 404 and json_of(missing)["detail"] == "Not Found"
    wrong = httpx.put(offline.url("/cleanup"))
    assert wrong.status_code == 405 and json_of(wrong)["detail"] == "Method Not Allowed"


def test_no_token_appears_in_answers_or_in_the_log(offline: ApiServer) -> None:
    with offline.client() as client:
        answers = [client.get("/environments"), client.post("/environments", json={"execution_id": WRITE_TOKEN})]
    answers.append(httpx.get(offline.url("/environments"), headers={"Authorization": "Bearer leaked-token-abcdef12"}))
    for answer in answers:
        assert WRITE_TOKEN not in answer.text and "leaked-token" not in answer.text
    log = offline.output()
    assert "GET /api/v1/k8s-execution/environments" in log  # the access log is on
    for secret in (WRITE_TOKEN, READ_TOKEN, "leaked-token"):
        assert secret not in log


def serve_once(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envspec", "serve", *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_to_start_without_tokens_unless_no_auth_on_loopback() -> None:
    env = server_env(None, {"ENVSPEC_API_TOKENS": ""})
    refused = serve_once(env=env)
    assert refused.returncode == 1
    assert "no API tokens: set ENVSPEC_API_TOKENS or pass --token-file FILE" in refused.stderr
    public = serve_once("--no-auth", "--host", "0.0.0.0", env=env)
    assert public.returncode == 1 and "--no-auth is only allowed on a loopback --host" in public.stderr
    short = serve_once(env=server_env(None, {"ENVSPEC_API_TOKENS": "abc,tooshort-token"}))
    assert short.returncode == 1
    assert "ENVSPEC_API_TOKENS: token 1 is shorter than 16 characters" in short.stderr
    assert "abc" not in short.stderr.replace("ENVSPEC_API_TOKENS", "")
    bad_port = serve_once(env=server_env(None, {"SERVICE_PORT": "99999"}))
    assert bad_port.returncode == 1 and "SERVICE_PORT='99999'" in bad_port.stderr
    for run in (refused, public, short, bad_port):
        assert "Traceback" not in run.stderr


def test_token_files_and_read_only_tokens(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# the CI's\n{'f' * 20}\n\n{'r' * 20}:read\n")
    server = ApiServer(
        ["--token-file", str(tokens)], server_env(None, {"ENVSPEC_API_TOKENS": ""}), tmp_path / "server.log"
    )
    server.start()
    try:
        reader = httpx.post(server.url("/cleanup"), json={}, headers={"Authorization": f"Bearer {'r' * 20}"})
        writer = httpx.post(server.url("/cleanup"), json={}, headers={"Authorization": f"Bearer {'f' * 20}"})
        assert reader.status_code == 403
        assert writer.status_code == 503  # allowed: the cluster is what is missing
    finally:
        server.stop()
