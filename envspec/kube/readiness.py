"""Is an object ready? Pure functions of the live object (a dict), one per kind.

Each returns `Readiness(done, ok, message)`:

- not done: still converging (`message` says how far: `1/3 ready`);
- done and ok: ready;
- done and not ok: failed for good, waiting longer will not help.

`assess` adds what the workload's own status cannot say: its pods that cannot pull
their image, crash in a loop or cannot be scheduled, and pods the API server
refuses to create (quota, LimitRange, Pod Security), seen in the ReplicaSet's
ReplicaFailure condition or a FailedCreate event.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any, NamedTuple

from envspec.kube.times import format_server_time, parse_server_time
from envspec.units import parse_quantity

Json = Mapping[str, Any]

# Container waiting reasons that do not heal by waiting.
TERMINAL_CONTAINER_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CrashLoopBackOff"})
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"

# Pod creation refused by admission for a reason that will not go away by itself.
# A refusal like `serviceaccount "default" not found` (a namespace a second old) is
# transient: the controller retries and succeeds, so it must not fail the wait.
_PERMANENT_REJECTIONS = (
    "exceeded quota",
    "failed quota",
    "usage per container",  # LimitRange: "maximum cpu usage per Container is 500m, but limit is 1"
    "usage per pod",
    "limit to request ratio",
    "violates podsecurity",
)


class Readiness(NamedTuple):
    done: bool
    ok: bool
    message: str
    # Not done because admission refuses pods for want of room in the quota: it clears
    # when pods going away free room (a rollout), or never. The wait loop, which owns
    # time, fails it when it lasts (see wait.QUOTA_PATIENCE_SECONDS).
    stalled: bool = False

    @property
    def failed(self) -> bool:
        return self.done and not self.ok


def ready(message: str) -> Readiness:
    return Readiness(done=True, ok=True, message=message)


def waiting(message: str) -> Readiness:
    return Readiness(done=False, ok=False, message=message)


def failed(message: str) -> Readiness:
    return Readiness(done=True, ok=False, message=message)


def stalled(message: str) -> Readiness:
    return Readiness(done=False, ok=False, message=message, stalled=True)


def rejection_state(message: str) -> Readiness | None:
    """How an admission refusal to create pods bears on readiness: failed, stalled, or None (transient)."""
    if is_permanent_rejection(message):
        return failed(message)
    if "exceeded quota" in message.lower():
        return stalled(f"waiting for room in the quota: {message}")
    return None


def _status(obj: Json) -> Json:
    status: Json = obj.get("status") or {}
    return status


def _spec(obj: Json) -> Json:
    spec: Json = obj.get("spec") or {}
    return spec


def _condition(obj: Json, kind: str) -> Json | None:
    for condition in _status(obj).get("conditions") or []:
        if condition.get("type") == kind:
            found: Json = condition
            return found
    return None


def _is_true(condition: Json | None) -> bool:
    return condition is not None and condition.get("status") == "True"


def _generation_observed(obj: Json) -> bool:
    generation = (obj.get("metadata") or {}).get("generation")
    observed = _status(obj).get("observedGeneration")
    if generation is None:
        return True
    return observed is not None and int(observed) >= int(generation)


def is_permanent_rejection(message: str) -> bool:
    """Whether an admission refusal to create pods will persist (quota, LimitRange, Pod Security).

    A quota refusal persists only when the pod asks for more than the quota's hard limit.
    When it merely does not fit in what is used now, pods that are going away will make
    room: a rollout replaces pods one at a time (no surge), and the old pod still counts
    against the quota until it has terminated, so its replacement is refused for a moment.
    """
    lowered = message.lower()
    if "exceeded quota" in lowered:
        return _exceeds_hard_limit(message)
    return any(pattern in lowered for pattern in _PERMANENT_REJECTIONS)


_QUOTA_AMOUNTS = re.compile(r"requested: (?P<requested>[^ ]+), used: [^ ]+, limited: (?P<limited>[^ ]+)")


def _exceeds_hard_limit(message: str) -> bool:
    match = _QUOTA_AMOUNTS.search(message)
    if match is None:
        return True  # an unknown form: do not wait for the deadline on a guess
    requested, limited = _amounts(match.group("requested")), _amounts(match.group("limited"))
    for resource, amount in requested.items():
        limit = limited.get(resource)
        if limit is not None and amount > limit:
            return True
    return False


def _amounts(text: str) -> dict[str, Fraction]:
    amounts: dict[str, Fraction] = {}
    for item in text.rstrip(",").split(","):
        name, _, value = item.partition("=")
        try:
            amounts[name] = parse_quantity(value)
        except ValueError:
            continue
    return amounts


def deployment_readiness(obj: Json, since: datetime | None = None) -> Readiness:
    """`since`: when this run began (server clock); a ProgressDeadlineExceeded from before is waited on."""
    desired = int(_spec(obj).get("replicas", 1))
    status = _status(obj)
    if not _generation_observed(obj):
        return waiting("waiting for the controller to see the new spec")
    progressing = _condition(obj, "Progressing")
    if progressing and progressing.get("status") == "False" and progressing.get("reason") == "ProgressDeadlineExceeded":
        stamp = _condition_time(progressing)
        # Server timestamps have whole seconds: a condition from the second the run began
        # cannot be told from one set before it, and is waited on (within the deadline).
        if since is not None and stamp is not None and stamp <= since:
            return waiting(
                f"{int(status.get('readyReplicas', 0))}/{desired} ready: the progress deadline ran out before this "
                f"run (at {format_server_time(stamp)}); waiting for the rollout to recover"
            )
        return failed(f"rollout stuck: {progressing.get('message', 'progress deadline exceeded')}")
    replica_failure = _condition(obj, "ReplicaFailure")
    if _is_true(replica_failure) and replica_failure is not None:
        message = str(replica_failure.get("message", "cannot create pods"))
        return rejection_state(message) or waiting(f"0/{desired} ready: {message}")
    updated = int(status.get("updatedReplicas", 0))
    ready_count = int(status.get("readyReplicas", 0))
    available = int(status.get("availableReplicas", 0))
    total = int(status.get("replicas", 0))
    progress = f"{ready_count}/{desired} ready"
    if updated < desired:
        return waiting(f"{progress}, {updated}/{desired} updated")
    if total > updated:
        return waiting(f"{progress}, {total - updated} old replica(s) terminating")
    if ready_count < desired or available < desired:
        return waiting(progress)
    return ready(progress)


def statefulset_readiness(obj: Json) -> Readiness:
    desired = int(_spec(obj).get("replicas", 1))
    status = _status(obj)
    if not _generation_observed(obj):
        return waiting("waiting for the controller to see the new spec")
    ready_count = int(status.get("readyReplicas", 0))
    progress = f"{ready_count}/{desired} ready"
    if ready_count < desired:
        return waiting(progress)
    strategy = (_spec(obj).get("updateStrategy") or {}).get("type", "RollingUpdate")
    current, update = status.get("currentRevision"), status.get("updateRevision")
    if strategy == "RollingUpdate" and update and current != update:
        updated = int(status.get("updatedReplicas", 0))
        return waiting(f"{progress}, {updated}/{desired} updated")
    return ready(progress)


def job_readiness(obj: Json) -> Readiness:
    for terminal in ("Failed", "FailureTarget"):
        condition = _condition(obj, terminal)
        if _is_true(condition) and condition is not None:
            reason = condition.get("reason") or terminal
            detail = condition.get("message")
            return failed(f"job failed: {reason}: {detail}" if detail else f"job failed: {reason}")
    if _is_true(_condition(obj, "Complete")):
        return ready("complete")
    if _spec(obj).get("suspend"):
        return waiting("suspended")
    status = _status(obj)
    completions = int(_spec(obj).get("completions", 1))
    succeeded, active = int(status.get("succeeded", 0)), int(status.get("active", 0))
    failures = int(status.get("failed", 0))
    message = f"{succeeded}/{completions} succeeded, {active} running"
    return waiting(f"{message}, {failures} failed" if failures else message)


def pvc_readiness(obj: Json, binding_mode: str | None) -> Readiness:
    """Bound; or Pending when its StorageClass binds only once a pod uses the claim."""
    phase = _status(obj).get("phase", "Pending")
    if phase == "Bound":
        return ready("Bound")
    if phase == "Lost":
        return failed("Lost: its volume is gone")
    if binding_mode == WAIT_FOR_FIRST_CONSUMER:
        return ready("Pending: binds when its first pod is scheduled")
    return waiting(phase)


def namespace_readiness(obj: Json) -> Readiness:
    phase = _status(obj).get("phase", "")
    if phase == "Active":
        return ready("Active")
    if phase == "Terminating":
        return waiting("Terminating: the namespace is being deleted")
    return waiting(phase or "no phase yet")


def readiness_of(obj: Json, *, binding_mode: str | None = None, since: datetime | None = None) -> Readiness:
    """Readiness of any object from its own status; kinds without a rule are ready once they exist.

    `binding_mode`: volumeBindingMode of a PersistentVolumeClaim's StorageClass; `since`:
    when the run began (server clock), see `Related.since`.
    """
    kind = obj.get("kind")
    if kind == "Deployment":
        return deployment_readiness(obj, since)
    if kind == "StatefulSet":
        return statefulset_readiness(obj)
    if kind == "Job":
        return job_readiness(obj)
    if kind == "PersistentVolumeClaim":
        return pvc_readiness(obj, binding_mode)
    if kind == "Namespace":
        return namespace_readiness(obj)
    return ready("exists")


def needs_watching(kind: str) -> bool:
    """Kinds whose readiness can change after they are applied."""
    return kind in {"Deployment", "StatefulSet", "Job", "PersistentVolumeClaim", "Namespace"}


def has_pods(kind: str) -> bool:
    return kind in {"Deployment", "StatefulSet", "Job"}


def pod_problem(pod: Json) -> str | None:
    """Why a pod will not become ready without someone fixing something, or None."""
    name = (pod.get("metadata") or {}).get("name", "?")
    status = _status(pod)
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        state_waiting = (container.get("state") or {}).get("waiting") or {}
        reason = state_waiting.get("reason")
        if reason in TERMINAL_CONTAINER_REASONS:
            detail = state_waiting.get("message")
            text = f"pod {name}: container {container.get('name')}: {reason}"
            return f"{text}: {detail}" if detail else text
    scheduled = _condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return f"pod {name} cannot be scheduled: {scheduled.get('message', 'Unschedulable')}"
    return None


def replicaset_problem(replica_set: Json) -> Readiness | None:
    """The ReplicaSet's refusal to create pods, when admission refuses them (failed or stalled)."""
    failure = _condition(replica_set, "ReplicaFailure")
    if _is_true(failure) and failure is not None:
        return rejection_state(str(failure.get("message", "")))
    return None


def event_problem(event: Json) -> Readiness | None:
    """A FailedCreate event (the StatefulSet and Job controllers report refusals only so)."""
    if event.get("reason") != "FailedCreate":
        return None
    return rejection_state(str(event.get("message", "")))


@dataclass(frozen=True)
class Related:
    """Live objects that may explain why a workload is not ready."""

    pods: Sequence[Json] = ()
    replica_sets: Sequence[Json] = ()
    events: Sequence[Json] = ()  # only events that happened since envspec started (no stale ones)
    storage_binding_modes: Mapping[str, str] = field(default_factory=dict)  # StorageClass -> mode
    default_storage_class: str | None = None
    # When the run began, on the API server's clock. A terminal condition older than
    # this (a rollout that stalled while nobody was looking, an API outage that ran out
    # a progress deadline) is judged again by waiting, not taken as this run's failure.
    since: datetime | None = None


def _condition_time(condition: Mapping[str, Any]) -> datetime | None:
    """When a condition last changed: lastUpdateTime (Deployments), else lastTransitionTime."""
    return parse_server_time(condition.get("lastUpdateTime")) or parse_server_time(condition.get("lastTransitionTime"))


def server_time_of(obj: Json, manager: str) -> datetime | None:
    """When `manager` last wrote `obj`, on the API server's clock (its managedFields entry)."""
    times = [
        parse_server_time(entry.get("time"))
        for entry in (obj.get("metadata") or {}).get("managedFields") or []
        if entry.get("manager") == manager
    ]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def uid_of(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


def owned_by(child: Json, owner_uids: Iterable[str]) -> bool:
    uids = set(owner_uids)
    return any(ref.get("uid") in uids for ref in (child.get("metadata") or {}).get("ownerReferences") or [])


def _current_replica_sets(deployment: Json, replica_sets: Sequence[Json]) -> list[Json]:
    """The deployment's ReplicaSets of its current revision (older ones' pods may fail harmlessly)."""
    owned = [rs for rs in replica_sets if owned_by(rs, [uid_of(deployment)])]
    revision = ((deployment.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    current = [
        rs for rs in owned if ((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION) == revision
    ]
    return current if revision and current else owned


def _binding_mode(claim: Json, related: Related) -> str | None:
    storage_class = _spec(claim).get("storageClassName") or related.default_storage_class
    return related.storage_binding_modes.get(storage_class) if storage_class else None


def assess(obj: Json, related: Related | None = None) -> Readiness:
    """Readiness of `obj`, failing early when its pods or their creation hit a terminal problem."""
    related = related or Related()
    if obj.get("kind") == "PersistentVolumeClaim":
        return pvc_readiness(obj, _binding_mode(obj, related))
    own = readiness_of(obj, since=related.since)
    if own.done or not has_pods(str(obj.get("kind"))):
        return own
    owners = [uid_of(obj)]
    refusal: Readiness | None = None  # a stalled refusal; a terminal problem found later wins
    if obj.get("kind") == "Deployment":
        replica_sets = _current_replica_sets(obj, related.replica_sets)
        for replica_set in replica_sets:
            refusal = refusal or replicaset_problem(replica_set)
            if refusal and refusal.failed:
                return refusal
        owners = [uid_of(rs) for rs in replica_sets]
    for pod in related.pods:
        if owned_by(pod, owners):
            problem = pod_problem(pod)
            if problem:
                return failed(problem)
    # Events stay after the refusal has healed: once the pods exist, an old quota refusal
    # no longer explains anything (a refusal that can never heal still fails at once).
    has_all_pods = _live_pod_count(related.pods, owners) >= int(_spec(obj).get("replicas", 1) or 1)
    involved = {*owners, uid_of(obj)}
    for event in related.events:
        if (event.get("involvedObject") or {}).get("uid") in involved:
            event_state = event_problem(event)
            if event_state and event_state.failed:
                return event_state
            if event_state and not has_all_pods:
                refusal = refusal or event_state
    return refusal or own


def _live_pod_count(pods: Iterable[Json], owners: Sequence[str]) -> int:
    return sum(1 for pod in pods if owned_by(pod, owners) and not (pod.get("metadata") or {}).get("deletionTimestamp"))
