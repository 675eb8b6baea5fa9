"""The status types and results of envspec's events on a real Redis: CDEvents names where they exist,
created versus modified, gc, watch and test runs, and the results record of an operation (ok and failed)."""

from __future__ import annotations

import contextlib
import json

import anyio
import pytest

from envspec.errors import EnvspecError
from envspec.events import (
    Emitter,
    EnvironmentReady,
    GcDeleted,
    GcSkipped,
    GcSweepFinished,
    ObjectApplied,
    ObjectProgress,
    ObjectReady,
    TestFinished,
    TestJobsDeleted,
    TestLog,
    TestProgress,
    TestQueued,
    TestRunStarted,
    TestStarted,
    TestSummary,
    WatchCycle,
)
from envspec.operations.run import run_operation
from envspec.report.status import reporting_sink
from tests.redis_fixtures import stream_entries

pytestmark = pytest.mark.redis

PREFIX = "t:report"
STATUS, RESULTS = f"{PREFIX}:status", f"{PREFIX}:results"


class Applied:
    def resources(self) -> tuple[str, ...]:
        return ("namespace/envspec-shop", "deployment/api")


def run_up(url: str, *, namespace_action: str, fail: str | None = None) -> None:
    async def body(events: Emitter) -> Applied:
        events.emit(ObjectApplied(1, 2, "namespace/envspec-shop", None, namespace_action, 0.01))  # type: ignore[arg-type]
        events.emit(ObjectApplied(2, 2, "deployment/api", "envspec-shop", "created", 0.02))
        events.emit(ObjectProgress(2, 2, "deployment/api", "envspec-shop", "0/1 ready", 0.5))
        if fail:
            raise EnvspecError(fail)
        events.emit(ObjectReady(2, 2, "deployment/api", "envspec-shop", "1/1 ready", 1.5))
        events.emit(EnvironmentReady("shop", "envspec-shop", 1.6))
        return Applied()

    async def main() -> None:
        sink = reporting_sink(url, stream_prefix=PREFIX)
        await run_operation("up", body, sink=sink, environment="shop", namespace="envspec-shop", operation_id="op1")

    with contextlib.suppress(EnvspecError):
        anyio.run(main)


def test_an_up_that_creates_the_namespace_is_environment_created_then_modified(redis_url: str) -> None:
    run_up(redis_url, namespace_action="created")
    entries = stream_entries(redis_url, STATUS)
    assert [(e["type"], e.get("ref")) for e in entries] == [
        ("envspec.environment.applying", None),
        ("envspec.object.applied", "namespace/envspec-shop"),
        ("envspec.object.applied", "deployment/api"),
        ("envspec.object.ready", "deployment/api"),
        ("environment.created", None),
    ]
    assert entries[-1] == {
        "type": "environment.created",
        "event": "environment_ready",
        "time": entries[-1]["time"],
        "operation_id": "op1",
        "operation": "up",
        "environment": "shop",
        "namespace": "envspec-shop",
        "seconds": "1.6",
    }
    [result] = stream_entries(redis_url, RESULTS)
    assert json.loads(result["data"]) == {
        "job_id": "op1",
        "status": "success",
        "namespace": "envspec-shop",
        "resources_created": ["namespace/envspec-shop", "deployment/api"],
        "duration_ms": json.loads(result["data"])["duration_ms"],
        "execution_id": "shop",
        "operation": "up",
        "environment": "shop",
        "time": result["time"],
        "exit_code": 0,
    }
    run_up(redis_url, namespace_action="unchanged")
    assert stream_entries(redis_url, STATUS, newest_first=True, count=1)[0]["type"] == "environment.modified"


def test_a_failed_up_has_an_error_result_with_the_reason(redis_url: str) -> None:
    run_up(redis_url, namespace_action="created", fail="deployment/api: ImagePullBackOff")
    types = [e["type"] for e in stream_entries(redis_url, STATUS)]
    assert "environment.created" not in types
    [result] = stream_entries(redis_url, RESULTS)
    assert (result["status"], result["error"], result["exit_code"]) == (
        "error",
        "deployment/api: ImagePullBackOff",
        "1",
    )
    assert "resources_created" in result and json.loads(result["resources_created"]) == []


def test_gc_and_watch_events(redis_url: str) -> None:
    async def body(events: Emitter) -> None:
        events.emit(GcDeleted("envspec-a", "a", "2026-01-01T00:00:00Z", 5.0, 60.0, False))
        events.emit(GcDeleted("envspec-b", "b", "2026-01-01T00:00:00Z", 5.0, None, True))
        events.emit(GcSkipped("envspec-c", "c", "no expiry"))
        events.emit(GcSweepFinished(3, 2, 0, 0, 1, 0, 0, 0, False, 0.2))
        events.emit(WatchCycle(1, ("deployment/x",), (), (), 1, 0.5, True))
        events.emit(WatchCycle(2, (), ("deployment/x",), (), 0, 0.5, False, "refused"))

    async def main() -> None:
        await run_operation("gc", body, sink=reporting_sink(redis_url, stream_prefix=PREFIX), operation_id="g1")

    anyio.run(main)
    entries = stream_entries(redis_url, STATUS)
    assert [e["type"] for e in entries] == [
        "environment.deleted",
        "envspec.gc.would_delete",
        "envspec.gc.skipped",
        "envspec.gc.swept",
        "environment.modified",
        "envspec.environment.failed",
    ]
    assert entries[0]["environment"] == "a" and entries[0]["namespace"] == "envspec-a"  # from the event's own fields
    results = [json.loads(r["data"]) for r in stream_entries(redis_url, RESULTS)]
    assert [(r["operation"], r["status"], r.get("cycle")) for r in results] == [
        ("gc", "success", 1),
        ("gc", "error", 2),
        ("gc", "success", None),
    ]


def test_a_test_run_is_testcaserun_entries_with_cdevents_outcomes_and_a_result_listing_every_test(
    redis_url: str,
) -> None:
    async def body(events: Emitter) -> None:
        events.emit(TestRunStarted("r1", ("unit", "smoke", "lint")))
        events.emit(TestStarted("unit", "unit-r1", "r1", "img:1", 120, 0))
        events.emit(TestQueued("smoke", "waiting for room in the quota"))
        events.emit(TestStarted("smoke", "smoke-r1", "r1", "img:1", 60, 1))
        events.emit(TestLog("unit", "unit-r1-x", None, "collected 3 items"))
        events.emit(TestProgress("smoke", "smoke-r1", 1, "retrying after exit code 3"))
        events.emit(TestFinished("unit", "unit-r1", "passed", 2.5, 1, 0, None, None, 0, "r1"))
        events.emit(TestFinished("smoke", "smoke-r1", "timed_out", 60.0, 2, 1, "DeadlineExceeded", "x", None, "r1"))
        events.emit(TestFinished("lint", None, "skipped", 0.0, 0, 0, "not run", None, None, "r1"))
        events.emit(TestJobsDeleted("r1", ("unit-r1", "smoke-r1"), "cleanup"))
        events.emit(TestSummary("r1", 1, 0, 1, 0, 1, 63.0, None, 6))
        raise EnvspecError("1 test timed out", exit_code=6)

    async def main() -> None:
        sink = reporting_sink(redis_url, stream_prefix=PREFIX)
        await run_operation("test", body, sink=sink, environment="shop", namespace="envspec-shop", operation_id="t1")

    with contextlib.suppress(EnvspecError):
        anyio.run(main)
    entries = stream_entries(redis_url, STATUS)
    assert [(e["type"], e.get("test")) for e in entries] == [
        ("testsuiterun.started", None),
        ("testcaserun.started", "unit"),
        ("testcaserun.queued", "smoke"),
        ("testcaserun.started", "smoke"),
        ("envspec.testcaserun.progress", "smoke"),  # a retry: no CDEvents name, envspec's own
        ("testcaserun.finished", "unit"),
        ("testcaserun.finished", "smoke"),
        ("testcaserun.skipped", "lint"),  # never queued nor started: CDEvents' skipped, not finished
        ("envspec.testsuiterun.jobs_deleted", None),
        ("testsuiterun.finished", None),
    ]
    progress, unit, smoke, deleted = entries[4], entries[5], entries[6], entries[8]
    assert (progress["job"], progress["attempts"], progress["reason"]) == (
        "smoke-r1",
        "1",
        "retrying after exit code 3",
    )
    assert (deleted["run_id"], json.loads(deleted["jobs"]), deleted["reason"]) == (
        "r1",
        ["unit-r1", "smoke-r1"],
        "cleanup",
    )
    assert unit == {
        "type": "testcaserun.finished",
        "event": "test_finished",
        "time": unit["time"],
        "operation_id": "t1",
        "operation": "test",
        "environment": "shop",
        "namespace": "envspec-shop",
        "test": "unit",
        "job": "unit-r1",
        "result": "passed",
        "outcome": "success",
        "duration_seconds": "2.5",
        "attempts": "1",
        "retries": "0",
        "exit_code": "0",
        "run_id": "r1",
    }
    assert (smoke["outcome"], smoke["result"], smoke["reason"], smoke["attempts"]) == (
        "failure",
        "timed_out",
        "DeadlineExceeded",
        "2",
    )
    assert (entries[7]["outcome"], entries[-1]["outcome"]) == ("cancel", "failure")
    [result] = stream_entries(redis_url, RESULTS)
    record = json.loads(result["data"])
    assert record == {
        "job_id": "t1",
        "status": "error",
        "namespace": "envspec-shop",
        "resources_created": ["job/unit-r1", "job/smoke-r1"],  # failed, yet its Jobs are there
        "duration_ms": record["duration_ms"],
        "execution_id": "shop",
        "operation": "test",
        "environment": "shop",
        "time": record["time"],
        "error": "1 test timed out",
        "exit_code": 6,
        "run_id": "r1",
        "tests": [
            {
                "name": "unit",
                "result": "passed",
                "outcome": "success",
                "duration_seconds": 2.5,
                "attempts": 1,
                "reason": None,
                "cause": None,
            },
            {
                "name": "smoke",
                "result": "timed_out",
                "outcome": "failure",
                "duration_seconds": 60.0,
                "attempts": 2,
                "reason": "DeadlineExceeded",
                "cause": "x",
            },
            {
                "name": "lint",
                "result": "skipped",
                "outcome": "cancel",
                "duration_seconds": 0.0,
                "attempts": 0,
                "reason": "not run",
                "cause": None,
            },
        ],
    }
