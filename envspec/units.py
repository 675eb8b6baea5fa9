"""Kubernetes quantities and envspec durations: parsing, arithmetic, formatting."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

_QUANTITY = re.compile(
    r"^([+]?[0-9]+(?:\.[0-9]*)?|[+]?\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
_MAX_EXPONENT = 30  # far beyond any real CPU or memory amount (1e30 bytes)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}


_MAX_DIGITS = 100  # far more than any quantity in range (2^63-1 has 19 digits, nano precision 9 more)


def parse_quantity(text: str) -> Fraction:
    """The exact value of a Kubernetes quantity (`100m`, `1.5`, `256Mi`, `1e3`); ValueError if invalid."""
    # No stripping: the text is written into manifests as it is, and the API server
    # rejects a quantity with spaces.
    match = _QUANTITY.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"invalid quantity {text!r}")
    number, suffix = match.group(1), match.group(2) or ""
    if len(number) > _MAX_DIGITS:
        # Decimal -> Fraction is quadratic in the digits: a 9-million-digit number took minutes.
        # Its order of magnitude is cheap, though: a value that is surely beyond 2^63-1 is
        # out of range (what the user needs to hear), any other such number just too long.
        if _surely_beyond_the_maximum(number, suffix):
            raise OutOfRange(_out_of_range(text))
        raise ValueError(f"invalid quantity {_shown(text)}: more than {_MAX_DIGITS} digits")
    try:
        value = Fraction(Decimal(number))
    except InvalidOperation as exc:
        raise ValueError(f"invalid quantity {text!r}") from exc
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    if suffix in _DECIMAL:
        return value * _DECIMAL[suffix]
    exponent = int(suffix[1:])
    if abs(exponent) > _MAX_EXPONENT:
        # Also keeps `1e999999999` from taking minutes to evaluate.
        raise ValueError(f"invalid quantity {text!r}: exponent out of range")
    return value * Fraction(10) ** exponent


# Kubernetes: "no quantity may represent a number greater than 2^63-1 in magnitude"
# (k8s.io/apimachinery resource.Quantity); a larger one cannot be stored as written.
MAX_QUANTITY = 2**63 - 1


class OutOfRange(ValueError):
    """A well-formed quantity or duration beyond what Kubernetes or envspec can represent."""


def parse_quantity_in_range(text: str) -> Fraction:
    """parse_quantity, and OutOfRange for a value the API server cannot hold (> 2^63-1)."""
    value = parse_quantity(text)
    if value > MAX_QUANTITY:
        raise OutOfRange(_out_of_range(text))
    return value


def _out_of_range(text: str) -> str:
    return f"quantity {_shown(text)} is out of range: at most {MAX_QUANTITY} (2^63-1, about 8Ei)"


def _surely_beyond_the_maximum(number: str, suffix: str) -> bool:
    """Whether number x suffix is at least 10^19 (> 2^63-1), judged from digit counts alone."""
    whole_digits = len(number.lstrip("+").split(".")[0].lstrip("0"))
    if whole_digits == 0:
        return False
    if suffix in _BINARY:
        scale = _BINARY[suffix].bit_length() * 3 // 10  # a lower bound of log10(2^k)
    elif suffix in _DECIMAL:
        factor = _DECIMAL[suffix]
        scale = len(str(factor.numerator)) - len(str(factor.denominator))
    else:
        scale = int(suffix[1:])
    return whole_digits - 1 + scale >= 19


def _shown(text: str) -> str:
    """A value in a message: quoted, and shortened so that a 5000-digit number cannot flood the terminal."""
    return repr(text) if len(text) <= 40 else repr(text[:20] + "…" + text[-8:])


def format_cpu(cores: Fraction) -> str:
    """`2`, or `1500m` when not whole; rounds up to a millicore as the API server does."""
    millis = -((-cores * 1000) // 1)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_memory(size: Fraction) -> str:
    """The largest binary unit that represents the byte count exactly (`1Gi`, `384Mi`, `1000`)."""
    total = int(-((-size) // 1))
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if total and total % unit == 0:
            return f"{total // unit}{suffix}"
    return str(total)


_DURATION_PART = re.compile(r"([0-9]+)(w|d|h|m|s)")
# The longest duration envspec accepts: 100 years of 365 days. An expiry of now + ttl must
# stay a valid RFC 3339 time (year <= 9999, Python's datetime.max), and a test's timeout
# becomes the Job's activeDeadlineSeconds (int64); 100 years is within both with room to spare.
MAX_DURATION_SECONDS = 36500 * 86400
MAX_DURATION = "36500d"
_MAX_AMOUNT_DIGITS = len(str(MAX_DURATION_SECONDS))  # a longer amount is out of range whatever its unit
_DURATION = re.compile(r"^(?:[0-9]+(?:w|d|h|m|s))+$")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
NEVER = "never"


def parse_duration(text: str) -> int:
    """Seconds in `30s`, `45m`, `2h`, `1h30m`, `7d`, `1w`; ValueError otherwise (`never` is handled by callers)."""
    if not isinstance(text, str) or not _DURATION.fullmatch(text):
        raise ValueError(f"invalid duration {text!r}")
    parts = _DURATION_PART.findall(text)
    units = [unit for _, unit in parts]
    if len(set(units)) != len(units):
        raise ValueError(f"invalid duration {text!r}: a unit appears twice")
    out_of_range = OutOfRange(f"duration {_shown(text)} is out of range: at most {MAX_DURATION} (100 years)")
    # Digits are counted before int(): a 5000-digit amount never reaches Python's integer-string limit.
    if any(len(amount.lstrip("0")) > _MAX_AMOUNT_DIGITS for amount, _ in parts):
        raise out_of_range
    seconds = sum(int(amount) * _UNIT_SECONDS[unit] for amount, unit in parts)
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be longer than 0s")
    if seconds > MAX_DURATION_SECONDS:
        raise out_of_range
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest form: 3600 -> `1h`, 5400 -> `1h30m`, 90 -> `1m30s`."""
    if seconds <= 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        amount, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)
