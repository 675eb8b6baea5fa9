"""`envspec logs`: the logs of a service's pods, a database's, or the pods of a test's last run.

Which pods: a service or a database by its labels (`app.kubernetes.io/name` and the
environment); a test by the Job of its newest run (`testrun.naming.latest_run_job`),
every pod of that Job (its retries). Each pod's log is read through
`kube.logs.stream_log` (resumed without repeats when the stream breaks); with several
pods, every line is prefixed with the pod's name. With `follow`, the pods are read at
once and the command lasts until they end (or Ctrl-C).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from envspec.errors import ClusterError, EnvspecError
from envspec.kube import kinds
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.logs import LogsUnavailable, job_pods, stream_log
from envspec.kube.ssa import list_objects
from envspec.kube.wait import task_group
from envspec.meta import ENVIRONMENT_LABEL, is_test_run_object, labels_of, metadata_of, name_of
from envspec.testrun.naming import latest_run_job, test_jobs_selector

Json = dict[str, Any]
JOB = kinds.MANAGED_KINDS[("batch/v1", "Job")]
NAME_LABEL = "app.kubernetes.io/name"
REQUEST_SECONDS = 60.0  # bounds retrying a broken stream, not how long a healthy one lasts

LineWriter = Callable[[str], None]


@dataclass(frozen=True)
class Component:
    """What `envspec logs NAME` reads: a service, a database or a test of the spec."""

    name: str
    role: str  # service, database, test
    container: str  # the compiler names the main container after the component


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None


@dataclass(frozen=True)
class LogsResult:
    pods: tuple[str, ...]
    lines: int

    def resources(self) -> tuple[str, ...]:
        return tuple(f"pod/{pod}" for pod in self.pods)


def find_component(name: str, *, services: Sequence[str], databases: Sequence[str], tests: Sequence[str]) -> Component:
    for role, names in (("service", services), ("database", databases), ("test", tests)):
        if name in names:
            return Component(name, role, name)
    known = [*services, *databases, *tests]
    raise EnvspecError(
        f"no service, database or test named {name!r} in the spec"
        + (f"; its components: {', '.join(known)}" if known else "")
    )


async def _pods(api: Any, component: Component, environment: str, namespace: str, deadline: Deadline) -> list[Json]:
    if component.role == "test":
        jobs = await list_objects(
            api, JOB, namespace, deadline=deadline, label_selector=test_jobs_selector(environment)
        )
        job = latest_run_job(jobs.items, environment=environment, test=component.name)
        if job is None:
            raise EnvspecError(f"test {component.name} has not run in environment {environment} (envspec test)")
        return await job_pods(api, name_of(job), namespace, deadline=deadline, job_uid=metadata_of(job).get("uid"))
    selector = f"{NAME_LABEL}={component.name},{ENVIRONMENT_LABEL}={environment}"
    listing = await list_objects(api, kinds.POD, namespace, deadline=deadline, label_selector=selector)
    pods = [pod for pod in listing.items if not is_test_run_object(pod) and labels_of(pod).get(NAME_LABEL)]
    return sorted(pods, key=lambda pod: (str(metadata_of(pod).get("creationTimestamp", "")), name_of(pod)))


async def show_logs(
    target: ClusterTarget,
    component: Component,
    *,
    environment: str,
    namespace: str,
    options: LogOptions,
    write: LineWriter,
    warn: LineWriter,
) -> LogsResult:
    """Write every line of the component's pods' logs through `write` (problems through `warn`)."""
    since = datetime.now(UTC) - timedelta(seconds=options.since_seconds) if options.since_seconds else None
    counted = 0
    async with connect(target) as api:
        pods = await _pods(api, component, environment, namespace, Deadline(REQUEST_SECONDS))
        if not pods:
            raise EnvspecError(f"{component.role} {component.name} has no pods in namespace {namespace}")
        names = tuple(name_of(pod) for pod in pods)
        several = len(names) > 1
        unavailable: list[str] = []

        async def read(pod: str) -> None:
            nonlocal counted
            lines = stream_log(
                api,
                pod,
                namespace,
                deadline=Deadline(REQUEST_SECONDS),
                container=component.container,
                follow=options.follow,
                tail_lines=options.tail_lines,
                since=since,
            )
            try:
                async for line in lines:
                    counted += 1
                    write(f"{pod} | {line.text}" if several else line.text)
            except LogsUnavailable as exc:
                unavailable.append(pod)
                warn(f"{pod}: no log: {exc.message.split('API server says: ', 1)[-1]}")
            finally:
                with anyio.CancelScope(shield=True):
                    await lines.aclose()

        if options.follow:
            async with task_group() as group:
                for pod in names:
                    group.start_soon(read, pod)
        else:
            for pod in names:
                await read(pod)
        if len(unavailable) == len(names):
            raise ClusterError(f"no log of {component.role} {component.name} is available ({', '.join(names)})")
    return LogsResult(names, counted)
