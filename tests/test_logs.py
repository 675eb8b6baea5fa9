"""Reading container logs: the stream reader against a local HTTP server that breaks streams.

The server (tests/log_server.py) answers `pods/{name}/log` as the API server does
with `timestamps=true`, from a recorded log, and drops, cuts, stalls or fails the
stream as each test scripts it. The client is envspec's own (`connect` + kr8s).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from envspec.errors import ClusterError
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.logs import (
    LogCursor,
    LogLine,
    LogsUnavailable,
    job_pods,
    parse_log_line,
    parse_timestamp,
    since_time,
    stream_log,
)
from tests.cluster_fixtures import kubectl
from tests.log_server import Answer, LogServer, serving, write_kubeconfig

SECOND = 1_000_000_000
BASE = parse_timestamp("2026-03-01T09:30:00Z") or 0


def stamp(second: int, nano: int) -> str:
    instant = datetime.fromtimestamp(BASE // SECOND + second, UTC)
    return f"{instant:%Y-%m-%dT%H:%M:%S}.{nano:09d}Z"


# A log of 12 lines over 4 seconds. Second 1 holds the same text twice at one timestamp
# (a program may print one line twice in a nanosecond's time) and again later.
RECORDED = [
    f"{stamp(0, 100)} collecting 3 items",
    f"{stamp(0, 200)} test_login PASSED",
    f"{stamp(1, 0)} retrying",
    f"{stamp(1, 0)} retrying",
    f"{stamp(1, 5)} retrying",
    f"{stamp(1, 999_999_999)} test_checkout PASSED",
    f"{stamp(2, 1)} test_refund FAILED",
    f"{stamp(2, 2)} ",
    f"{stamp(2, 3)} E   assert 402 == 200",
    f"{stamp(3, 0)} ===== 1 failed, 2 passed =====",
    f"{stamp(3, 1)} exit status 1",
    f"{stamp(3, 2)} bye",
]
TEXTS = [line.split(" ", 1)[1] for line in RECORDED]


def read_all(server: LogServer, tmp_path: Path, **options: Any) -> list[LogLine]:
    async def main() -> list[LogLine]:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
        async with connect(ClusterTarget(str(kubeconfig))) as api:
            deadline = options.pop("deadline", Deadline(30))
            return [line async for line in stream_log(api, "p", "ns", deadline=deadline, **options)]

    with serving(server):
        return anyio.run(main)


def texts(lines: Sequence[LogLine]) -> list[str]:
    return [line.text for line in lines]


# Resuming a stream that breaks


@pytest.mark.parametrize("delivered", range(len(RECORDED)))
def test_a_stream_dropped_after_any_line_is_resumed_without_losing_or_repeating_lines(
    tmp_path: Path, delivered: int
) -> None:
    server = LogServer(RECORDED, [Answer(lines=delivered)])
    assert texts(read_all(server, tmp_path)) == TEXTS
    assert len(server.requests) == 2


@pytest.mark.parametrize("delivered", [0, 2, 3, 5, 9])
def test_a_line_cut_in_half_by_the_break_is_delivered_once_whole(tmp_path: Path, delivered: int) -> None:
    server = LogServer(RECORDED, [Answer(lines=delivered, cut=True)])
    assert texts(read_all(server, tmp_path)) == TEXTS


def test_the_resumed_request_starts_at_the_second_of_the_last_line_seen(tmp_path: Path) -> None:
    server = LogServer(RECORDED, [Answer(lines=4, cut=True)])
    read_all(server, tmp_path, tail_lines=100)
    first, resumed = server.requests
    assert first == {"timestamps": "true", "follow": "true", "tailLines": "100"}
    assert resumed == {"timestamps": "true", "follow": "true", "sinceTime": since_time(BASE + 1 * SECOND)}


def test_a_stream_that_breaks_again_and_again_still_delivers_each_line_once(tmp_path: Path) -> None:
    server = LogServer(RECORDED, [Answer(lines=1), Answer(lines=3, cut=True), Answer(lines=2), Answer(lines=4)])
    assert texts(read_all(server, tmp_path)) == TEXTS
    assert len(server.requests) == 5


def test_tail_lines_are_counted_once_from_the_end_of_the_log(tmp_path: Path) -> None:
    server = LogServer(RECORDED, [Answer(lines=2)])
    assert texts(read_all(server, tmp_path, tail_lines=5)) == TEXTS[-5:]
    assert "tailLines" not in server.requests[1]


def test_a_stream_that_breaks_before_its_first_line_asks_again_as_the_first_time(tmp_path: Path) -> None:
    since = datetime.fromtimestamp(BASE // SECOND + 2, UTC)
    server = LogServer(RECORDED, [Answer(lines=0, cut=True)])
    assert texts(read_all(server, tmp_path, tail_lines=4, since=since)) == TEXTS[-4:]
    assert server.requests[0] == server.requests[1]
    assert server.requests[0]["sinceTime"] == since_time(BASE + 2 * SECOND)


def test_a_quiet_stream_is_reopened_from_where_it_was(tmp_path: Path) -> None:
    server = LogServer(RECORDED, [Answer(lines=7, stall=True)])
    assert texts(read_all(server, tmp_path, idle_seconds=0.5)) == TEXTS
    assert server.disconnected.is_set()


def test_a_follow_stream_that_ends_while_the_container_runs_is_resumed(tmp_path: Path) -> None:
    states: list[dict[str, Any]] = [{"running": {"startedAt": "2026-03-01T09:30:00Z"}}, {"terminated": {"exitCode": 1}}]
    server = LogServer(RECORDED, [Answer(lines=6, end=True)], container_states=states)
    assert texts(read_all(server, tmp_path)) == TEXTS
    assert len(server.requests) == 2
    assert server.pod_reads == 2  # once after each end of stream


def test_a_follow_stream_ends_when_the_container_has_terminated(tmp_path: Path) -> None:
    server = LogServer(RECORDED)
    assert texts(read_all(server, tmp_path)) == TEXTS
    assert (len(server.requests), server.pod_reads) == (1, 1)


def test_without_follow_the_log_is_read_once(tmp_path: Path) -> None:
    server = LogServer(RECORDED, [Answer(lines=3)])
    assert texts(read_all(server, tmp_path, follow=False)) == TEXTS
    assert all("follow" not in query for query in server.requests)
    assert server.pod_reads == 0


def test_a_last_line_without_a_newline_is_delivered_at_the_end_of_the_log(tmp_path: Path) -> None:
    server = LogServer(RECORDED, final_newline=False)
    assert texts(read_all(server, tmp_path)) == TEXTS


# Errors


def test_answers_429_and_503_are_retried(tmp_path: Path) -> None:
    answers = [Answer(status=503, message="unavailable"), Answer(status=429, message="slow down")]
    server = LogServer(RECORDED, answers)
    assert texts(read_all(server, tmp_path)) == TEXTS
    assert len(server.requests) == 3


def test_retrying_stops_at_the_deadline(tmp_path: Path) -> None:
    server = LogServer(RECORDED, [Answer(status=503, message="etcd is down")] * 10)
    with pytest.raises(ClusterError, match=r"pod/p in ns: API server answered 503: etcd is down \(gave up after 1"):
        read_all(server, tmp_path, deadline=Deadline(0))


@pytest.mark.parametrize(
    "message",
    [
        'container "t" in pod "p" is waiting to start: ContainerCreating',
        'no logs found for container "t" in pod "ns/p"',  # kwok's kubelet without log files
    ],
)
def test_a_container_without_a_log_is_said_so_with_the_server_message(tmp_path: Path, message: str) -> None:
    server = LogServer(RECORDED, [Answer(status=400, message=message)])
    with pytest.raises(LogsUnavailable, match=re.escape(message)):
        read_all(server, tmp_path)
    assert len(server.requests) == 1  # not retried: the caller decides from the pod's state


def test_a_pod_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    server = LogServer(RECORDED, [Answer(status=404, message='pods "p" not found')])
    with pytest.raises(ClusterError, match='reading the log of pod/p in ns: API server says: pods "p" not found'):
        read_all(server, tmp_path)


def test_a_pod_deleted_while_its_log_is_read_ends_the_stream(tmp_path: Path) -> None:
    server = LogServer(RECORDED, [Answer(lines=3, cut=True), Answer(status=404, message='pods "p" not found')])
    assert texts(read_all(server, tmp_path)) == TEXTS[:3]


def test_a_refused_request_is_an_error_naming_the_container(tmp_path: Path) -> None:
    server = LogServer(RECORDED, [Answer(status=422, message="nope")])
    with pytest.raises(ClusterError, match=r"\(container t\): API server says: nope"):
        read_all(server, tmp_path, container="t")
    assert server.requests[0]["container"] == "t"


# Ending the stream early


def test_closing_the_reader_closes_the_connection(tmp_path: Path) -> None:
    server = LogServer(RECORDED, [Answer(lines=5, stall=True)])
    got: list[str] = []

    async def main() -> None:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
        async with (
            connect(ClusterTarget(str(kubeconfig))) as api,
            aclosing(stream_log(api, "p", "ns", deadline=Deadline(30))) as lines,
        ):
            async for line in lines:
                got.append(line.text)
                if len(got) == 2:
                    break

    with serving(server):
        anyio.run(main)
        assert server.disconnected.wait(30)
    assert got == TEXTS[:2]


def test_cancelling_the_reader_closes_the_connection(tmp_path: Path) -> None:
    server = LogServer(RECORDED, [Answer(lines=5, stall=True)])
    got: list[str] = []

    async def main() -> None:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
        async with connect(ClusterTarget(str(kubeconfig))) as api, anyio.create_task_group() as group:

            async def read() -> None:
                async for line in stream_log(api, "p", "ns", deadline=Deadline(30)):
                    got.append(line.text)
                    if len(got) == 5:
                        group.cancel_scope.cancel()

            group.start_soon(read)

    with serving(server):
        anyio.run(main)
        assert server.disconnected.wait(30)
    assert got == TEXTS[:5]


# The pure parts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T09:30:00Z", BASE),
        ("2026-03-01T09:30:00.5Z", BASE + 500_000_000),
        ("2026-03-01T09:30:00.123456789Z", BASE + 123_456_789),
        ("2026-03-01T10:30:00.000000001+01:00", BASE + 1),
        ("2026-03-01 09:30:00Z", None),
        ("2026-03-01T09:30:00.1234567890Z", None),
        ("2026-03-01T09:30:00", None),
        ("hello", None),
    ],
)
def test_parse_timestamp(text: str, expected: int | None) -> None:
    assert parse_timestamp(text) == expected


def test_a_line_is_split_into_its_timestamp_and_text() -> None:
    line = parse_log_line(b"2026-03-01T09:30:00.123456789Z  two spaces kept \xe2\x9c\x93")
    assert line == LogLine(" two spaces kept \u2713", BASE + 123_456_789)
    assert line.time == datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=UTC)


def test_a_line_without_a_timestamp_is_kept_whole() -> None:
    assert parse_log_line(b"unable to retrieve container logs") == LogLine("unable to retrieve container logs", None)
    assert parse_log_line(b"2026-03-01T09:30:00Z") == LogLine("", BASE)
    assert parse_log_line(b"\xff invalid utf-8").text == "\ufffd invalid utf-8"


def test_since_time_rounds_down_to_the_second() -> None:
    assert since_time(BASE + 999_999_999) == "2026-03-01T09:30:00Z"


def cursor_run(cursor: LogCursor, lines: Sequence[LogLine]) -> list[str]:
    return [line.text for line in lines if cursor.admit(line)]


def test_the_cursor_skips_exactly_the_lines_a_resumed_stream_repeats() -> None:
    cursor = LogCursor()
    first = [LogLine("a", BASE + 1), LogLine("b", BASE + SECOND), LogLine("b", BASE + SECOND)]
    assert cursor_run(cursor, first) == ["a", "b", "b"]
    assert cursor.resume_from == since_time(BASE + SECOND)
    cursor.resumed()
    again = [LogLine("b", BASE + SECOND), LogLine("b", BASE + SECOND), LogLine("b", BASE + SECOND)]
    assert cursor_run(cursor, again) == ["b"]  # the third "b" is new


def test_the_cursor_keeps_lines_written_out_of_order() -> None:
    cursor = LogCursor()
    # stderr and stdout interleave: a line of an earlier second after a later one.
    lines = [LogLine("late", BASE + 2 * SECOND), LogLine("early", BASE + SECOND), LogLine("next", BASE + 2 * SECOND)]
    assert cursor_run(cursor, lines) == ["late", "early", "next"]
    cursor.resumed()
    # A stream resumed at second 2 holds no line of second 1.
    assert cursor_run(cursor, [lines[0], lines[2], LogLine("new", BASE + 3 * SECOND)]) == ["new"]


def test_a_resumed_stream_that_differs_from_what_was_seen_is_delivered_from_there() -> None:
    cursor = LogCursor()
    cursor_run(cursor, [LogLine("a", BASE), LogLine("b", BASE + 1)])
    cursor.resumed()
    # The log was rotated: "b" is gone; everything from the first difference is new.
    assert cursor_run(cursor, [LogLine("a", BASE), LogLine("c", BASE + 2), LogLine("b", BASE + 1)]) == ["c", "b"]


def test_a_cursor_without_timestamped_lines_resumes_from_the_start() -> None:
    cursor = LogCursor()
    assert cursor_run(cursor, [LogLine("no stamp", None)]) == ["no stamp"]
    assert cursor.resume_from is None


# A Job's pods, on the real API server


JOB = """
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}}}
spec:
  completions: {completions}
  parallelism: 1
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: t, image: "busybox:1.36", command: ["true"]}}]
"""


def _pods_when(
    kubeconfig: str, job: str, namespace: str, count: int, *, job_uid: str | None = None
) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        async with connect(ClusterTarget(kubeconfig)) as api:
            with anyio.fail_after(120):
                while True:
                    pods = await job_pods(api, job, namespace, deadline=Deadline(30), job_uid=job_uid)
                    if len(pods) >= count:
                        return pods
                    await anyio.sleep(0.2)

    return anyio.run(main)


@pytest.mark.cluster
def test_job_pods_lists_the_pods_of_one_job_oldest_first(kube_cluster: Any, kube_namespace: str) -> None:
    kubectl(kube_cluster, "apply", "-n", kube_namespace, "-f", "-", stdin=JOB.format(name="suite", completions=2))
    kubectl(kube_cluster, "apply", "-n", kube_namespace, "-f", "-", stdin=JOB.format(name="suite-2", completions=1))
    uid = kubectl(kube_cluster, "get", "job", "suite", "-n", kube_namespace, "-o", "jsonpath={.metadata.uid}")
    pods = _pods_when(kube_cluster.kubeconfig, "suite", kube_namespace, 2)
    assert len(pods) == 2
    assert all(pod["metadata"]["name"].startswith("suite-") for pod in pods)
    assert all(pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "suite" for pod in pods)
    stamps = [pod["metadata"]["creationTimestamp"] for pod in pods]
    assert stamps == sorted(stamps)
    owned = _pods_when(kube_cluster.kubeconfig, "suite", kube_namespace, 2, job_uid=uid)
    assert [pod["metadata"]["name"] for pod in owned] == [pod["metadata"]["name"] for pod in pods]
    other = _pods_when(kube_cluster.kubeconfig, "suite-2", kube_namespace, 1)
    assert [pod["metadata"]["labels"]["job-name"] for pod in other] == ["suite-2"]


@pytest.mark.cluster
def test_job_pods_of_another_job_uid_are_left_out(kube_cluster: Any, kube_namespace: str) -> None:
    kubectl(kube_cluster, "apply", "-n", kube_namespace, "-f", "-", stdin=JOB.format(name="suite", completions=1))
    _pods_when(kube_cluster.kubeconfig, "suite", kube_namespace, 1)
    other_uid = "00000000-0000-0000-0000-000000000000"
    assert _pods_when(kube_cluster.kubeconfig, "suite", kube_namespace, 0, job_uid=other_uid) == []
