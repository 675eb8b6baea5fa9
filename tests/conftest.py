"""Shared pytest fixtures. Cluster fixtures live in cluster_fixtures.py, Redis ones in redis_fixtures.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api_fixtures import *  # noqa: F403  (re-export the API server fixtures)
from tests.cluster_fixtures import *  # noqa: F403  (re-export the cluster fixtures)
from tests.redis_fixtures import *  # noqa: F403  (re-export the Redis fixtures)

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.parent.name for p in (REPO / "examples").glob("*/maestro-env.yaml"))


@pytest.fixture
def repo() -> Path:
    return REPO
