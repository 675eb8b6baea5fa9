"""`${...}` references in spec strings: parsing and the attribute table.

Forms: `${<database>.host|port|user|password|database|url}`, `${<service>.host|port|url}`,
`${env.NAME}`, `${env.NAME:-default}`, `${environment.name|namespace}`; `$${` is a
literal `${`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DATABASE_ATTRIBUTES = ("host", "port", "user", "password", "database", "url")
REDIS_ATTRIBUTES = ("host", "port", "url")
SERVICE_ATTRIBUTES = ("host", "port", "url")
ENVIRONMENT_ATTRIBUTES = ("name", "namespace")
# Values that carry a password: they may only reach a container through its Secret.
SECRET_ATTRIBUTES = frozenset({"password", "url"})

_BODY = re.compile(r"^(?P<scope>[A-Za-z0-9_-]+)\.(?P<attr>[A-Za-z_][A-Za-z0-9_.-]*?)(?::-(?P<default>.*))?$", re.S)


@dataclass(frozen=True)
class Reference:
    """One `${scope.attribute}`; for `env`, `attribute` is the variable name."""

    scope: str
    attribute: str
    default: str | None
    text: str  # as written, e.g. "${db.url}"

    @property
    def is_env(self) -> bool:
        return self.scope == "env"

    @property
    def is_environment(self) -> bool:
        return self.scope == "environment"


Segment = str | Reference


class ReferenceSyntaxError(ValueError):
    pass


_START = re.compile(r"\$\$\{|\$\{")


def parse(text: str) -> list[Segment]:
    """Split a string into literal text and references; adjacent literals are joined.

    Linear in the length of `text`: the scan jumps from one `${` to the next (a regex
    search and a `find` each), so a 10 MB string costs milliseconds, not a minute.
    """
    segments: list[Segment] = []
    literal: list[str] = []
    index = 0
    for start in _START.finditer(text):
        if start.start() < index:
            continue  # inside a reference already read
        literal.append(text[index : start.start()])
        if start.group() == "$${":
            literal.append("${")
            index = start.end()
            continue
        end = text.find("}", start.end())
        if end < 0:
            raise ReferenceSyntaxError(
                f"unterminated reference starting at {text[start.start() : start.start() + 20]!r}"
            )
        body = text[start.end() : end]
        match = _BODY.fullmatch(body)
        if match is None:
            raise ReferenceSyntaxError(
                f"invalid reference '${{{_short(body)}}}': expected ${{name.attribute}}, ${{env.NAME}} or "
                "${env.NAME:-default}"
            )
        default = match.group("default")
        if default is not None and match.group("scope") != "env":
            raise ReferenceSyntaxError(f"invalid reference '${{{_short(body)}}}': only env references take a default")
        if any(literal):
            segments.append("".join(literal))
        literal = []
        segments.append(Reference(match.group("scope"), match.group("attr"), default, text[start.start() : end + 1]))
        index = end + 1
    literal.append(text[index:])
    if any(literal):
        segments.append("".join(literal))
    return segments


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def references(text: str) -> list[Reference]:
    return [s for s in parse(text) if isinstance(s, Reference)]
