"""Every expiry form gc accepts works with every command that reads an expiry.

Users (and kube-janitor users) write `envspec.dev/expires-at` by hand in any of the
accepted forms; `ls`, `status`, `up`, `gc` and `extend` all read it through the one
parser in `envspec.meta`. A date without a time once crashed `ls` and `status`
(naive against aware datetimes, exit 70).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from envspec.cluster import ClusterInfo
from envspec.meta import EXPIRES_AT_ANNOTATION, parse_instant
from tests.cluster_fixtures import run_envspec, run_kubectl

pytestmark = pytest.mark.cluster

QUICKSTART = Path(__file__).resolve().parent.parent / "examples" / "quickstart" / "maestro-env.yaml"

# Each accepted form, in the past and in the future, as a user might write it.
FORMS = [
    "2020-01-01",  # kube-janitor's date: midnight UTC
    "2020-01-01T12:30",  # kube-janitor's minutes, UTC
    "2020-01-01T12:30:00Z",
    "2020-01-01T14:30:00+02:00",
    "2020-01-01t12:30:00.25z",  # lower-case separators and a fraction
    "2099-01-01",
    "2099-01-01T12:30",
    "2099-06-01T16:00:00+02:00",
]


@pytest.fixture(scope="module")
def environment(kube_cluster: ClusterInfo) -> Iterator[tuple[str, str]]:
    env_id = "exp" + uuid.uuid4().hex[:6]
    done = run_envspec(kube_cluster, "up", "-f", str(QUICKSTART), "--id", env_id, "-o", "json", timeout=120)
    assert done.returncode == 0, done.stderr
    summary = next(json.loads(line) for line in done.stdout.splitlines() if '"event":"summary"' in line)
    yield summary["environment"], summary["namespace"]
    run_envspec(kube_cluster, "down", "-f", str(QUICKSTART), "--id", env_id, "--no-wait")


def write_expiry(cluster: ClusterInfo, namespace: str, form: str) -> None:
    done = run_kubectl(cluster, "annotate", "--overwrite", "namespace", namespace, f"{EXPIRES_AT_ANNOTATION}={form}")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("form", FORMS)
def test_every_command_reads_a_hand_written_expiry(
    kube_cluster: ClusterInfo, environment: tuple[str, str], form: str
) -> None:
    name, namespace = environment
    expected = parse_instant(form)
    expected_left = (expected - datetime.now(UTC)).total_seconds()
    env_id = name.rsplit("-", 1)[1]

    write_expiry(kube_cluster, namespace, form)
    listed = run_envspec(kube_cluster, "ls", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["namespace"] == namespace)
    assert row["expires_at"] == form
    assert abs(row["expires_in_seconds"] - expected_left) < 120
    table = run_envspec(kube_cluster, "ls")
    assert table.returncode == 0 and namespace in table.stdout
    assert ("expired" in table.stdout) == (expected_left < 0)

    status = run_envspec(kube_cluster, "status", "--name", name, "-o", "json")
    assert status.returncode == 0, status.stderr
    assert abs(json.loads(status.stdout)["expires_in_seconds"] - expected_left) < 120
    assert run_envspec(kube_cluster, "status", "--name", name).returncode == 0

    swept = run_envspec(kube_cluster, "gc", "--dry-run", "-o", "json")
    assert swept.returncode == 0, swept.stderr
    verdicts = [json.loads(line) for line in swept.stdout.splitlines()]
    would_delete = [v for v in verdicts if v["event"] == "gc_deleted" and v["namespace"] == namespace]
    assert bool(would_delete) == (expected_left <= 0)
    assert not [v for v in verdicts if v["event"] == "gc_skipped" and v["namespace"] == namespace]

    extended = run_envspec(kube_cluster, "extend", "--name", name, "--ttl", "1h")
    assert extended.returncode == 0, extended.stderr
    assert f"(was {expected.strftime('%Y-%m-%dT%H:%M:%SZ')})" in extended.stdout

    write_expiry(kube_cluster, namespace, form)
    again = run_envspec(kube_cluster, "up", "-f", str(QUICKSTART), "--id", env_id, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "expires in 59m" in again.stdout or "expires in 1h" in again.stdout  # up renews: now + ttl
