"""Expiry rules, gc's decision per namespace, output text and watch's plan diff: pure, no cluster."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from envspec.events import (
    Emitter,
    GcDeleted,
    GcSkipped,
    GcStuck,
    GcSweepFinished,
    LeaseRenewed,
    ObjectApplied,
    Sink,
    WatchCycle,
    WatchSpecInvalid,
)
from envspec.lifecycle.expiry import Action, deletion_blockers, judge
from envspec.meta import (
    ENVIRONMENT_LABEL,
    EXPIRES_AT_ANNOTATION,
    JANITOR_EXPIRES_ANNOTATION,
    MANAGED_BY_LABEL,
    TTL_ANNOTATION,
    expiry_after,
    format_instant,
    lease_patch,
)
from envspec.meta import parse_instant as parse_expiry
from envspec.operations.watch import keepalive_interval
from envspec.present import cycle_text, lease_text, sweep_summary
from envspec.sinks import JsonLinesSink, TerminalSink

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOW


def emitter(sink: Sink, operation: str = "gc") -> Emitter:
    return Emitter(sink, operation=operation, clock=fixed_clock)


# ---------------------------------------------------------------- parsing and writing expiries


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T12:00:00Z", datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)),
        ("2026-03-01t12:00:00z", datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)),
        ("2026-03-01T12:00:00.750Z", datetime(2026, 3, 1, 12, 0, 0, 750000, tzinfo=UTC)),
        ("2026-03-01T14:00:00+02:00", datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)),
        ("2026-03-01T07:30:00-04:30", datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)),
        # kube-janitor's other two formats, read as UTC
        ("2026-03-01T12:00", datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)),
        ("2026-03-01", datetime(2026, 3, 1, 0, 0, 0, tzinfo=UTC)),
        (" 2026-03-01T12:00:00Z ", datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)),
    ],
)
def test_parse_expiry_reads_rfc3339_and_janitor_formats(text: str, expected: datetime) -> None:
    parsed = parse_expiry(text)
    assert parsed == expected
    assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tomorrow",
        "2026-03-01T12:00:00",  # seconds but no offset: ambiguous, refused rather than guessed
        "2026-03-01 12:00:00Z",
        "2026-13-01T12:00:00Z",
        "2026-02-30",
        "2026-03-01T25:00",
        "1740830400",
        "2026-03-01T12:00:00+0200",
        "2h",
    ],
)
def test_parse_expiry_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_expiry(text)


def test_format_instant_is_rfc3339_utc_whole_seconds_and_janitor_compatible() -> None:
    instant = datetime(2026, 3, 1, 14, 0, 0, 999999, tzinfo=timezone(timedelta(hours=2)))
    text = format_instant(instant)
    assert text == "2026-03-01T12:00:00Z"
    # kube-janitor parses its annotation with this exact format
    assert datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) == NOW
    assert parse_expiry(text) == NOW
    with pytest.raises(ValueError):
        format_instant(datetime(2026, 3, 1, 12, 0, 0))  # naive: which zone?


def test_lease_patch_writes_both_annotations_with_the_same_instant() -> None:
    expires = expiry_after(fixed_clock(), 7200)
    assert expires == NOW + timedelta(hours=2)
    assert lease_patch(expires) == {
        "metadata": {
            "annotations": {
                EXPIRES_AT_ANNOTATION: "2026-03-01T14:00:00Z",
                JANITOR_EXPIRES_ANNOTATION: "2026-03-01T14:00:00Z",
            }
        }
    }
    assert expiry_after(fixed_clock(), None) is None


# ---------------------------------------------------------------- gc's decisions


def namespace(
    name: str = "envspec-demo",
    *,
    managed: bool = True,
    expires: str | None = None,
    ttl: str | None = "1h",
    created: str | None = "2026-03-01T09:00:00Z",
    deleting_since: str | None = None,
    finalizers: list[str] | None = None,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    labels = {ENVIRONMENT_LABEL: name.removeprefix("envspec-")}
    if managed:
        labels[MANAGED_BY_LABEL] = "envspec"
    annotations = {}
    if expires is not None:
        annotations[EXPIRES_AT_ANNOTATION] = expires
    if ttl is not None:
        annotations[TTL_ANNOTATION] = ttl
    metadata: dict[str, Any] = {
        "name": name,
        "uid": f"uid-{name}",
        "resourceVersion": "42",
        "labels": labels,
        "annotations": annotations,
    }
    if created:
        metadata["creationTimestamp"] = created
    if deleting_since:
        metadata["deletionTimestamp"] = deleting_since
    if finalizers:
        metadata["finalizers"] = finalizers
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": metadata,
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Terminating" if deleting_since else "Active", "conditions": conditions or []},
    }


@pytest.mark.parametrize(
    ("obj", "action"),
    [
        (namespace(expires="2026-03-01T11:59:59Z"), Action.DELETE),
        (namespace(expires="2026-03-01T12:00:00Z"), Action.DELETE),  # expiry is the instant it ends
        (namespace(expires="2026-03-01T12:00:01Z"), Action.KEEP),
        (namespace(expires="2026-03-01"), Action.DELETE),  # janitor date: midnight, hours ago
        (namespace(expires="2026-03-02"), Action.KEEP),
        (namespace(expires=None, ttl="never"), Action.NEVER),
        # `never` wins over an expiry left behind by an earlier ttl or an extend
        (namespace(expires="2020-01-01T00:00:00Z", ttl="never"), Action.NEVER),
        (namespace(expires=None, ttl="1h"), Action.MISSING),
        (namespace(expires=None, ttl=None), Action.MISSING),
        (namespace(expires="next tuesday"), Action.INVALID),
        (namespace(expires="2026-03-01T11:00:00"), Action.INVALID),
        (namespace(managed=False, expires="2020-01-01T00:00:00Z"), Action.UNMANAGED),
        (namespace(expires="2020-01-01T00:00:00Z", deleting_since="2026-03-01T11:58:00Z"), Action.TERMINATING),
        (namespace(expires="2020-01-01T00:00:00Z", deleting_since="2026-03-01T11:50:00Z"), Action.STUCK),
    ],
)
def test_judge_decides_one_namespace(obj: dict[str, Any], action: Action) -> None:
    assert judge(obj, fixed_clock(), stuck_after=300).action is action


def test_an_expired_verdict_says_when_it_expired_and_how_old_the_environment_is() -> None:
    verdict = judge(namespace(expires="2026-03-01T11:57:00Z"), fixed_clock())
    assert verdict.action is Action.DELETE
    assert verdict.expired_seconds_ago == 180
    assert verdict.age_seconds == 3 * 3600
    assert verdict.uid == "uid-envspec-demo" and verdict.resource_version == "42"
    assert verdict.reason == "expired at 2026-03-01T11:57:00Z (3m ago), age 3h"


def test_the_decision_follows_the_injected_clock_to_the_second() -> None:
    obj = namespace(expires="2026-03-01T12:00:00Z")
    assert judge(obj, NOW - timedelta(seconds=1)).action is Action.KEEP
    assert judge(obj, NOW).action is Action.DELETE


def test_a_missing_or_unreadable_expiry_is_explained() -> None:
    assert EXPIRES_AT_ANNOTATION in judge(namespace(expires=None), NOW).reason
    assert "'next tuesday'" in judge(namespace(expires="next tuesday"), NOW).reason


def test_a_stuck_namespace_names_what_blocks_it() -> None:
    conditions = [
        {"type": "NamespaceDeletionDiscoveryFailure", "status": "False", "reason": "ResourcesDiscovered"},
        {
            "type": "NamespaceContentRemaining",
            "status": "True",
            "message": "Some resources are remaining: configmaps. has 1 resource instances",
        },
        {
            "type": "NamespaceFinalizersRemaining",
            "status": "True",
            "message": "Some content in the namespace has finalizers remaining: example.com/hold "
            "in 1 resource instances",
        },
    ]
    obj = namespace(deleting_since="2026-03-01T11:00:00Z", conditions=conditions, finalizers=["example.com/ns-hold"])
    verdict = judge(obj, NOW, stuck_after=300)
    assert verdict.action is Action.STUCK
    assert verdict.terminating_seconds == 3600
    assert verdict.blockers == (
        "NamespaceContentRemaining: Some resources are remaining: configmaps. has 1 resource instances",
        "NamespaceFinalizersRemaining: Some content in the namespace has finalizers remaining: example.com/hold "
        "in 1 resource instances",
        "metadata.finalizers: example.com/ns-hold",
    )


def test_spec_finalizers_explain_a_stuck_namespace_only_when_nothing_else_does() -> None:
    bare = namespace(deleting_since="2026-03-01T11:00:00Z")
    assert deletion_blockers(bare) == ("spec.finalizers: kubernetes",)


# ---------------------------------------------------------------- output


def test_terminal_output_of_a_sweep_is_a_table_then_a_summary() -> None:
    stream = io.StringIO()
    sink = emitter(TerminalSink(stream))
    sink.emit(GcDeleted("envspec-a", "a", "2026-03-01T11:57:00Z", 180.0, 10800.0, dry_run=False))
    sink.emit(GcSkipped("envspec-bad", "bad", "envspec.dev/expires-at: 'x' is not ..."))
    sink.emit(GcStuck("envspec-old", "old", 3600.0, ("metadata.finalizers: example.com/hold",)))
    sink.emit(GcSweepFinished(5, 1, 1, 0, 1, 1, 1, 0, dry_run=False, seconds=0.25))
    lines = stream.getvalue().splitlines()
    assert lines[0].split() == ["ACTION", "NAMESPACE", "ENVIRONMENT", "REASON"]
    assert lines[1].startswith("deleted  envspec-a ")
    assert lines[1].endswith("expired at 2026-03-01T11:57:00Z (3m ago), age 3h")
    assert lines[2].startswith("skipped  envspec-bad")
    assert lines[3].startswith("stuck    envspec-old") and "Terminating for 1h" in lines[3]
    assert lines[4] == (
        "gc: 5 environments in 0.2s: 1 deleted, 1 not expired, 0 never expire, 1 skipped, 1 terminating, 1 stuck"
    )


def test_a_dry_run_says_would_delete() -> None:
    stream = io.StringIO()
    sink = emitter(TerminalSink(stream))
    sink.emit(GcDeleted("envspec-a", "a", "2026-03-01T11:57:00Z", 180.0, None, dry_run=True))
    sink.emit(GcSweepFinished(1, 1, 0, 0, 0, 0, 0, 0, dry_run=True, seconds=0.1))
    text = stream.getvalue()
    assert "would delete  envspec-a" in text
    assert text.rstrip().endswith("(dry run: nothing deleted)")
    assert sweep_summary(GcSweepFinished(1, 0, 1, 0, 0, 0, 0, 0, False, 0.1)).startswith("gc: 1 environment in")


def test_json_output_is_one_object_per_line_for_lifecycle_and_apply_events() -> None:
    stream = io.StringIO()
    sink = emitter(JsonLinesSink(stream))
    sink.emit(GcStuck("envspec-old", "old", 3600.0, ("a", "b")))
    sink.emit(LeaseRenewed("envspec-a", "2026-03-01T14:00:00Z"))
    sink.emit(ObjectApplied(1, 2, "deployment/api", "ns", "created", 0.12345))
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["gc_stuck", "lease_renewed", "object_applied"]
    assert records[0]["blockers"] == ["a", "b"]
    assert records[0]["terminating_seconds"] == 3600.0
    assert records[1]["expires_at"] == "2026-03-01T14:00:00Z"
    assert all(r["time"].endswith("Z") for r in records)


def test_one_line_per_watch_cycle() -> None:
    cycle = WatchCycle(3, ("deployment/cache",), ("deployment/api",), ("service/old",), 4, 0.84, True)
    assert cycle_text(cycle) == "cycle 3  +deployment/cache ~deployment/api -service/old  4 writes  ready in 0.8s"
    failed = WatchCycle(4, (), (), (), 0, 2.0, False, "applying deployment/api: API server says: no")
    assert cycle_text(failed) == "cycle 4  no change  FAILED after 2.0s: applying deployment/api: API server says: no"
    stream = io.StringIO()
    emitter(TerminalSink(stream), "watch").emit(WatchSpecInvalid("env.yaml", ("env.yaml:3:5: services.api: bad",)))
    assert stream.getvalue().splitlines() == [
        "invalid edit of env.yaml: environment left as it was",
        "  env.yaml:3:5: services.api: bad",
    ]


def test_timestamps_prefix_every_line_of_the_loop_log() -> None:
    stream = io.StringIO()
    emitter(TerminalSink(stream, timestamps=True)).emit(GcSweepFinished(0, 0, 0, 0, 0, 0, 0, 0, False, 0.01))
    stamp, rest = stream.getvalue().split(" ", 1)
    assert datetime.fromisoformat(stamp.replace("Z", "+00:00")).tzinfo is not None
    assert rest.startswith("gc: 0 environments")


# ---------------------------------------------------------------- watch: keep-alive and plan diff


@pytest.mark.parametrize(
    ("ttl", "interval"), [(None, None), (30, 10.0), (90, 30.0), (180, 60.0), (7200, 60.0), (1, 1.0)]
)
def test_keepalive_renews_every_third_of_the_ttl_and_at_least_once_a_minute(
    ttl: int | None, interval: float | None
) -> None:
    assert keepalive_interval(ttl) == interval


def test_extend_reads_as_one_sentence_with_the_expiry_before() -> None:
    stream = io.StringIO()
    events = Emitter(TerminalSink(stream), operation="extend", environment="shop", clock=fixed_clock)
    events.emit(LeaseRenewed("envspec-shop", "2026-03-01T14:00:00Z", "2026-03-01T12:30:00+00:00"))
    assert stream.getvalue().splitlines() == [
        "extended environment shop (namespace envspec-shop): expires at 2026-03-01T14:00:00Z, in 2h "
        "(was 2026-03-01T12:30:00Z)"
    ]
    # up's lease line is not a sentence about extending
    assert lease_text(LeaseRenewed("ns", None)) == "lease     namespace/ns: never expires"
