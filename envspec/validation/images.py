"""The container image reference grammar: [registry[:port]/]path[:tag][@digest].

As the OCI distribution reference grammar defines it (and container runtimes parse
it): path components of lower-case letters and digits joined by `.`, `_`, `__` or
dashes; a tag of at most 128 word characters, `.` and `-`, not starting with either;
a digest `algorithm:hex` of at least 32 hex digits; the name at most 255 characters.
"""

from __future__ import annotations

import re

NAME_MAX_LENGTH = 255
# Longer than any valid reference (name, ":" + tag, "@" + a sha512 digest): checked before
# the pattern so that an enormous value costs nothing.
REFERENCE_MAX_LENGTH = NAME_MAX_LENGTH + 1 + 128 + 1 + 256

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?", re.ASCII)

EXPECTED = "expected [registry/]path[:tag][@digest], e.g. registry.example.com/team/app:1.2"


def image_problem(image: str) -> str | None:
    """Why `image` is not a valid reference, or None."""
    if not image.strip():
        return "must not be empty"
    shown = repr(image) if len(image) <= 80 else repr(image[:60] + "…")
    if any(character.isspace() for character in image):
        return f"invalid image {shown}: an image reference has no spaces"
    if len(image) > REFERENCE_MAX_LENGTH:
        return f"invalid image {shown}: {len(image)} characters; a reference has at most {REFERENCE_MAX_LENGTH}"
    match = _REFERENCE.fullmatch(image)
    if match is None:
        return f"invalid image {shown}: {EXPECTED} (path in lower case)"
    if len(match.group("name")) > NAME_MAX_LENGTH:
        return f"invalid image {shown}: the name before the tag has at most {NAME_MAX_LENGTH} characters"
    return None
