"""The board's view of a running test operation (what `GET /jobs/{id}` answers, and what the
heartbeat writes to the namespace, before the result exists): each test's state and its last
log lines, masked by the operation's emitter, from the run's own events."""

from __future__ import annotations

import json
from typing import Any

from envspec.api.board import Tracked, _BoardSink
from envspec.api.records import RECORD_LIMIT_BYTES, fitted_record
from envspec.events import Emitter, TestFinished, TestLog, TestQueued, TestStarted
from envspec.service.operations import LOG_LINE_CHARS, LOG_TAIL_LINES


def test_a_running_job_shows_each_tests_state_and_last_log_lines_masked() -> None:
    tracked = Tracked("job-1", "test", "env-1", "quality-fabric-env-1")
    password = "s3cr3t-generated-password"
    events = Emitter(_BoardSink(tracked), operation="test", operation_id="job-1").with_secrets([password])
    events.emit(TestQueued("smoke", "waiting for room in the quota"))
    events.emit(TestQueued("e2e", "waiting for room in the quota"))
    events.emit(TestStarted("smoke", "smoke-abc", "abc", "tests:1", 600, 0))
    for n in range(LOG_TAIL_LINES + 5):
        events.emit(TestLog("smoke", "smoke-abc-x1", None, f"line {n}"))
    events.emit(TestLog("smoke", "smoke-abc-x1", None, f"password={password}"))
    events.emit(TestLog("smoke", "smoke-abc-x1", None, "x" * (LOG_LINE_CHARS + 10)))

    record = tracked.record()
    tests = record["tests"]
    assert isinstance(tests, list)
    smoke: dict[str, Any] = tests[0]
    e2e: dict[str, Any] = tests[1]
    assert e2e == {"name": "e2e", "result": "queued", "log": [], "log_lines_total": 0}
    assert smoke["result"] == "running" and smoke["log_lines_total"] == LOG_TAIL_LINES + 7
    assert len(smoke["log"]) == LOG_TAIL_LINES and smoke["log"][-2] == "password=******"
    assert smoke["log"][-1] == "x" * LOG_LINE_CHARS + "…"
    assert password not in repr(record)
    # Log lines are kept in the view, not in the event history (a chatty test keeps the other events).
    assert [type(e.event).__name__ for e in tracked.history] == ["TestQueued", "TestQueued", "TestStarted"]

    events.emit(
        TestFinished("smoke", "smoke-abc", "failed", 1.5, 1, 0, "exit code 1", "BackoffLimitExceeded", 1, "abc")
    )
    finished = tracked.record()["tests"]
    assert isinstance(finished, list) and finished[0]["result"] == "failed"


def test_a_record_with_many_tests_is_fitted_into_its_annotation_by_shortening_their_logs() -> None:
    lines = ["y" * LOG_LINE_CHARS] * LOG_TAIL_LINES
    record: dict[str, Any] = {"job_id": "j", "tests": [{"name": f"t{n}", "log": list(lines)} for n in range(40)]}
    small = json.loads(fitted_record(dict(record, tests=[dict(t) for t in record["tests"][:2]])))
    assert [len(t["log"]) for t in small["tests"]] == [LOG_TAIL_LINES, LOG_TAIL_LINES]  # fits: unchanged
    fitted = fitted_record(record)
    assert len(fitted.encode()) <= RECORD_LIMIT_BYTES
    assert {len(t["log"]) for t in json.loads(fitted)["tests"]} == {5}
    assert all(len(t["log"]) == LOG_TAIL_LINES for t in record["tests"])  # the answer keeps them all
