"""The short list of exceptions envspec raises, and the exit codes they map to.

A user error (bad spec, bad flag value, refused operation) is an ``EnvspecError``:
the CLI prints its message and exits with its ``exit_code``. Anything else that
escapes a command is a bug: the CLI prints one line, writes the traceback to a log
file and exits with ``ExitCode.INTERNAL``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum


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
        prefix = f"{self.location}: "
        return f"{prefix}{self.path}: {self.message}" if self.path else f"{prefix}{self.message}"


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
        self.problems: Sequence[Problem] = sorted(
            problems, key=lambda p: (p.location.line, p.location.column, p.path, p.message)
        )
        count = len(self.problems)
        summary = f"{count} problem{'s' if count != 1 else ''} found"
        super().__init__("\n".join([*map(str, self.problems), summary]))


class ClusterError(EnvspecError):
    """The API server refused a request or could not be reached."""

    exit_code = ExitCode.CLUSTER


class NotReadyError(EnvspecError):
    """An object failed its readiness check, or the deadline passed first."""

    exit_code = ExitCode.NOT_READY
