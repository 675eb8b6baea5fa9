"""The JUnit report: read back with junitparser field by field, and checked against the common schema's shape."""

from __future__ import annotations

import re
import stat
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from junitparser import Error, Failure, JUnitXml, Skipped, TestSuite

from envspec.errors import EnvspecError
from envspec.testrun.junit import FAILURE_LOG_LINES, CaseReport, SuiteReport, counts, junit_xml, write_junit, xml_text
from envspec.testrun.outcome import Result

STARTED = datetime(2026, 3, 1, 9, 30, 0, 250000, tzinfo=UTC)
LOG = [f"line {n}" for n in range(1, 121)]

CASES = [
    CaseReport("smoke", Result.PASSED, 7.0, log=["collected 1 item", "1 passed"]),
    CaseReport("integration", Result.FAILED, 63.25, reason="exit code 3", cause="BackoffLimitExceeded", log=LOG),
    CaseReport(
        "slow",
        Result.TIMED_OUT,
        600.0,
        reason="DeadlineExceeded: the test did not finish after 10m (its timeout)",
        cause="DeadlineExceeded",
        log=["waiting for the API..."],
    ),
    CaseReport(
        "contract",
        Result.ERROR,
        1.5,
        reason="cannot pull image registry.example.com/shop/contract:1: ErrImagePull: not found",
        cause="ErrImagePull",
    ),
    CaseReport("load", Result.RUNNING, 12.0, log=["started"]),
    CaseReport("lint", Result.SKIPPED, 0.0, reason="interrupted before it started"),
]
SUITE = SuiteReport(
    environment="fullstack-pr-7",
    started=STARTED,
    seconds=605.5,
    cases=CASES,
    properties=[("namespace", "quality-fabric-fullstack-pr-7"), ("run_id", "k3x9qa")],
    hostname="ci-runner-3",
)


def read_back(tmp_path: Path, suite: SuiteReport = SUITE) -> TestSuite:
    path = tmp_path / "report.xml"
    write_junit(path, suite)
    parsed = JUnitXml.fromfile(str(path))
    suites = list(parsed)
    assert len(suites) == 1
    only: TestSuite = suites[0]
    return only


def properties(suite: TestSuite) -> list[Any]:
    """The suite's <property> elements (junitparser leaves this method untyped)."""
    return list(suite.properties())  # type: ignore[no-untyped-call]


def test_the_suite_is_the_environment(tmp_path: Path) -> None:
    suite = read_back(tmp_path)
    assert suite.name == "fullstack-pr-7"
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (6, 2, 1, 2)
    assert suite.time == 605.5
    assert suite.timestamp == "2026-03-01T09:30:00"
    assert suite.hostname == "ci-runner-3"
    assert [(p.name, p.value) for p in properties(suite)] == [
        ("namespace", "quality-fabric-fullstack-pr-7"),
        ("run_id", "k3x9qa"),
    ]


def test_the_root_carries_the_totals(tmp_path: Path) -> None:
    path = tmp_path / "report.xml"
    write_junit(path, SUITE)
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("name", "tests", "failures", "errors", "time")} == {
        "name": "fullstack-pr-7",
        "tests": "6",
        "failures": "2",
        "errors": "1",
        "time": "605.500",
    }


def test_one_testcase_per_test_in_order(tmp_path: Path) -> None:
    cases = list(read_back(tmp_path))
    assert [(c.name, c.classname, c.time) for c in cases] == [
        ("smoke", "fullstack-pr-7", 7.0),
        ("integration", "fullstack-pr-7", 63.25),
        ("slow", "fullstack-pr-7", 600.0),
        ("contract", "fullstack-pr-7", 1.5),
        ("load", "fullstack-pr-7", 12.0),
        ("lint", "fullstack-pr-7", 0.0),
    ]


def test_a_passed_test_has_no_result_element_and_its_log_as_output(tmp_path: Path) -> None:
    smoke = next(iter(read_back(tmp_path)))
    assert smoke.is_passed and smoke.result == []
    assert smoke.system_out == "collected 1 item\n1 passed"


def test_a_failed_test_has_the_reason_and_the_last_50_log_lines(tmp_path: Path) -> None:
    integration = list(read_back(tmp_path))[1]
    [failure] = integration.result
    assert isinstance(failure, Failure)
    assert (failure.message, failure.type) == ("exit code 3", "BackoffLimitExceeded")
    lines = failure.text.split("\n")
    assert lines[0] == "last 50 of 120 log lines:"
    assert lines[1:] == LOG[-FAILURE_LOG_LINES:]
    assert integration.system_out == "\n".join(LOG)


def test_a_timed_out_test_is_a_failure_of_type_deadline_exceeded(tmp_path: Path) -> None:
    slow = list(read_back(tmp_path))[2]
    [failure] = slow.result
    assert isinstance(failure, Failure)
    assert failure.type == "DeadlineExceeded"
    assert failure.message == "DeadlineExceeded: the test did not finish after 10m (its timeout)"
    assert failure.text == "log:\nwaiting for the API..."


def test_a_test_that_could_not_run_is_an_error(tmp_path: Path) -> None:
    contract = list(read_back(tmp_path))[3]
    [error] = contract.result
    assert isinstance(error, Error)
    assert error.type == "ErrImagePull"
    assert error.message == "cannot pull image registry.example.com/shop/contract:1: ErrImagePull: not found"
    assert error.text is None
    assert contract.system_out is None


def test_unfinished_and_unrun_tests_are_skipped(tmp_path: Path) -> None:
    load, lint = list(read_back(tmp_path))[4:]
    assert [type(r) for r in load.result] == [Skipped]
    assert load.result[0].message == "interrupted before it finished"
    assert load.system_out == "started"
    assert lint.result[0].message == "interrupted before it started"


def test_a_failure_without_a_reason_or_cause_still_says_what_happened(tmp_path: Path) -> None:
    suite = SuiteReport("e", STARTED, 1.0, [CaseReport("t", Result.FAILED, 1.0)])
    [failure] = next(iter(read_back(tmp_path, suite))).result
    assert (failure.message, failure.type) == ("failed", "failed")


def test_an_empty_run_is_a_valid_report(tmp_path: Path) -> None:
    suite = read_back(tmp_path, SuiteReport("e", STARTED, 0.0, []))
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (0, 0, 0, 0)


# Text that XML cannot hold as it is


NASTY = "\x1b[31mFAILED\x1b[0m <tag> & \"quotes\" 'apostrophe' \x00nul \x07bell \x08bs \x0b\x0c \ufffe\uffff ok\ttab"


def test_markup_is_escaped_and_forbidden_characters_are_removed(tmp_path: Path) -> None:
    case = CaseReport(NASTY, Result.FAILED, 1.0, reason=NASTY, cause="Exit<3>", log=[NASTY, "\ud800 lone surrogate"])
    suite = read_back(tmp_path, SuiteReport("env & co", STARTED, 1.0, [case], properties=[("k", NASTY)]))
    clean = "FAILED <tag> & \"quotes\" 'apostrophe' nul bell bs   ok\ttab"
    assert suite.name == "env & co"
    assert next(iter(properties(suite))).value == clean
    [testcase] = list(suite)
    assert testcase.name == clean
    [failure] = testcase.result
    assert failure.message == clean
    assert failure.type == "Exit<3>"
    assert testcase.system_out == clean + "\n lone surrogate"


def test_a_multi_line_reason_survives_in_the_message_attribute(tmp_path: Path) -> None:
    case = CaseReport("t", Result.FAILED, 1.0, reason="first\nsecond")
    [failure] = next(iter(read_back(tmp_path, SuiteReport("e", STARTED, 1.0, [case])))).result
    assert failure.message == "first\nsecond"


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("\x1b[1;32mPASSED\x1b[0m", "PASSED"),
        ("\x1b]0;title\x07after", "after"),
        ("\x1b[2K\rprogress 50%", "\rprogress 50%"),
        ("plain", "plain"),
        ("caf\u00e9 \u2713 \U0001f600", "caf\u00e9 \u2713 \U0001f600"),
    ],
)
def test_xml_text(text: str, clean: str) -> None:
    assert xml_text(text) == clean


@given(st.text())
def test_any_text_makes_a_report_that_parses(text: str) -> None:
    case = CaseReport(text or "t", Result.FAILED, 1.0, reason=text, cause=text, log=[text])
    data = junit_xml(SuiteReport(text or "e", STARTED, 1.0, [case]))
    root = ET.fromstring(data)
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None
    assert failure.get("message") == (xml_text(text) or "failed")
    assert failure.get("type") == (xml_text(text) or "failed")


# The shape of Jenkins' junit-10.xsd (the schema the other reporters accept too):
# element -> (required attributes, optional attributes, allowed children).
SCHEMA: dict[str, tuple[set[str], set[str], set[str]]] = {
    "testsuites": (set(), {"name", "time", "tests", "failures", "errors"}, {"testsuite"}),
    "testsuite": (
        {"name", "tests", "failures", "errors"},
        {"group", "time", "skipped", "timestamp", "hostname", "id", "package", "file", "log", "url"},
        {"testsuite", "properties", "testcase", "system-out", "system-err"},
    ),
    "properties": (set(), set(), {"property"}),
    "property": ({"name", "value"}, set(), set()),
    "testcase": (
        {"name"},
        {"time", "classname", "group"},
        {"skipped", "error", "failure", "system-out", "system-err"},
    ),
    "failure": (set(), {"type", "message"}, set()),
    "error": (set(), {"type", "message"}, set()),
    "skipped": (set(), {"type", "message"}, set()),
    "system-out": (set(), set(), set()),
    "system-err": (set(), set(), set()),
}
SUREFIRE_TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?")
INTEGER = re.compile(r"[0-9]+")


def check_shape(element: ET.Element) -> None:
    required, optional, children = SCHEMA[element.tag]
    attributes = set(element.attrib)
    assert required <= attributes, f"{element.tag}: missing {required - attributes}"
    assert attributes <= required | optional, f"{element.tag}: unknown {attributes - required - optional}"
    if "time" in element.attrib:
        assert SUREFIRE_TIME.fullmatch(element.attrib["time"]), element.attrib["time"]
    for number in ("tests", "failures", "errors", "skipped"):
        if number in element.attrib:
            assert INTEGER.fullmatch(element.attrib[number])
    for child in element:
        assert child.tag in children, f"{child.tag} inside {element.tag}"
        check_shape(child)


def test_the_report_has_the_shape_of_the_common_junit_schema() -> None:
    root = ET.fromstring(junit_xml(SUITE))
    check_shape(root)
    timestamp = root.find("testsuite")
    assert timestamp is not None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", timestamp.get("timestamp", ""))


def test_the_report_starts_with_an_xml_declaration_in_utf_8() -> None:
    assert junit_xml(SUITE).startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<testsuites")


def test_the_timestamp_is_in_utc() -> None:
    eastern = datetime(2026, 3, 1, 4, 30, tzinfo=timezone(timedelta(hours=-5)))
    root = ET.fromstring(junit_xml(SuiteReport("e", eastern, 0.0, [])))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("timestamp") == "2026-03-01T09:30:00"


def test_counts() -> None:
    assert counts(CASES) == counts(list(reversed(CASES)))
    assert (counts(CASES).failures, counts(CASES).errors, counts(CASES).skipped) == (2, 1, 2)


# Writing


def test_writing_replaces_an_existing_report_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "report.xml"
    path.write_text("old and much longer content " * 100)
    write_junit(path, SUITE)
    assert path.read_bytes() == junit_xml(SUITE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.xml"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_report_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "report.xml"
    with pytest.raises(EnvspecError, match=r"cannot write the JUnit report .*report.xml: No such file or directory"):
        write_junit(missing, SUITE)


def test_a_failed_replace_leaves_the_old_report_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "report.xml"
    target.mkdir()  # a directory where the report should go: os.replace fails
    (target / "keep").write_text("x")
    with pytest.raises(EnvspecError, match="cannot write the JUnit report"):
        write_junit(target, SUITE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.xml"]
    assert (target / "keep").read_text() == "x"
