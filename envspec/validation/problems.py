"""Problems found while validating, each located at the YAML node that caused it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from envspec.errors import Problem
from envspec.loader import LoadedDocument, PathKey, format_path


class ProblemCollector:
    """Every problem of one document, once each, located through the loader's positions."""

    def __init__(self, doc: LoadedDocument) -> None:
        self.doc = doc
        self.problems: list[Problem] = []
        self.seen: set[Problem] = set()  # a set, not the list: 100,000 problems must stay linear

    def add(self, path: PathKey, message: str, *, key: bool = False, display: PathKey | None = None) -> None:
        """A problem at `path` (its key with `key=True`), shown under `display` when given."""
        location = self.doc.locate(path, key=key)
        problem = Problem(location, format_path(display if display is not None else path), message)
        if problem not in self.seen:
            self.seen.add(problem)
            self.problems.append(problem)


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate a misspelt `word` most likely meant (for `did you mean ...?`)."""
    if len(word) > 100:
        return None  # no name is that long, and difflib's cost grows with the length
    options = list(candidates)
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if matches:
        return matches[0]
    lowered = {c.lower(): c for c in options}
    return lowered.get(word.lower().replace("_", "").replace("-", ""))


def with_suggestion(message: str, word: str, candidates: Iterable[str]) -> str:
    suggestion = closest(word, candidates)
    return f"{message}; did you mean '{suggestion}'?" if suggestion else message
