"""The short list of exceptions envspec raises, and the exit codes they map to.

A user error (bad spec, bad flag value, refused operation) is an ``EnvspecError``:
the CLI prints its message and exits with its ``exit_code``. Anything else that
escapes a command is a bug: the CLI prints one line, writes the traceback to a log
file and exits with ``ExitCode.INTERNAL``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

SHOWN_LENGTH = 60  # the most of one piece of user text a message shows
MESSAGE_LENGTH = 1000  # the most of one message, whatever it holds
PROBLEMS_SHOWN = 100  # a spec's message lists the first problems (in file order), then how many more
# Characters that would start a new line, move the cursor, recolour the terminal or
# reorder what is shown: never printed as themselves.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})
# A run of text longer than anything shown() gives (60 characters and "… (N characters)")
# with no space or quote in it: user text that did not go through shown(). Quoted spans are
# not looked for: an apostrophe of one quotation and one of the next would pair up and cut
# the message's own words.
_LONG = SHOWN_LENGTH + 40
_LONG_WORD = re.compile(rf"[^\s'\"]{{{_LONG},}}")


def escape_text(text: str) -> str:
    """`text` with every control, line-break and formatting character written as an escape
    (`\\n`, `\\x1b`, `\\u202e`), so that it cannot forge an output line or drive a terminal."""
    if text.isprintable():
        return text
    return "".join(_escaped(c) if unicodedata.category(c) in _INVISIBLE_CATEGORIES else c for c in text)


def _escaped(character: str) -> str:
    escaped = repr(character)[1:-1]
    return escaped if escaped != character else f"\\u{ord(character):04x}"


def shorten(text: str, limit: int = SHOWN_LENGTH) -> str:
    """At most `limit` characters of `text`, and how long it was when that is more."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def shown(text: str, limit: int = SHOWN_LENGTH) -> str:
    """User text as a message shows it: quoted, escaped and shortened."""
    return f"'{escape_text(shorten(text, limit))}'"


def display_path(path: object) -> str:
    """A path the user gave, as a message shows it: escaped (a file name may hold a line
    break) and shortened, but not quoted, so an ordinary path reads as itself."""
    return escape_text(shorten(str(path), 200))


def safe_message(text: str) -> str:
    """The last guard of every located message: escapes, quoted user text shortened, and the
    whole message bounded, so no input can flood a terminal or forge a line."""
    text = escape_text(text)
    text = _LONG_WORD.sub(lambda m: shorten(m.group()), text)
    return shorten(text, MESSAGE_LENGTH)


class ExitCode(IntEnum):
    """Process exit codes, documented in the README."""

    OK = 0
    USER_ERROR = 1  # invalid spec, bad input, refused operation; `diff`: differences found
    USAGE = 2  # bad command line (click's own code)
    CLUSTER = 3  # the Kubernetes API refused or could not be reached
    NOT_READY = 4  # readiness failed or the deadline passed; `test`: the environment is not ready
    TESTS_FAILED = 5  # `test`: at least one test failed or could not run
    TESTS_TIMED_OUT = 6  # `test`: a test timed out, and none failed otherwise
    INTERNAL = 70  # a bug in envspec: see the log file named in the message
    INTERRUPTED = 130  # Ctrl-C


@dataclass(frozen=True, order=True)
class Location:
    """A position in a source file; line and column are 1-based."""

    source: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, at the node that caused it."""

    location: Location
    path: str
    message: str

    def __str__(self) -> str:
        prefix = f"{escape_text(shorten(str(self.location.source), 200))}:{self.location.line}:{self.location.column}: "
        path = safe_message(self.path)
        message = safe_message(self.message)
        return f"{prefix}{path}: {message}" if self.path else f"{prefix}{message}"


class EnvspecError(Exception):
    """An error the user can act on; never shown with a traceback."""

    exit_code: int = ExitCode.USER_ERROR

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code


class SpecError(EnvspecError):
    """A spec with one or more problems; all of them are reported at once."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        # Each problem once, however many ways the checks found it (a `<<:` list, say).
        self.problems: Sequence[Problem] = sorted(
            set(problems), key=lambda p: (p.location.line, p.location.column, p.path, p.message)
        )
        count = len(self.problems)
        summary = f"{count:,} problem{'s' if count != 1 else ''} found"
        shown_problems = [str(problem) for problem in self.problems[:PROBLEMS_SHOWN]]
        if count > PROBLEMS_SHOWN:
            # Every problem is kept in `problems`; a terminal gets the first ones.
            summary += f" ({count - PROBLEMS_SHOWN:,} more not shown)"
        super().__init__("\n".join([*shown_problems, summary]))


class ClusterError(EnvspecError):
    """The API server refused a request or could not be reached."""

    exit_code = ExitCode.CLUSTER


class NotReadyError(EnvspecError):
    """An object failed its readiness check, or the deadline passed first."""

    exit_code = ExitCode.NOT_READY
