"""Run ids, test Job names and labels, and the choice of old runs to prune."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envspec.pipeline import build_plan, load_spec
from envspec.plan import ENVIRONMENT_LABEL, MANAGED_BY_LABEL, WAVE_ANNOTATION
from envspec.testrun.naming import (
    JOB_NAME_MAX_LENGTH,
    TEST_LABEL,
    TEST_RUN_LABEL,
    is_run_id,
    is_test_run_object,
    job_for_run,
    job_name,
    latest_run_job,
    new_run_id,
    run_labels,
    run_selector,
    runs_to_prune,
    selector_for_test,
)

REPO = Path(__file__).resolve().parent.parent
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
TEST_NAMES = st.from_regex(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)


# Run ids


def test_the_run_id_comes_from_the_random_source() -> None:
    assert new_run_id(lambda n: b"\x00" * n) == "aaaaaa"
    assert new_run_id(lambda n: b"\xff" * n) == "777777"
    assert new_run_id(lambda n: bytes([0b00001_000, 0b10_00011_0, 0b0100_0000, 0][:n])) == "bcdeaa"


def test_the_run_id_asks_for_four_bytes() -> None:
    asked: list[int] = []

    def random_bytes(n: int) -> bytes:
        asked.append(n)
        return bytes(n)

    new_run_id(random_bytes)
    assert asked == [4]


@given(st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4))
def test_run_ids_differ_when_the_first_30_random_bits_differ(first: bytes, second: bytes) -> None:
    a, b = new_run_id(lambda _: first), new_run_id(lambda _: second)
    assert is_run_id(a) and DNS_LABEL.fullmatch(a)
    same_bits = int.from_bytes(first) >> 2 == int.from_bytes(second) >> 2
    assert (a == b) == same_bits


def test_the_default_random_source_gives_valid_and_varied_ids() -> None:
    ids = {new_run_id() for _ in range(50)}
    assert all(is_run_id(run) for run in ids)
    assert len(ids) > 1


@pytest.mark.parametrize("text", ["abc12", "abcdefg", "abc18a", "ABCDEF", "abc-de"])
def test_is_run_id_refuses(text: str) -> None:
    assert not is_run_id(text)


# Job names


def test_a_job_is_named_after_its_test_and_run() -> None:
    assert job_name("smoke", "k3x9qa") == "smoke-k3x9qa"
    fits = "t" * (JOB_NAME_MAX_LENGTH - 7)
    assert job_name(fits, "k3x9qa") == f"{fits}-k3x9qa"


def test_a_long_test_name_is_cut_and_hashed_into_63_characters() -> None:
    long = "integration-" + "x" * 50
    name = job_name(long, "k3x9qa")
    assert len(name) == JOB_NAME_MAX_LENGTH
    assert name.startswith(long[:50]) and name.endswith("-k3x9qa")
    assert name == job_name(long, "k3x9qa")  # deterministic


def test_two_long_names_with_the_same_beginning_stay_apart() -> None:
    common = "end-to-end-checkout-with-a-very-long-descriptive-name-"
    assert job_name(common + "visa", "k3x9qa") != job_name(common + "mastercard", "k3x9qa")


def test_a_cut_that_ends_on_a_dash_drops_it() -> None:
    name = job_name("a" * 49 + "-" + "b" * 13, "k3x9qa")
    assert "--" not in name and DNS_LABEL.fullmatch(name)


@given(TEST_NAMES, st.binary(min_size=4, max_size=4))
def test_every_job_name_is_a_dns_label_of_at_most_63_characters(test: str, random: bytes) -> None:
    name = job_name(test, new_run_id(lambda _: random))
    assert len(name) <= JOB_NAME_MAX_LENGTH
    assert DNS_LABEL.fullmatch(name)


@given(TEST_NAMES, TEST_NAMES)
def test_different_tests_of_one_run_get_different_job_names(first: str, second: str) -> None:
    if first != second:
        assert job_name(first, "k3x9qa") != job_name(second, "k3x9qa")


# Labels and the Job of a run


def test_run_labels() -> None:
    assert run_labels("fullstack-pr-7", "smoke", "k3x9qa") == {
        "app.kubernetes.io/managed-by": "envspec",
        "envspec.dev/environment": "fullstack-pr-7",
        "envspec.dev/test": "smoke",
        "envspec.dev/test-run": "k3x9qa",
    }
    assert all(LABEL_VALUE.fullmatch(v) and len(v) <= 63 for v in run_labels("e", "t" * 63, "k3x9qa").values())


def test_selectors() -> None:
    assert run_selector("fullstack", "k3x9qa") == (
        "app.kubernetes.io/managed-by=envspec,envspec.dev/environment=fullstack,envspec.dev/test-run=k3x9qa"
    )
    assert selector_for_test("fullstack", "smoke") == (
        "app.kubernetes.io/managed-by=envspec,envspec.dev/environment=fullstack,envspec.dev/test=smoke"
    )


def compiled_job(test: str) -> dict[str, Any]:
    spec = load_spec(str(REPO / "examples" / "fullstack" / "maestro-env.yaml"), {})
    planned = build_plan(spec, include_tests=True).find("Job", test)
    assert planned is not None
    return planned.manifest


def test_the_compiled_job_becomes_the_job_of_the_run() -> None:
    compiled = compiled_job("smoke")
    before = copy.deepcopy(compiled)
    job = job_for_run(compiled, environment="fullstack", test="smoke", run_id="k3x9qa")
    assert compiled == before  # the plan is not changed
    assert job["metadata"]["name"] == "smoke-k3x9qa"
    expected = run_labels("fullstack", "smoke", "k3x9qa")
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert expected.items() <= labels.items()
        assert labels["team"] == "payments"  # the spec's own labels stay
    assert WAVE_ANNOTATION not in (job["metadata"].get("annotations") or {})
    # Everything else is the compiled Job's.
    for key in ("backoffLimit", "activeDeadlineSeconds"):
        assert job["spec"][key] == compiled["spec"][key]
    assert job["spec"]["template"]["spec"] == compiled["spec"]["template"]["spec"]
    assert is_test_run_object(job)
    assert not is_test_run_object(compiled)


def test_other_annotations_of_the_compiled_job_are_kept() -> None:
    compiled = compiled_job("integration")
    compiled["metadata"]["annotations"]["example.com/owner"] = "qa"
    job = job_for_run(compiled, environment="fullstack", test="integration", run_id="k3x9qa")
    assert job["metadata"]["annotations"] == {"example.com/owner": "qa"}


def test_an_object_without_the_managed_by_label_is_not_a_test_run_object() -> None:
    assert not is_test_run_object({"metadata": {"labels": {TEST_RUN_LABEL: "k3x9qa"}}})
    assert not is_test_run_object({"metadata": {}})


# Pruning old runs


def job(
    test: str,
    run: str,
    created: str,
    *,
    finished: bool = True,
    environment: str = "fullstack",
    managed: bool = True,
) -> dict[str, Any]:
    labels = {ENVIRONMENT_LABEL: environment, TEST_LABEL: test, TEST_RUN_LABEL: run}
    if managed:
        labels[MANAGED_BY_LABEL] = "envspec"
    conditions = [{"type": "Complete", "status": "True"}] if finished else []
    return {
        "kind": "Job",
        "metadata": {"name": job_name(test, run), "labels": labels, "creationTimestamp": created},
        "status": {"conditions": conditions},
    }


def names(jobs: list[Any]) -> list[str]:
    return [j["metadata"]["name"] for j in jobs]


def hour(h: int) -> str:
    return f"2026-03-01T{h:02d}:00:00Z"


def test_each_test_keeps_its_three_newest_runs_counting_the_current_one() -> None:
    jobs = [job("smoke", f"run{h:03d}"[:6], hour(h)) for h in range(1, 6)]  # run001 .. run005
    jobs.append(job("smoke", "curr00", hour(6), finished=False))
    doomed = runs_to_prune(jobs, environment="fullstack", current_run="curr00")
    assert names(doomed) == ["smoke-run001", "smoke-run002", "smoke-run003"]


def test_the_current_run_is_never_pruned_even_when_it_is_the_oldest() -> None:
    jobs = [job("smoke", "curr00", hour(1))] + [job("smoke", f"run00{h}", hour(h)) for h in range(2, 7)]
    doomed = runs_to_prune(jobs, environment="fullstack", current_run="curr00")
    assert "smoke-curr00" not in names(doomed)
    assert names(doomed) == ["smoke-run002", "smoke-run003", "smoke-run004"]


def test_a_test_the_current_run_does_not_run_keeps_three_older_runs() -> None:
    jobs = [job("integration", f"run00{h}", hour(h)) for h in range(1, 6)] + [job("smoke", "curr00", hour(7))]
    doomed = runs_to_prune(jobs, environment="fullstack", current_run="curr00")
    assert names(doomed) == ["integration-run001", "integration-run002"]


def test_runs_are_ordered_by_creation_time_not_by_id() -> None:
    jobs = [job("smoke", "zzzzzz", hour(1)), job("smoke", "aaaaaa", hour(5)), job("smoke", "mmmmmm", hour(3))]
    jobs += [job("smoke", "bbbbbb", hour(4))]
    assert names(runs_to_prune(jobs, environment="fullstack", current_run="curr00")) == ["smoke-zzzzzz"]


def test_a_job_still_running_is_not_pruned() -> None:
    jobs = [job("smoke", "dead00", hour(1), finished=False)] + [job("smoke", f"run00{h}", hour(h)) for h in range(2, 6)]
    doomed = runs_to_prune(jobs, environment="fullstack", current_run="curr00")
    assert names(doomed) == ["smoke-run002"]


def test_only_envspec_jobs_of_this_environment_are_pruned() -> None:
    jobs = [job("smoke", f"run00{h}", hour(h), environment="other") for h in range(1, 6)]
    jobs += [job("smoke", f"own00{h}", hour(h), managed=False) for h in range(1, 6)]
    jobs += [{"kind": "Job", "metadata": {"name": "migrate", "labels": {MANAGED_BY_LABEL: "envspec"}}}]
    assert runs_to_prune(jobs, environment="fullstack", current_run="curr00") == []


def test_keep_is_a_parameter() -> None:
    jobs = [job("smoke", f"run00{h}", hour(h)) for h in range(1, 4)]
    assert names(runs_to_prune(jobs, environment="fullstack", current_run="curr00", keep=2)) == ["smoke-run001"]
    assert names(runs_to_prune(jobs, environment="fullstack", current_run="curr00", keep=1)) == [
        "smoke-run001",
        "smoke-run002",
    ]
    # The current run is the one kept, though it is not the newest.
    assert runs_to_prune(jobs, environment="fullstack", current_run="run001", keep=1) == jobs[1:]


def test_tests_are_pruned_independently() -> None:
    jobs = [job(test, f"run00{h}", hour(h)) for h in range(1, 6) for test in ("smoke", "integration")]
    doomed = runs_to_prune(jobs, environment="fullstack", current_run="run005")
    assert sorted(names(doomed)) == sorted(["integration-run001", "integration-run002", "smoke-run001", "smoke-run002"])


def test_latest_run_job() -> None:
    jobs = [job("smoke", "run001", hour(1)), job("smoke", "run003", hour(3)), job("integration", "run004", hour(4))]
    latest = latest_run_job(jobs, environment="fullstack", test="smoke")
    assert latest is not None and latest["metadata"]["name"] == "smoke-run003"
    assert latest_run_job(jobs, environment="fullstack", test="lint") is None
    assert latest_run_job(jobs, environment="other", test="smoke") is None
