"""Which Redis a command reports to: the spec's `reporting.redis.url` with its references filled in."""

from __future__ import annotations

from pathlib import Path

from envspec.cli.run import report_sink
from envspec.operations.spec import report_target
from envspec.pipeline import load_spec

FULLSTACK = Path(__file__).resolve().parents[1] / "examples" / "fullstack" / "maestro-env.yaml"


def test_an_empty_url_after_substitution_turns_reporting_off() -> None:
    spec = load_spec(str(FULLSTACK), {})  # the example reports to ${env.REDIS_URL:-}
    target = report_target(spec)
    assert target is not None and target.url == ""
    assert report_sink(spec, None) is None


def test_the_url_comes_from_the_environment_when_it_is_set() -> None:
    spec = load_spec(str(FULLSTACK), {"REDIS_URL": "redis://reports:6379/2"})
    target = report_target(spec)
    assert target is not None
    assert (target.url, target.stream_prefix, target.maxlen) == ("redis://reports:6379/2", "maestro:streams:k8s", 10000)
    assert report_sink(spec, None) is not None
