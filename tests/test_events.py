"""The event stream: names, JSON lines, the terminal rendering, and that secrets never get out."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from envspec.events import (
    Emitter,
    Envelope,
    LeaseRenewed,
    ObjectApplied,
    ObjectFailed,
    ObjectProgress,
    ObjectReady,
    Pruned,
    Sink,
    Summary,
    WaveFinished,
    WaveStarted,
    envelope_to_dict,
    event_name,
)
from envspec.meta import format_span
from envspec.present import format_expiry, format_seconds
from envspec.sinks import JsonLinesSink, Recorder, TerminalSink

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def emitter(sink: Sink, operation: str = "up") -> Emitter:
    """What an operation emits through, with a fixed clock and operation id."""
    return Emitter(
        sink, operation=operation, operation_id="op1", environment="shop", namespace="envspec-shop", clock=lambda: NOW
    )


def summary(**changes: object) -> Summary:
    fields: dict[str, object] = {
        "environment": "shop",
        "namespace": "envspec-shop",
        "ok": True,
        "created": 3,
        "configured": 1,
        "unchanged": 2,
        "pruned": 1,
        "wave_seconds": (0.1, 2.4),
        "seconds": 2.61,
        "expires_at": "2026-01-01T14:00:00Z",
    }
    fields.update(changes)
    return Summary(**fields)  # type: ignore[arg-type]


def a_wave() -> list[object]:
    return [
        WaveStarted(3, 6, ("statefulset/db", "service/db")),
        ObjectApplied(3, 6, "statefulset/db", "ns", "created", 0.05),
        ObjectApplied(3, 6, "service/db", "ns", "unchanged", 0.02),
        ObjectReady(3, 6, "service/db", "ns", "exists", 0.02),
        ObjectProgress(3, 6, "statefulset/db", "ns", "0/1 ready", 0.5),
        ObjectReady(3, 6, "statefulset/db", "ns", "1/1 ready", 2.4),
        WaveFinished(3, 6, 2.4),
    ]


def test_event_names_are_snake_case() -> None:
    assert event_name(ObjectApplied(1, 1, "a/b", None, "created", 0.0)) == "object_applied"
    assert event_name(summary()) == "summary"


def envelope(event: object) -> Envelope:
    return Envelope("op1", "up", "shop", "envspec-shop", NOW, event)  # type: ignore[arg-type]


def test_json_form_has_name_time_envelope_and_fields() -> None:
    data = envelope_to_dict(envelope(ObjectReady(3, 6, "statefulset/db", "ns", "1/1 ready", 2.41234)))
    assert data == {
        "event": "object_ready",
        "time": "2026-01-01T12:00:00.000Z",
        "operation_id": "op1",
        "operation": "up",
        "environment": "shop",
        "wave": 3,
        "wave_count": 6,
        "ref": "statefulset/db",
        "namespace": "ns",
        "message": "1/1 ready",
        "seconds": 2.412,
    }
    assert envelope_to_dict(envelope(summary()))["wave_seconds"] == [0.1, 2.4]
    # The event's own namespace wins over the envelope's: gc's events are about many namespaces.
    assert data["namespace"] == "ns"


def test_json_lines_sink_writes_one_parseable_object_per_line() -> None:
    out = io.StringIO()
    sink = emitter(JsonLinesSink(out))
    for event in a_wave():
        sink.emit(event)  # type: ignore[arg-type]
    lines = out.getvalue().splitlines()
    assert len(lines) == 7
    assert [json.loads(line)["event"] for line in lines][:2] == ["wave_started", "object_applied"]


def test_terminal_sink_in_a_log_prints_one_line_per_object_when_done() -> None:
    out = io.StringIO()
    sink = emitter(TerminalSink(out, live=False))
    for event in a_wave():
        sink.emit(event)  # type: ignore[arg-type]
    assert out.getvalue().splitlines() == [
        "wave 3/6  service/db      unchanged   exists  0.0s",
        "wave 3/6  statefulset/db  created     1/1 ready  2.4s",
    ]


def test_terminal_sink_on_a_terminal_redraws_the_wave_in_place() -> None:
    out = io.StringIO()
    sink = emitter(TerminalSink(out, live=True))
    for event in a_wave():
        sink.emit(event)  # type: ignore[arg-type]
    text = out.getvalue()
    assert "\x1b[2F" in text  # moved up over the two lines of the wave to redraw them
    last_frame = text.rsplit("\x1b[2F", 1)[1]
    assert last_frame == (
        "\x1b[2Kwave 3/6  statefulset/db  created     1/1 ready  2.4s\n"
        "\x1b[2Kwave 3/6  service/db      unchanged   exists  0.0s\n"
    )


def test_terminal_sink_shows_failures_pruning_lease_and_summary() -> None:
    out = io.StringIO()
    sink = emitter(TerminalSink(out, live=False))
    sink.emit(WaveStarted(1, 1, ("deployment/api",)))
    sink.emit(ObjectFailed(1, 1, "deployment/api", "ns", "exceeded quota: q", 1.0))
    sink.emit(Pruned("service/old", "ns", 3))
    sink.emit(LeaseRenewed("ns", None))
    sink.emit(summary(ok=False, message="deployment/api in ns: exceeded quota: q"))
    text = out.getvalue()
    assert "wave 1/1  deployment/api  " in text and "FAILED: exceeded quota: q  1.0s" in text
    assert "pruned    service/old in ns" in text
    assert "lease     namespace/ns: never expires" in text
    assert "FAILED environment shop (namespace envspec-shop) after 2.6s: deployment/api in ns" in text
    assert "3 created, 1 configured, 2 unchanged, 1 pruned" in text
    assert "waves 1:0.1s 2:2.4s" in text


def test_emitter_masks_secret_values_in_every_text() -> None:
    recorder = Recorder()
    sink = emitter(recorder).with_secrets(["s3cr3t-value-xyz", ""])
    sink.emit(ObjectFailed(1, 2, "secret/db", "ns", 'invalid value "postgres://u:s3cr3t-value-xyz@db"', 0.1))
    sink.emit(WaveStarted(1, 2, ("secret/s3cr3t-value-xyz",)))
    failed, started = recorder.events
    assert isinstance(failed, ObjectFailed) and isinstance(started, WaveStarted)
    assert "s3cr3t-value-xyz" not in failed.message and "******" in failed.message
    assert started.objects == ("secret/******",)
    assert {e.operation_id for e in recorder.envelopes} == {"op1"}  # the copy keeps the envelope


def test_formatting_of_durations_and_expiry() -> None:
    assert format_seconds(2.44) == "2.4s"
    assert format_seconds(125) == "2m05s"
    assert format_span(59) == "59s" and format_span(7140) == "1h59m" and format_span(3600) == "1h"
    assert format_span(2 * 86400 + 3 * 3600) == "2d3h"
    assert format_expiry("2026-01-01T14:00:00Z", now=NOW) == "expires in 2h (2026-01-01T14:00:00Z)"
    assert format_expiry("2026-01-01T11:57:00Z", now=NOW) == "expired 3m ago (2026-01-01T11:57:00Z)"
    assert format_expiry(None) == "never expires"
    assert "unreadable" in format_expiry("soon")


def screen(output: str) -> list[str]:
    """What a terminal shows after `output`: enough of VT100 for the sequences TerminalSink uses."""
    lines: list[str] = [""]
    row = 0
    position = 0
    while position < len(output):
        if output.startswith("\x1b[", position):
            end = position + 2
            while not output[end].isalpha():
                end += 1
            argument, command = output[position + 2 : end], output[end]
            if command == "F":  # cursor up N lines, to column 0
                row -= int(argument or 1)
            elif command == "K":  # clear the line
                lines[row] = ""
            elif command == "J":  # clear to the end of the screen
                del lines[row + 1 :]
                lines[row] = ""
            position = end + 1
            continue
        char = output[position]
        if char == "\n":
            row += 1
            if row == len(lines):
                lines.append("")
        else:
            lines[row] += char
        position += 1
    return [line for line in lines if line]


def test_live_lines_stay_in_place_when_other_lines_are_written_meanwhile() -> None:
    out = io.StringIO()
    sink = emitter(TerminalSink(out, live=True))
    sink.emit(WaveStarted(1, 2, ("namespace/ns",)))
    sink.emit(ObjectApplied(1, 2, "namespace/ns", None, "created", 0.01))
    sink.emit(LeaseRenewed("ns", None))
    sink.emit(ObjectReady(1, 2, "namespace/ns", None, "Active", 0.02))
    sink.emit(WaveStarted(2, 2, ("deployment/api", "service/api")))
    sink.emit(ObjectApplied(2, 2, "service/api", "ns", "created", 0.05))
    sink.emit(Pruned("deployment/old", "ns", 2))
    sink.emit(ObjectReady(2, 2, "service/api", "ns", "exists", 0.05))
    sink.emit(ObjectReady(2, 2, "deployment/api", "ns", "1/1 ready", 1.5))
    sink.emit(WaveFinished(2, 2, 1.5))
    assert screen(out.getvalue()) == [
        "lease     namespace/ns: never expires",
        "wave 1/2  namespace/ns  created     Active  0.0s",
        "pruned    deployment/old in ns",
        "wave 2/2  deployment/api              1/1 ready  1.5s",
        "wave 2/2  service/api     created     exists  0.1s",
    ]


def test_the_status_table_counts_waves_from_1_as_up_does_and_the_json_keeps_the_annotation() -> None:
    from envspec.kube.readiness import Readiness
    from envspec.operations.status import EnvironmentStatus, ObjectStatus
    from envspec.present import status_json, status_table

    status = EnvironmentStatus(
        "shop",
        "qa-shop",
        "Active",
        None,
        None,
        "shop",
        (
            ObjectStatus(0, "Namespace", "qa-shop", None, Readiness(True, True, "Active")),
            ObjectStatus(4, "Deployment", "api", "qa-shop", Readiness(False, True, "0/2 ready")),
            ObjectStatus(None, "ConfigMap", "extra", "qa-shop", Readiness(True, True, "exists")),
        ),
    )
    rows = [line.split()[0:2] for line in status_table(status).splitlines()[2:]]
    assert rows == [["1", "namespace/qa-shop"], ["5", "deployment/api"], ["-", "configmap/extra"]]
    assert [o["wave"] for o in status_json(status)["objects"]] == [0, 4, None]
