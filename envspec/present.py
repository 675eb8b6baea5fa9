"""How results and events read: for people (text) and for machines (JSON).

Every command's output is rendered here, from typed values: the events of a run
(used by the terminal sink) and the results of `status`, `ls`, `diff`, `gc` and
`extend`. JSON uses one key style, snake_case, everywhere (as the events do).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from envspec.meta import format_instant, format_span, parse_instant

# Types only: rendering `validate` or `cluster status` imports neither the cluster client nor
# the event classes.
if TYPE_CHECKING:
    from envspec.cluster import ClusterStatus
    from envspec.defaults import ValidSpec
    from envspec.events import (
        Envelope,
        GcDeleted,
        GcStuck,
        GcSweepFinished,
        LeaseRenewed,
        Summary,
        TestFinished,
        TestJobsDeleted,
        TestStarted,
        TestSummary,
        WatchCycle,
        WatchStopped,
    )
    from envspec.operations.diff import DiffResult
    from envspec.operations.status import EnvironmentListing, EnvironmentStatus


def format_seconds(seconds: float) -> str:
    """`0.4s`, `12.3s`, `2m05s`."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def format_expiry(expires_at: str | None, *, now: datetime | None = None) -> str:
    """`expires in 1h59m (2026-01-01T12:00:00Z)`, `expired 3m ago`, `never expires`."""
    if expires_at is None:
        return "never expires"
    try:
        instant = parse_instant(expires_at)
    except ValueError:
        return f"expiry unreadable ({expires_at})"
    left = (instant - (now or datetime.now(UTC))).total_seconds()
    if left < 0:
        return f"expired {format_span(-left)} ago ({expires_at})"
    return f"expires in {format_span(left)} ({expires_at})"


def summary_text(summary: Summary) -> str:
    counts = f"{summary.created} created, {summary.configured} configured, {summary.unchanged} unchanged"
    if summary.pruned:
        counts += f", {summary.pruned} pruned"
    waves = " ".join(f"{i}:{format_seconds(s)}" for i, s in enumerate(summary.wave_seconds, 1))
    where = f"environment {summary.environment} (namespace {summary.namespace})"
    if not summary.ok:
        head = f"FAILED {where} after {format_seconds(summary.seconds)}: {summary.message}"
    elif not summary.waited:
        head = f"applied {where} in {format_seconds(summary.seconds)} (not waiting for readiness)"
    else:
        head = f"ready   {where} in {format_seconds(summary.seconds)}"
    lines = [head, f"        {counts}"]
    if waves:
        lines.append(f"        waves {waves}")
    lines.append(f"        {format_expiry(summary.expires_at)}")
    return "\n".join(lines)


def deletion_reason(event: GcDeleted) -> str:
    text = f"expired at {event.expired_at} ({format_span(event.expired_seconds_ago)} ago)"
    if event.age_seconds is not None:
        text += f", age {format_span(event.age_seconds)}"
    return text


def sweep_summary(event: GcSweepFinished) -> str:
    deleted = f"{event.deleted} would be deleted" if event.dry_run else f"{event.deleted} deleted"
    parts = [deleted, f"{event.kept} not expired", f"{event.never} never expire"]
    for count, label in (
        (event.skipped, "skipped"),
        (event.terminating, "terminating"),
        (event.stuck, "stuck"),
        (event.failed, "failed"),
    ):
        if count:
            parts.append(f"{count} {label}")
    noun = "environment" if event.examined == 1 else "environments"
    dry = " (dry run: nothing deleted)" if event.dry_run else ""
    return f"gc: {event.examined} {noun} in {format_seconds(event.seconds)}: {', '.join(parts)}{dry}"


def lease_text(event: LeaseRenewed, envelope: Envelope | None = None) -> str:
    """`up`'s and watch's lease line; `extend`'s sentence, which also says what the expiry was."""
    if event.previous is None and (envelope is None or envelope.operation != "extend"):
        return f"lease     namespace/{event.namespace}: {format_expiry(event.expires_at)}"
    environment = envelope.environment if envelope is not None and envelope.environment else event.namespace
    text = f"extended environment {environment} (namespace {event.namespace}): "
    if event.expires_at is None:
        return text + "never expires"
    left = (parse_instant(event.expires_at) - (envelope.time if envelope else datetime.now(UTC))).total_seconds()
    text += f"expires at {event.expires_at}, in {format_span(round(left))}"
    if event.previous:
        try:
            before = format_instant(parse_instant(event.previous))
        except ValueError:
            before = repr(event.previous)
        text += f" (was {before})"
    return text


def stuck_reason(event: GcStuck) -> str:
    return f"Terminating for {format_span(event.terminating_seconds)}: " + (
        "; ".join(event.blockers) or "no condition says why"
    )


def watch_stopped_text(event: WatchStopped) -> str:
    if event.taken_down:
        return f"stopped watching; environment {event.environment} taken down"
    return (
        f"stopped watching; environment {event.environment} left running in namespace "
        f"{event.namespace} (envspec down --name {event.environment} deletes it)"
    )


def columns(rows: Sequence[Sequence[str]]) -> str:
    """Rows as aligned columns (two spaces apart), the last one free: kubectl's table style."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]]) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def cycle_text(event: WatchCycle) -> str:
    """`cycle 3  +deployment/cache ~deployment/api -service/old  3 writes  ready in 0.8s`."""
    changes = [f"+{ref}" for ref in event.created]
    changes += [f"~{ref}" for ref in event.configured]
    changes += [f"-{ref}" for ref in event.pruned]
    what = " ".join(changes) or "no change"
    if not event.ok:
        return f"cycle {event.cycle}  {what}  FAILED after {format_seconds(event.seconds)}: {event.message}"
    if not changes:
        return f"cycle {event.cycle}  no change  ({format_seconds(event.seconds)})"
    writes = f"{event.writes} write{'s' if event.writes != 1 else ''}"
    return f"cycle {event.cycle}  {what}  {writes}  ready in {format_seconds(event.seconds)}"


# ---------------------------------------------------------------- results of status, ls, diff


def seconds_left(expires_at: str | None, now: datetime | None = None) -> int | None:
    """Whole seconds until the expiry (negative once passed); None for none or an unreadable one."""
    if not expires_at:
        return None
    try:
        instant = parse_instant(expires_at)
    except ValueError:
        return None
    return int((instant - (now or datetime.now(UTC))).total_seconds())


def status_table(status: EnvironmentStatus, *, now: datetime | None = None) -> str:
    head = (
        f"environment {status.environment}  namespace {status.namespace}  "
        f"ready {status.ready_count}/{len(status.objects)}  {format_expiry(status.expires_at, now=now)}"
    )
    rows = [("WAVE", "OBJECT", "READY", "MESSAGE")]
    for obj in status.objects:
        state = "yes" if obj.ready else "FAILED" if obj.readiness.failed else "no"
        # Counted from 1, as `up` shows its waves; the JSON keeps the annotation's 0-based value.
        rows.append(("-" if obj.wave is None else str(obj.wave + 1), obj.ref, state, obj.readiness.message))
    return head + "\n" + columns(rows)


def status_json(status: EnvironmentStatus, *, now: datetime | None = None) -> dict[str, Any]:
    return {
        "environment": status.environment,
        "namespace": status.namespace,
        "phase": status.phase,
        "expires_at": status.expires_at,
        "expires_in_seconds": seconds_left(status.expires_at, now),
        "ready": status.ready_count,
        "total": len(status.objects),
        "objects": [
            {
                "wave": o.wave,
                "kind": o.kind,
                "name": o.name,
                "namespace": o.namespace,
                "present": o.present,
                "ready": o.ready,
                "failed": o.readiness.failed,
                "message": o.readiness.message,
            }
            for o in status.objects
        ],
    }


def ls_table(listings: Sequence[EnvironmentListing], *, now: datetime | None = None) -> str:
    if not listings:
        return "no envspec environments on this cluster"
    moment = now or datetime.now(UTC)
    rows = [("NAME", "NAMESPACE", "AGE", "EXPIRES IN", "READY")]
    for env in listings:
        age = format_span((moment - env.created).total_seconds()) if env.created else "?"
        left = seconds_left(env.expires_at, moment)
        if env.expires_at is None:
            expires = "never"
        elif left is None:
            expires = "?"
        else:
            expires = "expired" if left < 0 else format_span(left)
        ready = f"{env.ready}/{env.total}" + ("  (terminating)" if env.phase == "Terminating" else "")
        rows.append((env.environment, env.namespace, age, expires, ready))
    return columns(rows)


def ls_json(listings: Sequence[EnvironmentListing], *, now: datetime | None = None) -> list[dict[str, Any]]:
    moment = now or datetime.now(UTC)
    return [
        {
            "name": env.environment,
            "namespace": env.namespace,
            "phase": env.phase,
            "created_at": format_instant(env.created) if env.created else None,
            "age_seconds": int((moment - env.created).total_seconds()) if env.created else None,
            "expires_at": env.expires_at,
            "expires_in_seconds": seconds_left(env.expires_at, moment),
            "ready": env.ready,
            "total": env.total,
        }
        for env in listings
    ]


def diff_text(result: DiffResult) -> str:
    if not result.changed:
        return f"no differences: environment {result.environment} (namespace {result.namespace}) matches the spec"
    parts: list[str] = []
    for difference in result.differences:
        where = f" in {difference.namespace}" if difference.namespace else ""
        reason = f" ({difference.reason})" if difference.reason else ""
        if difference.change == "prune":
            parts.append(f"- {difference.ref}{where} would be pruned{reason}\n")
        else:
            verb = "created" if difference.change == "create" else "changed"
            sign = "+" if difference.change == "create" else "~"
            parts.append(f"{sign} {difference.ref}{where} would be {verb}{reason}\n")
            parts.append(difference.text)
    summary = (
        f"{len(result.differences)} difference(s): {result.count('create')} to create, "
        f"{result.count('update')} to change, {result.count('prune')} to prune"
    )
    return "".join(parts) + summary


def diff_json(result: DiffResult) -> dict[str, Any]:
    return {
        "environment": result.environment,
        "namespace": result.namespace,
        "changed": result.changed,
        "differences": [
            {"ref": d.ref, "namespace": d.namespace, "change": d.change, "reason": d.reason, "diff": d.text}
            for d in result.differences
        ],
    }


def manifests_text(manifests: Sequence[Mapping[str, Any]], output: str) -> str:
    """Manifests as multi-document YAML, or as one `v1 List` in JSON."""
    if output == "json":
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)}, indent=2) + "\n"
    from envspec.yamlout import dump_all

    return dump_all([dict(m) for m in manifests])


# ---------------------------------------------------------------- `envspec test`

RESULT_LABELS = {
    "passed": "passed",
    "failed": "FAILED",
    "timed_out": "TIMED OUT",
    "error": "ERROR",
    "skipped": "skipped",
}


def test_started_text(event: TestStarted) -> str:
    """`started   integration  job/integration-k3x9qa  timeout 10m, 2 retries`."""
    from envspec.units import format_duration

    limits = [f"timeout {format_duration(event.timeout_seconds)}"] if event.timeout_seconds else []
    if event.retries:
        limits.append(f"{event.retries} retr{'y' if event.retries == 1 else 'ies'}")
    return f"started   {event.test}  job/{event.job}" + (f"  {', '.join(limits)}" if limits else "")


def _attempts(event: TestFinished) -> str:
    return f"{event.attempts}/{event.retries + 1}"


def test_finished_text(event: TestFinished) -> str:
    """`passed    integration  2.1s` or `FAILED    smoke  0.8s  exit code 3`."""
    label = RESULT_LABELS.get(event.result, event.result)
    reason = f"  {event.reason}" if event.reason and event.result != "passed" else ""
    return f"{label:<9} {event.test}  {format_seconds(event.duration_seconds)}{reason}"


def test_jobs_deleted_text(event: TestJobsDeleted) -> str:
    count = len(event.jobs)
    run = f" of run {event.run_id}" if event.run_id else ""
    why = {
        "cleanup": "--cleanup",
        "interrupted": "interrupted",
        "pruned": "older runs",
        "not started": "could not start",
        "timed out": "envspec --timeout passed",
    }
    return f"deleted   {count} test Job{'s' if count != 1 else ''}{run} ({why.get(event.reason, event.reason)}): " + (
        ", ".join(event.jobs)
    )


def test_summary_text(rows: Sequence[TestFinished], summary: TestSummary) -> str:
    """The summary table (test, result, duration, attempts, reason) and one line of totals."""
    table = [("TEST", "RESULT", "DURATION", "ATTEMPTS", "REASON")]
    for row in rows:
        label = RESULT_LABELS.get(row.result, row.result).lower()
        reason = (row.reason or "") if row.result != "passed" else ""
        table.append((row.test, label, format_seconds(row.duration_seconds), _attempts(row), reason or "-"))
    counts = [
        (summary.passed, "passed"),
        (summary.failed, "failed"),
        (summary.timed_out, "timed out"),
        (summary.errors, "could not run"),
        (summary.skipped, "not finished"),
    ]
    totals = ", ".join(f"{n} {what}" for n, what in counts if n) or "no tests"
    line = f"run {summary.run_id}: {totals} in {format_seconds(summary.duration_seconds)}"
    if summary.junit:
        line += f"; JUnit report: {summary.junit}"
    return "\n".join([columns(table), line]) if rows else line


def validation_text(valid: ValidSpec) -> str:
    """`FILE: OK: environment 'name' (1 database, 2 services, 0 tests; ttl 1h)`."""
    spec = valid.spec
    counts = ", ".join(
        f"{len(items)} {label}{'' if len(items) == 1 else 's'}"
        for label, items in (("database", spec.databases), ("service", spec.services), ("test", spec.tests))
    )
    return f"{valid.source}: OK: environment '{spec.name}' ({counts}; ttl {valid.ttl})"


def cluster_status_text(state: ClusterStatus) -> str:
    """The local cluster's state, one fact a line, its control-plane components indented."""
    lines = [f"cluster:    {state.name} ({state.provider})", f"state:      {state.detail}"]
    if state.server:
        lines.append(f"server:     {state.server}")
    if state.kubeconfig:
        lines.append(f"kubeconfig: {state.kubeconfig}")
    if state.nodes_total is not None:
        lines.append(f"nodes:      {state.nodes_ready}/{state.nodes_total} Ready")
    for component in state.components:
        memory = f"{component.rss / 2**20:.0f} MiB" if component.rss is not None else "-"
        pid = str(component.pid) if component.pid is not None else "not running"
        lines.append(f"  {component.name:<24} pid {pid:<12} rss {memory}")
    if state.rss_total is not None:
        lines.append(f"memory:     {state.rss_total / 2**20:.0f} MiB RSS (control plane total)")
    return "\n".join(lines)
