"""A review render (no --show-secrets) cannot be applied: the real API server refuses its
Secrets, so no environment ever runs with the public placeholder as its password."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from envspec.cli.main import cli
from envspec.cluster import ClusterInfo
from tests.cluster_fixtures import run_kubectl

REPO = Path(__file__).resolve().parent.parent
POLYGLOT = str(REPO / "examples" / "polyglot-db" / "maestro-env.yaml")


def rendered_secrets(*flags: str, namespace: str) -> list[dict[str, object]]:
    result = CliRunner().invoke(cli, ["render", "-f", POLYGLOT, *flags], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    documents = list(YAML(typ="safe", pure=True).load_all(io.StringIO(result.stdout)))
    secrets = [d for d in documents if d["kind"] == "Secret"]
    assert len(secrets) == 2
    for secret in secrets:
        secret["metadata"]["namespace"] = namespace
    return secrets


@pytest.mark.cluster
def test_the_api_server_refuses_a_review_render_and_takes_a_show_secrets_one(
    kube_cluster: ClusterInfo, kube_namespace: str
) -> None:
    for secret in rendered_secrets(namespace=kube_namespace):
        refused = run_kubectl(kube_cluster, "apply", "-f", "-", stdin=json.dumps(secret))
        assert refused.returncode != 0
        assert "illegal base64 data" in refused.stderr, refused.stderr
    assert run_kubectl(kube_cluster, "get", "secrets", "-n", kube_namespace, "-o", "name").stdout.strip() == ""
    for secret in rendered_secrets("--show-secrets", namespace=kube_namespace):
        applied = run_kubectl(kube_cluster, "apply", "-f", "-", stdin=json.dumps(secret))
        assert applied.returncode == 0, applied.stderr
