"""Reading a container's log through the API server (`pods/{name}/log`), and a Job's pods.

`stream_log` yields the log line by line. It always asks for `timestamps=true`, so
that a stream that breaks (connection reset, API server restart, a proxy's idle
cut) can be resumed with `sinceTime` without delivering a line twice:

- `sinceTime` has whole-second precision on the way from the API server to the
  kubelet, and the kubelet keeps every line whose timestamp is not before it. A
  resumed stream therefore starts with the lines of the last second already
  delivered. The reader remembers those lines (timestamp and text, in order) and
  skips them when they come again, so repeated lines with one timestamp are kept
  exactly as often as the container wrote them.
- A line cut by the break (no newline yet) is not delivered: it comes again, whole,
  in the resumed stream. At the normal end of the stream a last line without a
  newline is delivered.

With `follow=True` the stream ends when the container terminates (the kubelet
closes it) or the pod is deleted; the caller ends it earlier by cancelling or by
closing the generator (`contextlib.aclosing`).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
from kr8s import APITimeoutError, ServerError

from envspec.errors import ClusterError
from envspec.kube.client import REQUEST_TIMEOUT, transport_reason
from envspec.kube.deadline import Deadline
from envspec.kube.kinds import POD
from envspec.kube.ssa import (
    _retry_after,
    backoff_delay,
    get_object,
    is_transient,
    list_objects,
    server_message,
    status_code,
)
from envspec.kube.times import format_server_time

Json = dict[str, Any]

# The label the Job controller puts on its pods (since 1.27, beside the older `job-name`;
# envspec supports 1.28 and later).
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"

# A follow stream that has been silent this long is re-opened (from where it was):
# cheaper than trusting a connection that may be half-open. Quiet tests cost one
# request per period.
IDLE_SECONDS = 60.0

_NANOS_PER_SECOND = 1_000_000_000
_TIMESTAMP = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?(?P<zone>Z|[+-]\d{2}:\d{2})"
)


@dataclass(frozen=True)
class LogLine:
    """One line of a container's log, without its newline."""

    text: str
    nanos: int | None  # the kubelet's timestamp, nanoseconds since the epoch; None: the line had none

    @property
    def time(self) -> datetime | None:
        """The timestamp as an aware UTC datetime (microsecond precision)."""
        if self.nanos is None:
            return None
        seconds, rest = divmod(self.nanos, _NANOS_PER_SECOND)
        return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)


class LogsUnavailable(ClusterError):
    """The API server has no log for the container (HTTP 400).

    Either the container has not started yet (`... is waiting to start:
    ContainerCreating`), or no log was kept for it (`no logs found for container`:
    kwok's kubelet, without log files configured). The caller knows which from the
    pod's container state.
    """


def parse_timestamp(text: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 timestamp with up to 9 fraction digits, or None."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return None
    zone = match.group("zone").replace("Z", "+00:00")
    try:
        whole = datetime.fromisoformat(match.group("date") + zone)
    except ValueError:
        return None
    fraction = (match.group("fraction") or "").ljust(9, "0")
    return int(whole.timestamp()) * _NANOS_PER_SECOND + int(fraction or 0)


def parse_log_line(raw: bytes) -> LogLine:
    """A line as the API server sends it with `timestamps=true`: `<RFC 3339 nano> <text>`."""
    text = raw.decode("utf-8", errors="replace")
    stamp, separator, rest = text.partition(" ")
    nanos = parse_timestamp(stamp)
    if nanos is None:
        return LogLine(text, None)
    return LogLine(rest if separator else "", nanos)


def since_time(nanos: int) -> str:
    """The `sinceTime` value for a timestamp: RFC 3339 in UTC, whole seconds (rounded down)."""
    seconds = nanos // _NANOS_PER_SECOND
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LogCursor:
    """Where a log stream got to, so that a resumed stream skips what was already delivered.

    A stream resumed at `resume_from` holds, in the log's order: lines of that second
    that were never delivered because `tailLines` left them out, then the lines of
    that second that were delivered (remembered here, in order), then new lines.
    """

    def __init__(self) -> None:
        self.second: int | None = None  # whole seconds of the newest timestamp delivered
        self._newest: int | None = None  # the newest timestamp delivered
        self._recent: list[tuple[int, str]] = []  # delivered lines of `second`, in order
        self._replay: deque[tuple[int, str]] = deque()  # what a resumed stream is expected to repeat
        self._matching = False  # the resumed stream has reached the first repeated line

    @property
    def resume_from(self) -> str | None:
        """`sinceTime` for a resumed stream, or None when no timestamped line was delivered yet."""
        return None if self.second is None else since_time(self.second * _NANOS_PER_SECOND)

    def resumed(self) -> None:
        """A new stream starts at `resume_from`."""
        self._replay = deque(self._recent)
        self._matching = False

    def admit(self, line: LogLine) -> bool:
        """Whether to deliver `line` (False: already delivered, or left out before); records it."""
        if self._replay:
            if line.nanos is not None and (line.nanos, line.text) == self._replay[0]:
                self._replay.popleft()
                self._matching = True
                return False
            if not self._matching and _not_after(line.nanos, self._newest):
                return False  # before the first line delivered of that second: left out by tailLines
            self._replay.clear()  # the log is not what it was (rotated?): deliver from here
        if line.nanos is None:
            return True
        second = line.nanos // _NANOS_PER_SECOND
        if self.second is None or second > self.second:
            self.second = second
            self._recent = []
        if second == self.second:
            # An older second (stdout and stderr lines may interleave out of order) is
            # not repeated by a stream resumed at `self.second`: nothing to remember.
            self._recent.append((line.nanos, line.text))
        self._newest = line.nanos if self._newest is None else max(self._newest, line.nanos)
        return True


def _not_after(nanos: int | None, newest: int | None) -> bool:
    return nanos is not None and newest is not None and nanos <= newest


def _log_location(pod: str, namespace: str) -> dict[str, Any]:
    return {**POD.location(pod, namespace), "url": f"pods/{pod}/log"}


def _log_params(
    *, container: str | None, follow: bool, tail_lines: int | None, since: datetime | None, cursor: LogCursor
) -> dict[str, str]:
    params = {"timestamps": "true"}
    if follow:
        params["follow"] = "true"
    if container:
        params["container"] = container
    resume_from = cursor.resume_from
    if resume_from is not None:
        params["sinceTime"] = resume_from  # tailLines counted from the start only
    else:
        if tail_lines is not None:
            params["tailLines"] = str(tail_lines)
        if since is not None:
            params["sinceTime"] = format_server_time(since)
    return params


class _Broken(Exception):
    """The stream broke before its end: resume it, at once when `at_once`, else after a backoff."""

    def __init__(self, reason: str, *, at_once: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.at_once = at_once


async def stream_log(
    api: Any,
    pod: str,
    namespace: str,
    *,
    deadline: Deadline,
    container: str | None = None,
    follow: bool = True,
    tail_lines: int | None = None,
    since: datetime | None = None,
    idle_seconds: float = IDLE_SECONDS,
) -> AsyncGenerator[LogLine, None]:
    """The log of `container` (default: the pod's only one) of `pod`, line by line.

    With `follow`, the stream is resumed whenever it breaks or ends while the
    container still runs, and ends when the container has terminated or the pod is
    gone. Raises `LogsUnavailable` when the container has no log (not started yet,
    or none kept), `ClusterError` for a pod that does not exist, a refused request,
    or a stream that cannot be re-opened before `deadline` (which bounds retrying
    only: a healthy stream lasts as long as the container).
    """
    doing = f"reading the log of pod/{pod} in {namespace}" + (f" (container {container})" if container else "")
    cursor = LogCursor()
    # The read timeout is the idle period of a follow stream; the rest as for every request.
    timeout = httpx.Timeout(
        connect=REQUEST_TIMEOUT.connect, read=idle_seconds, write=REQUEST_TIMEOUT.write, pool=REQUEST_TIMEOUT.pool
    )
    failures = 0  # consecutive attempts without a new line
    opened = False
    while True:
        params = _log_params(container=container, follow=follow, tail_lines=tail_lines, since=since, cursor=cursor)
        if opened:
            cursor.resumed()
        try:
            async with api.call_api(
                "GET", **_log_location(pod, namespace), stream=True, params=params, timeout=timeout
            ) as response:
                opened = True
                pending = b""
                try:
                    async for chunk in response.aiter_bytes():
                        lines = (pending + chunk).split(b"\n")
                        pending = lines.pop()
                        for raw in lines:
                            line = parse_log_line(raw)
                            if cursor.admit(line):
                                failures = 0
                                yield line
                except (APITimeoutError, httpx.TimeoutException) as exc:
                    raise _Broken("no log line for a while", at_once=True) from exc
                except httpx.TransportError as exc:
                    raise _Broken(transport_reason(exc)) from exc
            if pending:  # the last line of a log that does not end with a newline
                line = parse_log_line(pending)
                if cursor.admit(line):
                    yield line
            # The kubelet ends a follow stream when the container terminates; anything
            # else that closes it cleanly (an API server shutting down) must not end it.
            if not follow or not await _still_running(api, pod, namespace, container, deadline):
                return
            raise _Broken("the stream ended while the container still runs")
        except _Broken as broken:
            if not broken.at_once:
                failures += 1
                await _pause(doing, broken.reason, failures, deadline, None)
        except ServerError as exc:
            code = status_code(exc)
            if code == 404 and opened:
                return  # the pod was deleted while its log was read: nothing more will come
            if code == 400:
                raise LogsUnavailable(f"{doing}: API server says: {server_message(exc)}") from exc
            if not is_transient(code):
                raise ClusterError(f"{doing}: API server says: {server_message(exc)}") from exc
            failures += 1
            reason = f"API server answered {code}: {server_message(exc)}"
            await _pause(doing, reason, failures, deadline, _retry_after(exc))
        except APITimeoutError:
            failures += 1
            await _pause(doing, "the API server did not answer in time", failures, deadline, None)
        except httpx.TransportError as exc:
            failures += 1
            await _pause(doing, transport_reason(exc), failures, deadline, None)


async def _still_running(api: Any, pod: str, namespace: str, container: str | None, deadline: Deadline) -> bool:
    """Whether the container (default: any container) of the pod is running now."""
    live = await get_object(api, POD, pod, namespace, deadline=deadline)
    if live is None or (live.get("metadata") or {}).get("deletionTimestamp"):
        return False
    statuses = (live.get("status") or {}).get("containerStatuses") or []
    return any(
        "running" in (status.get("state") or {})
        for status in statuses
        if container is None or status.get("name") == container
    )


async def _pause(doing: str, reason: str, failures: int, deadline: Deadline, retry_after: float | None) -> None:
    delay = backoff_delay(failures, retry_after)
    if delay >= deadline.remaining():
        raise ClusterError(f"{doing}: {reason} (gave up after {failures} attempts in {deadline.elapsed():.1f}s)")
    await anyio.sleep(delay)


def job_pod_selector(job: str) -> str:
    """The label selector of the pods of Job `job`."""
    return f"{JOB_NAME_LABEL}={job}"


async def job_pods(api: Any, job: str, namespace: str, *, deadline: Deadline, job_uid: str | None = None) -> list[Json]:
    """The pods of Job `job`, oldest first; with `job_uid`, only those that Job object owns.

    `job_uid` tells apart the pods of a same-named Job that was deleted and created again.
    """
    pods = (await list_objects(api, POD, namespace, deadline=deadline, label_selector=job_pod_selector(job))).items
    if job_uid is not None:
        pods = [
            pod
            for pod in pods
            if any(ref.get("uid") == job_uid for ref in (pod.get("metadata") or {}).get("ownerReferences") or [])
        ]
    return sorted(pods, key=_creation_order)


def _creation_order(pod: Json) -> tuple[str, str]:
    metadata = pod.get("metadata") or {}
    return str(metadata.get("creationTimestamp", "")), str(metadata.get("name", ""))
