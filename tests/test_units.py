"""Kubernetes quantities and envspec durations."""

from __future__ import annotations

import re
import time
from fractions import Fraction

import pytest

from envspec.units import format_cpu, format_duration, format_memory, parse_duration, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", Fraction(1, 10)),
        ("1.5", Fraction(3, 2)),
        ("2", Fraction(2)),
        ("0", Fraction(0)),
        (".5", Fraction(1, 2)),
        ("5.", Fraction(5)),
        ("+1", Fraction(1)),
        ("256Mi", 256 * 2**20),
        ("1Ki", 1024),
        ("1Gi", 2**30),
        ("1Ti", 2**40),
        ("1Pi", 2**50),
        ("1Ei", 2**60),
        ("1n", Fraction(1, 10**9)),
        ("1u", Fraction(1, 10**6)),
        ("2k", 2000),
        ("1M", 10**6),
        ("1G", 10**9),
        ("1T", 10**12),
        ("1P", 10**15),
        ("1E", 10**18),
        ("1e3", 1000),
        ("1E3", 1000),
        ("1e-3", Fraction(1, 1000)),
        ("1e+2", 100),
        ("0.5Gi", 2**29),
    ],
)
def test_parse_quantity(text: str, value: Fraction | int) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-1",
        "1x",
        "m",
        "Mi",
        "1.2.3",
        " 1",
        "1 ",
        "1 Gi",
        "abc",
        "1e",
        "1mi",
        "1KI",
        "0x10",
        "1e1Mi",
        "1\n",
        "100m\n",
        "inf",
        "nan",
    ],
)
def test_invalid_quantities(text: str) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(text)


@pytest.mark.parametrize("value", [None, 5, 1.5, ["1"]])
def test_non_text_quantities_are_invalid(value: object) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(value)  # type: ignore[arg-type]


def test_huge_exponents_are_refused_quickly() -> None:
    start = time.perf_counter()
    for text in ("1e999999999", "1e-999999999", "1E31"):
        with pytest.raises(ValueError, match="exponent out of range"):
            parse_quantity(text)
    assert parse_quantity("1e30") == 10**30
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize(
    ("cores", "text"),
    [
        (Fraction(2), "2"),
        (Fraction(3, 2), "1500m"),
        (Fraction(1, 10), "100m"),
        (Fraction(0), "0"),
        (Fraction(1, 3000), "1m"),  # rounded up to a whole millicore, as the API server does
        (Fraction(1001, 1000), "1001m"),
        (Fraction(12), "12"),
    ],
)
def test_format_cpu(cores: Fraction, text: str) -> None:
    assert format_cpu(cores) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (Fraction(2**30), "1Gi"),
        (Fraction(384 * 2**20), "384Mi"),
        (Fraction(1536), "1536"),
        (Fraction(1000), "1000"),
        (Fraction(0), "0"),
        (Fraction(1, 2), "1"),
        (Fraction(10**9), "1000000000"),
        (Fraction(3 * 2**40), "3Ti"),
        (Fraction(2**20 + 2**30), "1025Mi"),
    ],
)
def test_format_memory(size: Fraction, text: str) -> None:
    assert format_memory(size) == text


@pytest.mark.parametrize("text", ["100m", "1", "250m", "1500m", "7"])
def test_cpu_round_trip(text: str) -> None:
    assert format_cpu(parse_quantity(text)) == text


@pytest.mark.parametrize("text", ["1Gi", "512Mi", "3Ti", "1Ki"])
def test_memory_round_trip(text: str) -> None:
    assert format_memory(parse_quantity(text)) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("45m", 2700),
        ("2h", 7200),
        ("1h30m", 5400),
        ("7d", 604800),
        ("1w", 604800),
        ("90m", 5400),
        ("1d1h", 90000),
        ("1h0m", 3600),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0s", "must be longer than 0s"),
        ("0m0s", "must be longer than 0s"),
        ("1h1h", "a unit appears twice"),
        ("h", ""),
        ("", ""),
        ("1.5h", ""),
        ("never", ""),
        ("30", ""),
        ("m30", ""),
        ("1H", ""),
        ("-1h", ""),
        ("1h ", ""),
        ("1h\n", ""),
    ],
)
def test_invalid_durations(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"invalid duration {text!r}")) as info:
        parse_duration(text)
    assert reason in str(info.value)


def test_non_text_duration_is_invalid() -> None:
    with pytest.raises(ValueError):
        parse_duration(30)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3600, "1h"),
        (5400, "1h30m"),
        (90, "1m30s"),
        (59, "59s"),
        (86401, "1d1s"),
        (8 * 86400, "8d"),
        (0, "0s"),
    ],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["30s", "45m", "2h", "1h30m", "7d", "2d3h4m5s"])
def test_duration_round_trip(text: str) -> None:
    assert format_duration(parse_duration(text)) == text
