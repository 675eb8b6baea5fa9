"""The JUnit XML report of a test run, as Jenkins, GitLab and GitHub test reporters read it.

One `<testsuite>` for the environment inside a `<testsuites>` root, one
`<testcase>` per test (classname: the environment, name: the test):

- failed or timed out: `<failure message="REASON" type="CAUSE">` whose text is the
  last `FAILURE_LOG_LINES` log lines;
- could not run: `<error message="REASON" type="CAUSE">`, the same text;
- not finished (the run was interrupted) or not run: `<skipped message="...">`;
- always: `<system-out>` with the whole log kept for the test.

Text is made safe for XML 1.0: terminal colour sequences go, and so do the control
characters XML forbids (a test's output may hold anything). Attributes and
elements follow the shape of the common JUnit schema (Jenkins' junit-10.xsd:
`failures` and `errors` always present, times as plain decimals).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from envspec.errors import EnvspecError
from envspec.testrun.outcome import Result

FAILURE_LOG_LINES = 50
REPORT_MODE = 0o644  # a report is meant to be read by the CI system's other steps

# CSI and OSC escape sequences (colours, cursor moves, titles), as test runners print them.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# What XML 1.0 does not allow at all: C0 controls but tab, newline and carriage return;
# surrogates; U+FFFE and U+FFFF.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


@dataclass(frozen=True)
class CaseReport:
    """One test of the run, as the report shows it."""

    name: str
    result: Result
    seconds: float
    reason: str | None = None
    cause: str | None = None  # the failure's `type`: e.g. BackoffLimitExceeded, DeadlineExceeded, ErrImagePull
    log: Sequence[str] = ()  # the log lines kept for the test, oldest first
    log_lines_total: int | None = None  # lines the test wrote, when more than `log` holds
    attempts: int = 0  # pods the Job ran (retries included); 0 when it never started one


@dataclass(frozen=True)
class SuiteReport:
    """The run: one environment's tests."""

    environment: str
    started: datetime  # aware
    seconds: float
    cases: Sequence[CaseReport]
    properties: Sequence[tuple[str, str]] = field(default=())  # e.g. namespace, run id
    hostname: str | None = None


@dataclass(frozen=True)
class Counts:
    tests: int
    failures: int
    errors: int
    skipped: int


def counts(cases: Sequence[CaseReport]) -> Counts:
    """Failures are failed and timed-out tests; errors, tests that could not run."""
    results = [case.result for case in cases]
    return Counts(
        tests=len(results),
        failures=sum(r in (Result.FAILED, Result.TIMED_OUT) for r in results),
        errors=sum(r is Result.ERROR for r in results),
        skipped=sum(r in (Result.SKIPPED, Result.RUNNING) for r in results),
    )


def xml_text(text: str) -> str:
    """`text` without terminal escape sequences and characters XML 1.0 cannot hold."""
    return _XML_FORBIDDEN.sub("", _ANSI.sub("", text))


def _seconds(value: float) -> str:
    return f"{max(0.0, value):.3f}"


def _timestamp(instant: datetime) -> str:
    # No offset: the strictest common schemas want a bare date-time; it is UTC.
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _log_excerpt(case: CaseReport) -> str:
    lines = list(case.log)[-FAILURE_LOG_LINES:]
    if not lines:
        return ""
    total = case.log_lines_total if case.log_lines_total is not None else len(case.log)
    header = f"last {len(lines)} of {total} log lines:" if total > len(lines) else "log:"
    return "\n".join([header, *lines])


def _outcome_element(case: CaseReport) -> ET.Element | None:
    reason = xml_text(case.reason or "")
    if case.result is Result.PASSED:
        return None
    if case.result in (Result.SKIPPED, Result.RUNNING):
        unfinished = "interrupted before it finished" if case.result is Result.RUNNING else "not run"
        return ET.Element("skipped", {"message": reason or unfinished})
    tag = "error" if case.result is Result.ERROR else "failure"
    kind = xml_text(case.cause or "") or case.result.value
    element = ET.Element(tag, {"message": reason or case.result.label, "type": kind})
    element.text = xml_text(_log_excerpt(case)) or None
    return element


def _testcase(suite: SuiteReport, case: CaseReport) -> ET.Element:
    attributes = {"name": xml_text(case.name), "classname": xml_text(suite.environment), "time": _seconds(case.seconds)}
    element = ET.Element("testcase", attributes)
    outcome = _outcome_element(case)
    if outcome is not None:
        element.append(outcome)
    if case.log:
        output = ET.SubElement(element, "system-out")
        output.text = xml_text("\n".join(case.log))
    return element


def junit_xml(suite: SuiteReport) -> bytes:
    """The report as UTF-8 bytes with an XML declaration."""
    total = counts(suite.cases)
    numbers = {"tests": str(total.tests), "failures": str(total.failures), "errors": str(total.errors)}
    root = ET.Element("testsuites", {"name": xml_text(suite.environment), **numbers, "time": _seconds(suite.seconds)})
    attributes = {
        "name": xml_text(suite.environment),
        **numbers,
        "skipped": str(total.skipped),
        "time": _seconds(suite.seconds),
        "timestamp": _timestamp(suite.started),
    }
    if suite.hostname:
        attributes["hostname"] = xml_text(suite.hostname)
    testsuite = ET.SubElement(root, "testsuite", attributes)
    if suite.properties:
        properties = ET.SubElement(testsuite, "properties")
        for name, value in suite.properties:
            ET.SubElement(properties, "property", {"name": xml_text(name), "value": xml_text(value)})
    for case in suite.cases:
        testsuite.append(_testcase(suite, case))
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


def write_junit(path: Path, suite: SuiteReport) -> None:
    """Write the report atomically: readers see the old file or the whole new one, never a part."""
    data = junit_xml(suite)
    directory = path.parent
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise EnvspecError(f"cannot write the JUnit report {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, REPORT_MODE)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise EnvspecError(f"cannot write the JUnit report {path}: {exc.strerror or exc}") from exc
