"""Schemathesis against the OpenAPI document `envspec serve` serves, with a valid token and
the local cluster behind it: no 5xx, and every answer matches the document (status code,
content type, body schema), on every endpoint.

The server gets its own namespace prefix, so every environment the generated creates
make is found (and deleted) afterwards; `POST /cleanup` is made a dry run (see
tests/schemathesis_hooks.py) so the sweep cannot touch other tests' environments.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from envspec.cluster import ClusterInfo
from tests.api_fixtures import WRITE_TOKEN, ApiFactory
from tests.cluster_fixtures import kubectl

pytestmark = pytest.mark.cluster

EXAMPLES_PER_OPERATION = 25
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_schema(
    kube_cluster: ClusterInfo, api_factory: ApiFactory, tmp_path: Path
) -> None:
    prefix = f"st-{uuid.uuid4().hex[:6]}"
    server = api_factory(
        "--max-operations",
        "2",
        "--operation-timeout",
        "60s",
        "--max-replicas",
        "3",
        kubeconfig=kube_cluster.kubeconfig,
        env={"K8S_NAMESPACE_PREFIX": prefix},
    )
    repo = Path(__file__).resolve().parent.parent
    env = dict(os.environ, SCHEMATHESIS_HOOKS="tests.schemathesis_hooks", PYTHONPATH=str(repo))
    try:
        run = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "run",
                f"{server.base}/openapi.json",
                "--header",
                f"Authorization: Bearer {WRITE_TOKEN}",
                "--checks",
                CHECKS,
                "--max-examples",
                str(EXAMPLES_PER_OPERATION),
                "--seed",
                "20261202",
                "--workers",
                "1",
                "--phases",
                "examples,coverage,fuzzing",
                "--request-timeout",
                "120",
                "--no-color",
            ],
            env=env,
            cwd=tmp_path,  # schemathesis keeps its cache (.schemathesis/) in the working directory
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        (tmp_path / "schemathesis.txt").write_text(run.stdout + run.stderr)
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        assert "No issues found" in run.stdout or "passed" in run.stdout, run.stdout[-3000:]
        assert "Traceback" not in server.output()
    finally:
        server.stop()
        listed = json.loads(kubectl(kube_cluster, "get", "namespaces", "-o", "json"))
        ours = [n["metadata"]["name"] for n in listed["items"] if n["metadata"]["name"].startswith(f"{prefix}-")]
        if ours:
            kubectl(kube_cluster, "delete", "namespace", *ours, "--wait=false")
