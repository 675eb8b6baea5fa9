"""A local copy of the objects of one kind, kept current by list + watch.

Built on kr8s's `call_api` rather than its `watch()`: that generator ends silently
when the server closes the stream (kube-apiserver does so every few minutes) and,
on 410 Gone, restarts from the same too-old resourceVersion. Here the stream is
resumed from the last resourceVersion seen (bookmarks keep it fresh), a 410 leads
to a new list, and transient failures are retried with backoff. Whoever runs the
informer owns the deadline and cancels it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
from kr8s import APITimeoutError, ServerError

from envspec.errors import ClusterError
from envspec.kube.client import transport_reason
from envspec.kube.deadline import Deadline
from envspec.kube.kinds import ResourceType
from envspec.kube.ssa import backoff_delay, collection_version, is_transient, list_objects, server_message, status_code

Json = dict[str, Any]

# The server ends each watch after this long; resuming costs one request. The read
# timeout is longer, so a dead connection is noticed without cutting a live one.
WATCH_SECONDS = 120
READ_TIMEOUT_MARGIN = 30.0


class Gone(Exception):
    """The resourceVersion to resume from is too old (410): list again."""


def object_key(obj: Json) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata.get('name')}" if namespace else str(metadata.get("name"))


def generation_of(obj: Json) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 0)


def uid_of(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("uid") or "")


class Informer:
    """Objects of `rtype` in `namespace` (None: all namespaces / cluster-scoped), by `namespace/name`.

    With `only_new`, objects that exist when the informer starts are not kept: for
    events, whose old entries would otherwise report yesterday's failures.
    """

    def __init__(
        self,
        api: Any,
        rtype: ResourceType,
        namespace: str | None,
        *,
        on_change: Callable[[], None],
        label_selector: str | None = None,
        field_selector: str | None = None,
        only_new: bool = False,
    ) -> None:
        self.api = api
        self.rtype = rtype
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.only_new = only_new
        self.watch_seconds = WATCH_SECONDS
        self.objects: dict[str, Json] = {}
        self.synced = anyio.Event()
        self.resource_version = ""
        self._on_change = on_change
        # How often the stream was resumed and relisted: tests and benchmarks read these.
        self.resumes = 0
        self.relists = 0
        # Since when (wall clock, UTC) the API server has not answered, and why; None while it does.
        self.unreachable_since: datetime | None = None
        self.unreachable_reason = ""

    def get(self, name: str, namespace: str | None = None) -> Json | None:
        return self.objects.get(f"{namespace}/{name}" if namespace and self.rtype.namespaced else name)

    def put(self, obj: Json) -> None:
        """Record the state a watch event brings.

        Events come in order, but one may still describe the object as it was before a
        PATCH whose answer was already recorded by `seed`: the same uid with a lower
        generation is such a stale copy and is ignored.
        """
        key = object_key(obj)
        known = self.objects.get(key)
        if known is not None and uid_of(known) == uid_of(obj) and generation_of(obj) < generation_of(known):
            return
        self.objects[key] = obj
        self._on_change()

    def seed(self, obj: Json) -> None:
        """Record what a write just returned, unless the informer already knows as much.

        The answer to a PATCH carries the new generation before any watch event does;
        without it, a copy from before the write (status: ready) would look current.
        A copy of the same generation is kept: it is at least as fresh (it may carry
        a newer status).
        """
        key = object_key(obj)
        known = self.objects.get(key)
        if known is None or uid_of(known) != uid_of(obj) or generation_of(obj) > generation_of(known):
            self.objects[key] = obj
            self._on_change()

    async def run(self) -> None:
        """List, then watch for ever (until cancelled)."""
        must_list = True
        failures = 0
        while True:
            try:
                if must_list:
                    await self.relist()
                    must_list = False
                await self.watch_once()
                self.resumes += 1
                failures = 0
            except Gone:
                self.relists += 1
                must_list = True
            except httpx.TransportError as exc:
                self._unreachable(transport_reason(exc))
                failures += 1
                await anyio.sleep(backoff_delay(failures))
            except APITimeoutError:
                self._unreachable("the API server did not answer in time")
                failures += 1
                await anyio.sleep(backoff_delay(failures))
            except ServerError as exc:
                if status_code(exc) == 410:
                    self.relists += 1
                    must_list = True
                    continue
                if is_transient(status_code(exc)):
                    failures += 1
                    await anyio.sleep(backoff_delay(failures))
                    continue
                raise ClusterError(f"watching {self._what()}: API server says: {server_message(exc)}") from exc

    def _unreachable(self, reason: str) -> None:
        if self.unreachable_since is None:
            self.unreachable_since = datetime.now(UTC)
        self.unreachable_reason = reason

    def _reached(self) -> None:
        self.unreachable_since = None
        self.unreachable_reason = ""

    def _what(self) -> str:
        return f"{self.rtype.plural} in {self.namespace}" if self.namespace else self.rtype.plural

    async def relist(self) -> None:
        """List everything again; watching resumes from the list's resourceVersion.

        With `only_new`, what exists now is not wanted: only the collection's version is read.
        """
        deadline = Deadline(None)  # retried until the informer's owner cancels it
        what = (self.api, self.rtype, self.namespace)
        label, field = self.label_selector, self.field_selector
        if self.only_new:
            self.resource_version = await collection_version(
                *what, deadline=deadline, label_selector=label, field_selector=field
            )
            # Relisting after 410: keep what was collected; only the version moves on.
            if not self.synced.is_set():
                self.objects = {}
        else:
            listing = await list_objects(*what, deadline=deadline, label_selector=label, field_selector=field)
            self.objects = {object_key(item): item for item in listing.items}
            self.resource_version = listing.resource_version
        self._reached()
        self.synced.set()
        self._on_change()

    async def watch_once(self) -> None:
        """One watch request from `resource_version`, until the server ends it."""
        params = {
            "watch": "true",
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_seconds),
        }
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        timeout = httpx.Timeout(self.watch_seconds + READ_TIMEOUT_MARGIN, connect=5.0)
        async with self.api.call_api(
            "GET", **self.rtype.location(None, self.namespace), params=params, stream=True, timeout=timeout
        ) as response:
            self._reached()
            async for line in response.aiter_lines():
                if line.strip():
                    self.handle(json.loads(line))

    def handle(self, event: Json) -> None:
        """Apply one watch event to the local copy; `Gone` when the server says 410."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone(str(obj.get("message", "resource version too old")))
            raise ClusterError(f"watching {self._what()}: API server says: {obj.get('message', obj)}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = str(version)
        if kind == "BOOKMARK":
            return
        obj.setdefault("apiVersion", self.rtype.api_version)
        obj.setdefault("kind", self.rtype.kind)
        if kind == "DELETED":
            self.objects.pop(object_key(obj), None)
            self._on_change()
        else:
            self.put(obj)
