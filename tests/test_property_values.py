"""Property tests for values (issue 12, items 9-12): numbers in every YAML 1.1/1.2 spelling where
strings are expected, integers, durations and quantities around each limit, label keys and images.

Whatever is generated: no exit 70, no traceback, no value altered, every error located
(`FILE:LINE:COL: path: message`), and a value is refused exactly when it is out of range.
The command is run as a user runs it (`envspec render -o json -f FILE`), in this process for
the many examples and through the installed `envspec` for a sample.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envspec.cli.main import main
from envspec.errors import ExitCode

HEAD = "apiVersion: envspec/v1\nname: demo\n"
INT32_MAX = 2**31 - 1
MAX_QUANTITY = 2**63 - 1
MAX_DURATION_SECONDS = 36500 * 86400
ENVSPEC = Path(sys.executable).parent / "envspec"
LOCATED = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<column>\d+): (?P<path>[^:]+): (?P<message>.+)$")
# Independent of envspec's own patterns: what Kubernetes accepts as a label value and an image
# tag, and a one-component image reference (the shapes a number can take).
LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
NUMBER_IMAGE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?")

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SUBPROCESS_SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str
    lines: list[str]  # the spec's lines, to check that every location exists

    def items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.out)["items"]
        return items

    def problems(self) -> list[re.Match[str]]:
        """Every problem line, each checked to be located inside the spec; the summary line last."""
        assert self.code == ExitCode.USER_ERROR, (self.code, self.err)
        *lines, summary = self.err.splitlines()
        assert re.fullmatch(r"\d+ problems? found", summary), self.err
        found = []
        for line in lines:
            match = LOCATED.match(line)
            assert match, f"not located: {line!r}"
            row, column = int(match["line"]), int(match["column"])
            assert 1 <= row <= len(self.lines) and 1 <= column <= len(self.lines[row - 1]) + 1, line
            found.append(match)
        return found


def checked(code: int, out: str, err: str, text: str) -> Run:
    assert code in (ExitCode.OK, ExitCode.USER_ERROR), (code, err)  # never 70 (internal error)
    assert "Traceback" not in out + err and "internal error" not in err
    return Run(code, out, err, text.split("\n"))


def render(text: str, env: dict[str, str] | None = None) -> Run:
    """`envspec render --tests -o json -f FILE` in this process; its exit code, stdout and stderr."""
    with tempfile.TemporaryDirectory() as directory:
        spec = Path(directory) / "maestro-env.yaml"
        spec.write_text(text, encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        saved = {name: os.environ.get(name) for name in (env or {})}
        os.environ.update(env or {})
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    main(["render", "--tests", "-o", "json", "-f", str(spec)])
                    code = 0
                except SystemExit as exit_:
                    code = int(exit_.code or 0)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    return checked(code, out.getvalue(), err.getvalue(), text)


def render_installed(text: str) -> Run:
    """The same through the installed `envspec` command (its real exit code)."""
    with tempfile.TemporaryDirectory() as directory:
        spec = Path(directory) / "maestro-env.yaml"
        spec.write_text(text, encoding="utf-8")
        done = subprocess.run(
            [str(ENVSPEC), "render", "--tests", "-o", "json", "-f", str(spec)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "ENVSPEC_LOG_DIR": directory},
        )
    return checked(done.returncode, done.stdout, done.stderr, text)


def of_kind(run: Run, kind: str, name: str) -> dict[str, Any]:
    return next(i for i in run.items() if i["kind"] == kind and i["metadata"]["name"] == name)


def first_container(obj: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return found


# --- numbers in every YAML 1.1 / 1.2 spelling, where a string is expected ------------------------


def _digits_with_underscores(digits: str, cuts: list[int]) -> str:
    """`1_000`: underscores between digits (YAML 1.1, and ruamel's YAML 1.2)."""
    for cut in sorted({c % len(digits) for c in cuts if c % len(digits) > 0}, reverse=True):
        digits = digits[:cut] + "_" + digits[cut:]
    return digits


signs = st.sampled_from(["", "+", "-"])
integer_spellings = st.one_of(
    st.builds(lambda s, n: f"{s}{n}", signs, st.integers(0, 10**30)),
    st.builds(lambda s, n, z: f"{s}{'0' * z}{n}", signs, st.integers(0, 10**6), st.integers(1, 3)),  # 007, 017
    st.builds(lambda s, n: f"{s}0x{n:x}", signs, st.integers(0, 2**80)),
    st.builds(lambda s, n: f"{s}0x{n:X}", signs, st.integers(0, 2**80)),
    st.builds(lambda s, n: f"{s}0o{n:o}", signs, st.integers(0, 2**40)),
    st.builds(lambda s, n: f"{s}0b{n:b}", signs, st.integers(0, 2**20)),
    st.builds(_digits_with_underscores, st.integers(10, 10**12).map(str), st.lists(st.integers(1, 12), max_size=3)),
    st.builds(lambda a, b: f"{a}:{b:02d}", st.integers(0, 999), st.integers(0, 59)),  # YAML 1.1 sexagesimal
)
float_spellings = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x:e}"),
    st.builds(lambda i, f: f"{i}.{f}", st.integers(0, 99), st.sampled_from(["10", "1", "0", "50", "100", "9"])),  # 8.10
    st.builds(lambda m, e: f"{m}e{e}", st.integers(1, 99), st.integers(-400, 400)),  # 1e3, 1e400
    st.builds(lambda m, e: f"{m}E+{e}", st.integers(1, 9), st.integers(0, 30)),
    st.builds(lambda i: f".{i}", st.integers(0, 999)),
    st.builds(lambda i: f"{i}.", st.integers(0, 999)),
    st.sampled_from([".inf", "-.inf", "+.inf", ".Inf", ".INF", ".nan", ".NaN", ".NAN", "190:20:30.15"]),
)
boolean_spellings = st.sampled_from(
    ["true", "True", "TRUE", "false", "False", "FALSE", "yes", "no", "on", "off", "y", "n", "Yes", "OFF"]
)
huge_spellings = st.builds(lambda d, n: d * n, st.sampled_from(["9", "1"]), st.integers(4290, 5000))
spellings = st.one_of(integer_spellings, float_spellings, boolean_spellings, huge_spellings)


@SETTINGS
@given(spellings)
def test_numbers_where_strings_are_expected_are_never_altered(written: str) -> None:
    text = (
        HEAD
        + f"labels:\n  release: {written}\n"
        + f"databases:\n  db:\n    engine: postgresql\n    version: {written}\n"
        + f"services:\n  api:\n    image: {written}\n    env:\n      V: {written}\n    args:\n      - {written}\n"
    )
    valid_label = len(written) <= 63 and LABEL_VALUE.fullmatch(written) is not None
    valid_tag = IMAGE_TAG.fullmatch(written) is not None
    valid_image = len(written) <= 255 and NUMBER_IMAGE.fullmatch(written) is not None
    run = render(text)
    if run.code == ExitCode.OK:
        assert valid_label and valid_tag and valid_image, written
        api = of_kind(run, "Deployment", "api")
        assert first_container(api)["image"] == written
        assert {"name": "V", "value": written} in first_container(api)["env"]
        assert first_container(api)["args"] == [written]
        assert first_container(of_kind(run, "StatefulSet", "db"))["image"] == f"postgres:{written}"
        assert all(item["metadata"]["labels"]["release"] == written for item in run.items())
        return
    refused = {m["path"] for m in run.problems()}
    expected = {
        path
        for path, ok in (
            ("labels.release", valid_label),
            ("databases.db.version", valid_tag),
            ("services.api.image", valid_image),
        )
        if not ok
    }
    assert refused == expected, (written, run.err)


@SUBPROCESS_SETTINGS
@given(spellings)
def test_the_installed_command_keeps_env_values_as_written(written: str) -> None:
    run = render_installed(HEAD + f"services:\n  api:\n    image: app\n    env:\n      V: {written}\n")
    assert run.code == ExitCode.OK, run.err
    assert {"name": "V", "value": written} in first_container(of_kind(run, "Deployment", "api"))["env"]


# --- integers around each limit ------------------------------------------------------------------

# field -> (YAML around `{value}`, minimum, maximum, where the value lands in the manifests)
INTEGER_FIELDS: dict[str, tuple[str, int, int]] = {
    "services.api.replicas": ("services:\n  api:\n    image: app\n    replicas: {value}\n", 0, INT32_MAX),
    "services.api.port": ("services:\n  api:\n    image: app\n    port: {value}\n", 1, 65535),
    "services.api.health.port": (
        "services:\n  api:\n    image: app\n    port: 80\n    health:\n      path: /h\n      port: {value}\n",
        1,
        65535,
    ),
    "services.api.health.initialDelaySeconds": (
        "services:\n  api:\n    image: app\n    port: 80\n    health:\n      path: /h\n"
        "      initialDelaySeconds: {value}\n",
        0,
        INT32_MAX,
    ),
    "services.api.health.periodSeconds": (
        "services:\n  api:\n    image: app\n    port: 80\n    health:\n      path: /h\n      periodSeconds: {value}\n",
        1,
        INT32_MAX,
    ),
    "tests.t.retries": ("tests:\n  t:\n    image: app\n    retries: {value}\n", 0, INT32_MAX),
    "resources.quota.pods": ("resources:\n  quota:\n    pods: {value}\n", 0, INT32_MAX),
}


def written_value(run: Run, field: str) -> int:
    if field.startswith("resources.quota"):
        return int(of_kind(run, "ResourceQuota", "envspec-quota")["spec"]["hard"]["pods"])
    if field.startswith("tests."):
        return int(of_kind(run, "Job", "t")["spec"]["backoffLimit"])
    api = of_kind(run, "Deployment", "api")
    container = first_container(api)
    if field == "services.api.replicas":
        return int(api["spec"]["replicas"])
    if field == "services.api.port":
        return int(container["ports"][0]["containerPort"])
    probe = container["readinessProbe"]
    if field == "services.api.health.port":
        return int(probe["httpGet"]["port"])
    return int(probe[field.rsplit(".", 1)[1]])


def decimal(number: int) -> str:
    """str(number), also beyond Python's integer-string limit (where the tests only draw powers of ten)."""
    try:
        return str(number)
    except ValueError:
        exponent = round(abs(number).bit_length() * math.log10(2))
        exponent = next(k for k in (exponent - 1, exponent, exponent + 1) if 10**k == abs(number))
        return ("-" if number < 0 else "") + "1" + "0" * exponent


def spelled(number: int, form: int) -> str:
    """`number` as YAML 1.1/1.2 writes an integer: decimal, +, hex, octal, binary, underscores, N.0."""
    sign = "-" if number < 0 else ""
    magnitude = abs(number)
    forms = [
        decimal(number),
        f"+{decimal(number)}" if number >= 0 else decimal(number),
        f"{sign}0x{magnitude:x}",
        f"{sign}0o{magnitude:o}",
        f"{sign}0b{magnitude:b}",
        sign + _digits_with_underscores(decimal(magnitude), [3]) if magnitude >= 10 else decimal(number),
        f"{number}.0" if magnitude < 2**53 else decimal(number),
    ]
    return forms[form % len(forms)]


def around(minimum: int, maximum: int) -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(minimum - 3, minimum + 3),
        st.integers(maximum - 3, maximum + 3),
        st.integers(-(10**40), 10**40),
        st.integers(4300, 4400).map(lambda k: 10**k),  # beyond Python's integer-string limit
    )


@SETTINGS
@given(st.sampled_from(sorted(INTEGER_FIELDS)), st.data())
def test_integers_are_accepted_exactly_within_the_apis_type(field: str, data: st.DataObject) -> None:
    template, minimum, maximum = INTEGER_FIELDS[field]
    number = data.draw(around(minimum, maximum))
    form = data.draw(st.integers(0, 6))
    written = spelled(number, form)
    # Room in the quota for any number of replicas, so that only the field itself is judged.
    quota = "" if field == "resources.quota.pods" else f"resources:\n  quota:\n    pods: {INT32_MAX}\n"
    text = HEAD + quota + template.format(value=written)
    run = render(text)
    if minimum <= number <= maximum:
        assert run.code == ExitCode.OK, (written, run.err)
        assert written_value(run, field) == number
    else:
        (problem,) = run.problems()
        assert problem["path"] == field
        assert problem["message"] == f"must be an integer between {minimum} and {maximum}", written


# --- durations and quantities around their limits --------------------------------------------------

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@SETTINGS
@given(st.sampled_from(sorted(UNIT_SECONDS)), st.data())
def test_durations_are_accepted_exactly_up_to_the_limit(unit: str, data: st.DataObject) -> None:
    limit = MAX_DURATION_SECONDS // UNIT_SECONDS[unit]
    amount = data.draw(
        st.one_of(st.integers(0, 3), st.integers(limit - 3, limit + 3), st.integers(0, 10**30), st.just(10**5000))
    )
    where = data.draw(st.sampled_from(["ttl", "timeout"]))
    duration = f"{decimal(amount)}{unit}"
    text = HEAD + (
        f"ttl: {duration}\n" if where == "ttl" else f"tests:\n  t:\n    image: app\n    timeout: {duration}\n"
    )
    run = render(text)
    seconds = amount * UNIT_SECONDS[unit]
    if 0 < seconds <= MAX_DURATION_SECONDS:
        assert run.code == ExitCode.OK, (duration, run.err)
        if where == "timeout":
            assert of_kind(run, "Job", "t")["spec"]["activeDeadlineSeconds"] == seconds
    else:
        (problem,) = run.problems()
        assert problem["path"] == ("ttl" if where == "ttl" else "tests.t.timeout")
        if seconds > 0:
            assert problem["message"].endswith("is out of range: at most 36500d (100 years)")
            assert len(problem["message"]) < 200


SUFFIXES = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "Ki": 2**10}
SUFFIXES |= {"Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


@SETTINGS
@given(st.sampled_from(sorted(SUFFIXES)), st.data())
def test_quantities_are_accepted_exactly_up_to_2_63(suffix: str, data: st.DataObject) -> None:
    limit = MAX_QUANTITY // SUFFIXES[suffix]
    amount = data.draw(st.one_of(st.integers(limit - 3, limit + 3), st.integers(1, 10**25), st.just(10**5000)))
    memory = f"{decimal(amount)}{suffix}"
    text = (
        HEAD
        + f"resources:\n  quota:\n    memory: {MAX_QUANTITY}\n"
        + f"services:\n  api:\n    image: app\n    resources:\n      limits:\n        memory: {memory}\n"
    )
    run = render(text)
    if amount * SUFFIXES[suffix] <= MAX_QUANTITY:
        assert run.code == ExitCode.OK, (memory, run.err)
        assert first_container(of_kind(run, "Deployment", "api"))["resources"]["limits"]["memory"] == memory
    else:
        (problem,) = run.problems()
        assert problem["path"] == "services.api.resources.limits.memory"
        assert problem["message"].endswith("is out of range: at most 9223372036854775807 (2^63-1, about 8Ei)")


# --- label keys and images -----------------------------------------------------------------------

domain_labels = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?", fullmatch=True)
RESERVED_DOMAINS = ["kubernetes.io", "k8s.io", "envspec.dev"]


@SETTINGS
@given(
    st.lists(domain_labels, max_size=2),
    st.sampled_from([*RESERVED_DOMAINS, "example.com", "kubernetes.iox", "k8s.io.example.com"]),
    st.booleans(),
)
def test_label_keys_are_refused_exactly_under_reserved_prefixes(
    subdomains: list[str], domain: str, janitor: bool
) -> None:
    prefix = "janitor" if janitor else ".".join([*subdomains, domain])
    key = f"{prefix}/name"
    run = render(HEAD + f"labels:\n  {key}: x\n")
    reserved = janitor or domain in RESERVED_DOMAINS
    if len(prefix) > 253:
        return
    if reserved:
        (problem,) = run.problems()
        assert problem["path"] == f"labels.{key}" and "is reserved for" in problem["message"]
    else:
        assert run.code == ExitCode.OK, run.err
        assert of_kind(run, "Namespace", "envspec-demo")["metadata"]["labels"][key] == "x"


@SETTINGS
# Without '/' and '@', `myapp:<tag>` is a valid reference exactly when <tag> is a valid tag
# (`myapp:5000/x` would be a registry and a path); without NUL, which no environment holds.
@given(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="/@\x00"), max_size=30))
def test_an_image_tag_from_the_environment_is_judged_after_substitution(tag: str) -> None:
    run = render(HEAD + "services:\n  api:\n    image: 'myapp:${env.TAG}'\n", {"TAG": tag})
    if IMAGE_TAG.fullmatch(tag):
        assert run.code == ExitCode.OK, (tag, run.err)
        assert first_container(of_kind(run, "Deployment", "api"))["image"] == f"myapp:{tag}"
    else:
        (problem,) = run.problems()
        # One line (a newline in the tag is quoted), naming the image as substituted.
        assert problem["path"] == "services.api.image" and problem["message"].startswith("invalid image ")
