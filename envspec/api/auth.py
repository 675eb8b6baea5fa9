"""Bearer tokens of the REST API: where they come from and how a request's token is checked.

Tokens come from `ENVSPEC_API_TOKENS` (separated by commas or newlines) and from
`--token-file` (one per line; blank lines and `#` comments ignored). A token written
`TOKEN:read` may only read. A presented token is compared with every known token in
constant time (`hmac.compare_digest`, and no early exit), so the answer's timing says
nothing about how much of it was right. No message here ever contains a token.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from envspec.errors import EnvspecError

TOKENS_ENV = "ENVSPEC_API_TOKENS"
READ_ONLY_SUFFIX = ":read"
MIN_TOKEN_LENGTH = 16
# Printable ASCII without whitespace: what an HTTP Authorization header can carry as it is.
TOKEN_CHARACTERS = re.compile(r"[\x21-\x7e]+")


class Access(Enum):
    NONE = "none"
    READ = "read"
    WRITE = "write"


class TokenError(EnvspecError):
    """A token source that cannot be used; the message names the source, never a token."""


@dataclass(frozen=True)
class Token:
    secret: bytes
    read_only: bool

    def __repr__(self) -> str:  # a token must not reach a log through a repr
        return f"Token(read_only={self.read_only})"


@dataclass(frozen=True)
class Tokens:
    tokens: tuple[Token, ...]

    def __bool__(self) -> bool:
        return bool(self.tokens)

    def access(self, presented: str | None) -> Access:
        """What the presented token may do: NONE when it is missing or unknown."""
        if not presented:
            return Access.NONE
        candidate = presented.encode("utf-8", "surrogateescape")
        found: Token | None = None
        for token in self.tokens:  # every token is compared, whether or not one matched already
            if hmac.compare_digest(candidate, token.secret) and found is None:
                found = token
        if found is None:
            return Access.NONE
        return Access.READ if found.read_only else Access.WRITE


def parse_tokens(text: str, source: str, *, separators: str = r"[,\n]") -> list[Token]:
    """Tokens written one after another; TokenError naming `source` and the entry's number when one is unusable."""
    tokens: list[Token] = []
    for number, raw in enumerate(re.split(separators, text), start=1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        read_only = entry.endswith(READ_ONLY_SUFFIX)
        secret = entry[: -len(READ_ONLY_SUFFIX)] if read_only else entry
        if not TOKEN_CHARACTERS.fullmatch(secret):
            raise TokenError(f"{source}: token {number} has characters a Bearer header cannot carry")
        if len(secret) < MIN_TOKEN_LENGTH:
            raise TokenError(f"{source}: token {number} is shorter than {MIN_TOKEN_LENGTH} characters")
        tokens.append(Token(secret.encode(), read_only))
    return tokens


def load_tokens(environ: Mapping[str, str], token_files: Iterable[str]) -> Tokens:
    """Every token of `ENVSPEC_API_TOKENS` and of the token files."""
    tokens = parse_tokens(environ.get(TOKENS_ENV, ""), TOKENS_ENV)
    for name in token_files:
        try:
            text = Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise TokenError(f"--token-file {name}: cannot read it: {reason}") from None
        tokens += parse_tokens(text, f"--token-file {name}", separators=r"\n")
    return Tokens(tuple(tokens))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None for any other header."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None
