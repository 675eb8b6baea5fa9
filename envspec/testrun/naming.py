"""Names and labels of test runs, and which old runs to prune. Pure.

One `envspec test` command is one run, with a short random run id. Each test of
the run is one Job named `<test>-<run id>` (shortened with a hash past 63
characters), labelled with the environment, the test and the run id, so that

- the Jobs of this run are found by their run id, and never confused with those of
  a run that died (another id);
- the last run of a test is found by its test label (`envspec logs <test>`);
- old runs are pruned per test, keeping the newest `KEEP_RUNS`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from envspec.meta import TEST_LABEL, TEST_RUN_LABEL, is_test_run_object
from envspec.plan import ENVIRONMENT_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, WAVE_ANNOTATION
from envspec.testrun.outcome import parse_time

Json = Mapping[str, Any]
Manifest = dict[str, Any]

__all__ = [
    "KEEP_RUNS",
    "TEST_LABEL",
    "TEST_RUN_LABEL",
    "is_run_id",
    "is_test_run_object",
    "job_for_run",
    "job_name",
    "latest_run_job",
    "new_run_id",
    "run_labels",
    "run_selector",
    "runs_to_prune",
    "selector_for_test",
    "test_jobs_selector",
]

RUN_ID_LENGTH = 6  # 30 bits: a clash among the few runs one environment keeps is not a concern
JOB_NAME_MAX_LENGTH = 63  # the Job controller copies the name into a label value of its pods
HASH_LENGTH = 4
KEEP_RUNS = 3

_RUN_ID_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")  # RFC 4648 base32, lower case
_FINISHED_CONDITIONS = ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget")


def new_run_id(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """A run id: 6 lower-case base32 characters (letters and 2-7) from `random_bytes`."""
    return base64.b32encode(random_bytes(4)).decode("ascii").lower()[:RUN_ID_LENGTH]


def is_run_id(text: str) -> bool:
    return len(text) == RUN_ID_LENGTH and set(text) <= _RUN_ID_ALPHABET


def _short_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:HASH_LENGTH]


def job_name(test: str, run_id: str) -> str:
    """`<test>-<run id>`; a test name too long for that is cut and followed by a hash of it.

    The hash keeps two long test names that share their first characters apart.
    """
    name = f"{test}-{run_id}"
    if len(name) <= JOB_NAME_MAX_LENGTH:
        return name
    room = JOB_NAME_MAX_LENGTH - len(run_id) - HASH_LENGTH - 2
    return f"{test[:room].rstrip('-')}-{_short_hash(test)}-{run_id}"


def run_labels(environment: str, test: str, run_id: str) -> dict[str, str]:
    """The labels of a test run's Job and its pods."""
    return {
        MANAGED_BY_LABEL: MANAGED_BY_VALUE,
        ENVIRONMENT_LABEL: environment,
        TEST_LABEL: test,
        TEST_RUN_LABEL: run_id,
    }


def job_for_run(compiled: Json, *, environment: str, test: str, run_id: str) -> Manifest:
    """The compiled Job of `test` (`render --tests`) as the Job of run `run_id`: renamed and labelled.

    The wave annotation goes: a test Job is created by the run, not applied in a wave.
    """
    manifest: Manifest = copy.deepcopy(dict(compiled))
    labels = run_labels(environment, test, run_id)
    metadata = manifest.setdefault("metadata", {})
    metadata["name"] = job_name(test, run_id)
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k != WAVE_ANNOTATION}
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    template = manifest.setdefault("spec", {}).setdefault("template", {})
    template_metadata = template.setdefault("metadata", {})
    template_metadata["labels"] = {**(template_metadata.get("labels") or {}), **labels}
    return manifest


def _selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in labels.items())


def run_selector(environment: str, run_id: str) -> str:
    """The label selector of the Jobs (and pods) of one run."""
    return _selector({MANAGED_BY_LABEL: MANAGED_BY_VALUE, ENVIRONMENT_LABEL: environment, TEST_RUN_LABEL: run_id})


def test_jobs_selector(environment: str) -> str:
    """The label selector of every test run's Jobs (and pods) of one environment."""
    return f"{_selector({MANAGED_BY_LABEL: MANAGED_BY_VALUE, ENVIRONMENT_LABEL: environment})},{TEST_RUN_LABEL}"


def selector_for_test(environment: str, test: str) -> str:
    """The label selector of the Jobs (and pods) of every run of one test."""
    return _selector({MANAGED_BY_LABEL: MANAGED_BY_VALUE, ENVIRONMENT_LABEL: environment, TEST_LABEL: test})


def _labels(obj: Json) -> Mapping[str, str]:
    labels: Mapping[str, str] = (obj.get("metadata") or {}).get("labels") or {}
    return labels


def _name(obj: Json) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _created(obj: Json) -> datetime:
    return parse_time((obj.get("metadata") or {}).get("creationTimestamp")) or datetime.min.replace(tzinfo=UTC)


def _finished(job: Json) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in _FINISHED_CONDITIONS and c.get("status") == "True" for c in conditions)


def _runs_by_test(jobs: Sequence[Json], environment: str) -> dict[str, dict[str, list[Json]]]:
    """Test -> run id -> that run's Jobs of the test, for the test Jobs of `environment` only."""
    runs: dict[str, dict[str, list[Json]]] = {}
    for job in jobs:
        labels = _labels(job)
        if not is_test_run_object(job) or labels.get(ENVIRONMENT_LABEL) != environment:
            continue
        test = labels.get(TEST_LABEL)
        if not test:
            continue
        runs.setdefault(test, {}).setdefault(labels[TEST_RUN_LABEL], []).append(job)
    return runs


def _newest_first(runs: Mapping[str, Sequence[Json]]) -> list[str]:
    return sorted(runs, key=lambda run: (max(_created(job) for job in runs[run]), run), reverse=True)


def runs_to_prune(jobs: Sequence[Json], *, environment: str, current_run: str, keep: int = KEEP_RUNS) -> list[Json]:
    """The test Jobs to delete so that each test keeps its newest `keep` runs.

    Runs are ordered by creation time. The current run is never pruned, and counts
    as one of the kept runs of the tests it has a Job for (call this once its Jobs
    exist). A Job still running is never pruned either (another run may be
    watching it), though it counts as kept. Only Jobs envspec manages for this
    environment are considered.
    """
    doomed: list[Json] = []
    for _test, runs in sorted(_runs_by_test(jobs, environment).items()):
        kept = 1 if current_run in runs else 0
        for run in _newest_first({run: found for run, found in runs.items() if run != current_run}):
            if kept < keep or not all(_finished(job) for job in runs[run]):
                kept += 1
                continue
            doomed.extend(runs[run])
    return sorted(doomed, key=lambda job: (_labels(job)[TEST_LABEL], _created(job), _name(job)))


def latest_run_job(jobs: Sequence[Json], *, environment: str, test: str) -> Json | None:
    """The Job of the newest run of `test` (for `envspec logs <test>`), or None."""
    runs = _runs_by_test(jobs, environment).get(test)
    if not runs:
        return None
    newest = _newest_first(runs)[0]
    return max(runs[newest], key=_created)
