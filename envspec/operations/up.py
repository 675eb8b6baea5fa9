"""`up`: read what is live, compile with the live secrets, reconcile, execute.

`prepare` is the one front half of every operation that compares a plan with the
cluster (`up`, `diff`, each `watch` cycle): read the inventory, check ownership,
take the database passwords already live, compile the plan with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from envspec.errors import EnvspecError
from envspec.events import Emitter
from envspec.inventory import Inventory
from envspec.kube.client import ClusterTarget, connect
from envspec.kube.deadline import Deadline
from envspec.operations.live import read_inventory
from envspec.operations.spec import PlanBuilder
from envspec.plan import Plan, SecretSlot
from envspec.reconcile import ChangeSet, check_namespace_ownership, reconcile, resolve_secrets
from envspec.runner import ApplyOptions, ApplyResult, execute

DEFAULT_OPTIONS = ApplyOptions()


@dataclass(frozen=True)
class Prepared:
    """A plan compiled with the environment's real secrets, and the live state to compare it with."""

    plan: Plan
    inventory: Inventory
    secrets: dict[SecretSlot, str]


async def prepare(
    api: Any,
    build: PlanBuilder,
    *,
    deadline: Deadline,
    known_secrets: Mapping[SecretSlot, str] | None = None,
    inventory: Inventory | None = None,
) -> Prepared:
    """Read the inventory (unless given), refuse a namespace that is not ours, compile with the live secrets.

    Secrets: the live Secrets' values win, then `known_secrets` (watch's, from its
    last cycle), and only missing ones are generated.
    """
    draft = build(None)
    if inventory is None:
        inventory = await read_inventory(api, draft.environment, draft.namespace, deadline=deadline)
    check_namespace_ownership(draft, inventory.namespace)
    live = inventory.secret_values(draft.secret_slots, draft.namespace)
    secrets = resolve_secrets(draft.secret_slots, {**(known_secrets or {}), **live})
    return Prepared(build(secrets), inventory, secrets)


async def reconcile_and_execute(
    api: Any,
    prepared: Prepared,
    *,
    events: Emitter,
    options: ApplyOptions,
    deadline: Deadline,
    now: datetime,
    changes: ChangeSet | None = None,
) -> ApplyResult:
    """Reconcile (unless the change set is given) and execute, with secrets masked in every event and error."""
    masked = events.with_secrets(prepared.secrets.values())
    try:
        change_set = changes or reconcile(prepared.plan, prepared.inventory, now=now)
        return await execute(api, change_set, prepared.inventory, events=masked, options=options, deadline=deadline)
    except EnvspecError as exc:
        # An API server message may quote what was sent; keep the values out of it.
        exc.message = masked.redact(exc.message)
        exc.args = (exc.message,)
        raise


async def up(
    target: ClusterTarget,
    build: PlanBuilder,
    *,
    events: Emitter,
    options: ApplyOptions = DEFAULT_OPTIONS,
    now: datetime | None = None,
) -> ApplyResult:
    """`envspec up`: connect, prepare, reconcile, execute; one deadline for all of it."""
    deadline = Deadline(options.timeout_seconds)
    async with connect(target) as api:
        prepared = await prepare(api, build, deadline=deadline)
        return await reconcile_and_execute(
            api, prepared, events=events, options=options, deadline=deadline, now=now or datetime.now(UTC)
        )
