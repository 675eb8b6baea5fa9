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


def parse(text: str) -> list[Segment]:
    """Split a string into literal text and references; adjacent literals are joined."""
    segments: list[Segment] = []
    literal: list[str] = []
    index = 0
    while index < len(text):
        if text.startswith("$${", index):
            literal.append("${")
            index += 3
            continue
        if text.startswith("${", index):
            end = text.find("}", index + 2)
            if end < 0:
                raise ReferenceSyntaxError(f"unterminated reference starting at {text[index : index + 20]!r}")
            body = text[index + 2 : end]
            match = _BODY.fullmatch(body)
            if match is None:
                raise ReferenceSyntaxError(
                    f"invalid reference '${{{body}}}': expected ${{name.attribute}}, ${{env.NAME}} or "
                    "${env.NAME:-default}"
                )
            default = match.group("default")
            if default is not None and match.group("scope") != "env":
                raise ReferenceSyntaxError(f"invalid reference '${{{body}}}': only env references take a default")
            if literal:
                segments.append("".join(literal))
                literal = []
            segments.append(Reference(match.group("scope"), match.group("attr"), default, text[index : end + 1]))
            index = end + 1
            continue
        literal.append(text[index])
        index += 1
    if literal:
        segments.append("".join(literal))
    return segments


def references(text: str) -> list[Reference]:
    return [s for s in parse(text) if isinstance(s, Reference)]
