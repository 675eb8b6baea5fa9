"""`envspec watch`: bring an environment up, then reapply it on every edit of its spec.

One pipeline, as `up`: load → validate → compile → `prepare` → `reconcile` →
`runner.execute` → events. What watch adds:

- the file is watched through its directory (watchfiles, ~200 ms debounce), so an
  editor that saves by writing a new file and renaming it over the old one is seen;
- an edit that does not validate is reported with its located problems and nothing
  is sent: the environment stays exactly as it was;
- a valid edit is compiled and reconciled against the live state the previous
  cycle left (`ApplyResult.inventory`, no new list); only when the change set
  changes something is it executed: the objects whose hash changed (in wave
  order), the pruned ones, and the wait for what changed;
- one line per cycle: what was created, configured and pruned, and how long it took;
- a cycle that fails (API error, readiness failure) is reported; the next edit
  retries it against a freshly read live state. A newer valid edit cancels a cycle
  still waiting, so a fix does not queue behind the rollout it fixes;
- keep-alive: the expiry is pushed to now + ttl every ttl/3 (at most a minute apart),
  so an environment in use never expires under its user; nothing for `ttl: never`;
- Ctrl-C / SIGTERM ends the watch and leaves the environment up, or takes it down
  with `--down-on-exit`; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus
from watchfiles import Change, awatch

from envspec.errors import EnvspecError, ExitCode, SpecError
from envspec.events import Emitter, WatchCycle, WatchSpecInvalid, WatchStarted, WatchStopped, WatchWarning
from envspec.inventory import Inventory
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.kube.wait import task_group
from envspec.lifecycle.expiry import Clock
from envspec.operations.down import down
from envspec.operations.environments import EnvironmentRef
from envspec.operations.extend import renew
from envspec.operations.spec import PlanBuilder
from envspec.operations.up import Prepared, prepare, reconcile_and_execute
from envspec.pipeline import ValidSpec, build_plan, check_id, load_spec
from envspec.plan import Plan, SecretSlot
from envspec.reconcile import ChangeSet, reconcile
from envspec.runner import ApplyOptions

# watchfiles groups the changes of one save: it yields once nothing more happened for
# STEP_MS, and at the latest DEBOUNCE_MS after the first change.
DEBOUNCE_MS = 200
STEP_MS = 50
MAX_KEEPALIVE_SECONDS = 60.0
REQUEST_DEADLINE_SECONDS = 30.0


@dataclass(frozen=True)
class WatchOptions:
    down_on_exit: bool = False
    up_timeout_seconds: float = 600.0  # the first up
    cycle_timeout_seconds: float = 300.0  # each reapply, waiting included
    cycle_details: bool = False  # pass apply's per-object events of each cycle to the sink too
    keepalive_seconds: float | None = None  # None: keepalive_interval(ttl)


@dataclass(frozen=True)
class WatchRequest:
    file: str
    env_id: str | None
    target: ClusterTarget
    environ: Mapping[str, str]
    options: WatchOptions = WatchOptions()


def keepalive_interval(ttl_seconds: int | None) -> float | None:
    """Renew every ttl/3, and at least once a minute; None (never) for `ttl: never`."""
    if ttl_seconds is None:
        return None
    return max(1.0, min(ttl_seconds / 3, MAX_KEEPALIVE_SECONDS))


@dataclass
class _Applied:
    """What the environment is known to look like after the last cycle."""

    inventory: Inventory | None  # None: unknown (a cycle failed): the next one reads the live state again
    secrets: dict[SecretSlot, str] = field(default_factory=dict)


@dataclass
class WatchResult:
    environment: str
    namespace: str
    cycles: int
    taken_down: bool


class _Watcher:
    def __init__(self, request: WatchRequest, events: Emitter, clock: Clock) -> None:
        self.request = request
        self.options = request.options
        self.clock = clock
        self.path = Path(request.file).absolute()
        self.env_id = check_id(request.env_id)
        self.last_text = self._read_bytes()  # what the first up applies; saves are compared with it
        self.spec = self._load()  # SpecError before touching the cluster
        draft = build_plan(self.spec, env_id=self.env_id)
        self.environment, self.namespace = draft.environment, draft.namespace
        self.events = events.about(self.environment, self.namespace)
        self.ttl_seconds = draft.ttl_seconds
        self.applied = _Applied(inventory=None)
        self.cycles = 0
        self.pending: tuple[ValidSpec, float] | None = None  # the newest valid edit, when it was noticed
        self.wake = anyio.Event()
        self.running_cycle: anyio.CancelScope | None = None
        self.file_watch_stop = anyio.Event()

    # ------------------------------------------------------------ the spec file

    def _load(self) -> ValidSpec:
        return load_spec(str(self.path), self.request.environ)

    def _read_bytes(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except OSError:
            return None

    def _is_our_file(self, change: Change, path: str) -> bool:
        return Path(path).name == self.path.name

    async def watch_file(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Validate every save; hand valid specs to the cycle loop, report invalid ones at once."""
        changes = awatch(
            self.path.parent,
            watch_filter=self._is_our_file,
            debounce=DEBOUNCE_MS,
            step=STEP_MS,
            stop_event=self.file_watch_stop,
            recursive=False,
        )
        task_status.started()
        async for _ in changes:
            noticed = time.monotonic()
            text = self._read_bytes()
            if text is None or text == self.last_text:
                continue  # mid-rename, or saved without a change
            self.last_text = text
            try:
                spec = self._load()
            except SpecError as exc:
                self.events.emit(WatchSpecInvalid(str(self.request.file), tuple(str(p) for p in exc.problems)))
                continue
            except EnvspecError as exc:
                self.events.emit(WatchSpecInvalid(str(self.request.file), (exc.message,)))
                continue
            self.pending = (spec, noticed)
            if self.running_cycle is not None:
                self.running_cycle.cancel()  # superseded: the newer edit is applied instead
            self.wake.set()

    # ------------------------------------------------------------ cycles

    def _build(self, spec: ValidSpec, secrets: Mapping[SecretSlot, str] | None) -> Plan:
        return build_plan(spec, env_id=self.env_id, secrets=secrets)

    def _builder(self, spec: ValidSpec) -> PlanBuilder:
        def build(secrets: Mapping[SecretSlot, str] | None) -> Plan:
            return self._build(spec, secrets)

        return build

    async def first_up(self, api: Any) -> None:
        """Bring the environment up as `up` does; a failure is reported, not fatal."""
        deadline = Deadline(self.options.up_timeout_seconds)
        try:
            prepared = await prepare(api, self._builder(self.spec), deadline=deadline)
            result = await reconcile_and_execute(
                api,
                prepared,
                events=self.events,
                options=ApplyOptions(timeout_seconds=self.options.up_timeout_seconds),
                deadline=deadline,
                now=self.clock(),
            )
        except EnvspecError as exc:
            if exc.exit_code == ExitCode.USER_ERROR:
                raise  # e.g. the namespace belongs to someone else: no edit can fix that
            self.events.emit(WatchWarning(f"the first up failed: {exc.message}; the next edit retries"))
            return
        self.applied = _Applied(result.inventory, prepared.secrets)

    async def run_cycles(self, api: Any) -> None:
        """Apply the newest valid edit, one cycle at a time, for ever (until cancelled)."""
        while True:
            await self.wake.wait()
            self.wake = anyio.Event()
            if self.pending is None:
                continue
            spec, noticed = self.pending
            self.pending = None
            with anyio.CancelScope() as scope:
                self.running_cycle = scope
                await self.cycle(api, spec, noticed)
            self.running_cycle = None
            if scope.cancelled_caught:  # watch_file cancelled it for a newer edit
                self.applied = _Applied(None, self.applied.secrets)
                self.events.emit(
                    WatchCycle(
                        self.cycles, (), (), (), 0, time.monotonic() - noticed, False, "superseded by a newer edit"
                    )
                )

    async def cycle(self, api: Any, spec: ValidSpec, noticed: float) -> None:
        draft = self._build(spec, None)
        if (draft.environment, draft.namespace) != (self.environment, self.namespace):
            self.events.emit(
                WatchSpecInvalid(
                    str(self.request.file),
                    (
                        f"this edit moves the environment from {self.environment} (namespace {self.namespace}) to "
                        f"{draft.environment} (namespace {draft.namespace}); restart watch to switch environments",
                    ),
                )
            )
            return
        self.ttl_seconds = draft.ttl_seconds
        build = self._builder(spec)
        deadline = Deadline(self.options.cycle_timeout_seconds)
        now = self.clock()
        prepared: Prepared | None = None
        changes: ChangeSet | None = None
        if self.applied.inventory is not None:
            # What the last cycle left is known: reconcile against it, without a request.
            prepared = await prepare(
                api, build, deadline=deadline, known_secrets=self.applied.secrets, inventory=self.applied.inventory
            )
            changes = reconcile(prepared.plan, prepared.inventory, now=now)
            if not changes.changed:
                return  # only comments or formatting changed: nothing to send, nothing to say
        self.cycles += 1
        details = self.events if self.options.cycle_details else self.events.silenced()
        try:
            if prepared is None:
                prepared = await prepare(api, build, deadline=deadline, known_secrets=self.applied.secrets)
            result = await reconcile_and_execute(
                api,
                prepared,
                events=details,
                options=ApplyOptions(timeout_seconds=self.options.cycle_timeout_seconds),
                deadline=deadline,
                now=now,
                changes=changes,
            )
        except EnvspecError as exc:
            self.applied = _Applied(None, prepared.secrets if prepared else self.applied.secrets)
            self.last_text = None  # saving the same text again retries
            intended = changes or ChangeSet(self.environment, self.namespace, (), (), "", None)
            self.events.emit(
                WatchCycle(
                    self.cycles,
                    intended.refs("create"),
                    intended.refs("configure"),
                    tuple(p.ref for p in intended.prunes),
                    0,
                    time.monotonic() - noticed,
                    False,
                    exc.message,  # already masked by reconcile_and_execute
                )
            )
            return
        self.applied = _Applied(result.inventory, prepared.secrets)
        self.events.emit(
            WatchCycle(
                cycle=self.cycles,
                created=result.refs("created"),
                configured=result.refs("configured"),
                pruned=tuple(result.pruned),
                writes=result.writes,
                seconds=time.monotonic() - noticed,
                ok=True,
            )
        )

    # ------------------------------------------------------------ keep-alive

    async def keep_alive(self, api: Any) -> None:
        while True:
            interval = self.options.keepalive_seconds or keepalive_interval(self.ttl_seconds)
            await anyio.sleep(interval if interval is not None else MAX_KEEPALIVE_SECONDS)
            if self.ttl_seconds is None:
                continue  # ttl: never (possibly since the last edit): nothing to renew
            try:
                await renew(
                    api,
                    self.namespace,
                    self.ttl_seconds,
                    clock=self.clock,
                    deadline=Deadline(REQUEST_DEADLINE_SECONDS),
                    events=self.events,
                )
            except EnvspecError as exc:
                self.events.emit(WatchWarning(f"keep-alive: {exc.message}"))
                # Something happened to the namespace: the next edit starts from what is live.
                self.applied = _Applied(None, self.applied.secrets)

    # ------------------------------------------------------------ the whole watch

    async def run(self, stop: anyio.Event) -> WatchResult:
        async with task_group() as group:

            async def stop_when_asked() -> None:
                # Whatever is under way (the first up, a cycle) ends here; the environment
                # stays as far as it got.
                await stop.wait()
                group.cancel_scope.cancel()

            group.start_soon(stop_when_asked)
            try:
                async with connect(self.request.target) as api:  # unreachable: fail now, exit 3
                    # Watching starts before the first up, so an edit made meanwhile is not lost.
                    await group.start(self.watch_file)
                    await self.first_up(api)
                    self.events.emit(WatchStarted(str(self.request.file), self.environment, self.namespace))
                    group.start_soon(self.keep_alive, api)
                    await self.run_cycles(api)
            finally:
                # watchfiles waits in a thread that a cancellation cannot interrupt; this event
                # makes it return at its next step instead of after its 5 s timeout.
                self.file_watch_stop.set()
        taken_down = False
        if self.options.down_on_exit:
            ref = EnvironmentRef(self.environment, self.namespace)
            deadline = Deadline(self.options.up_timeout_seconds)
            await down(self.request.target, ref, events=self.events, wait=True, deadline=deadline)
            taken_down = True
        self.events.emit(WatchStopped(self.environment, self.namespace, taken_down))
        return WatchResult(self.environment, self.namespace, self.cycles, taken_down)


async def watch(request: WatchRequest, *, events: Emitter, clock: Clock, stop: anyio.Event) -> WatchResult:
    """`envspec watch`: bring the environment up and reapply it on every edit until `stop` is set."""
    if request.file == "-":
        raise EnvspecError("watch needs a spec file to watch, not standard input")
    return await _Watcher(request, events, clock).run(stop)
