"""Validate a loaded spec: structure checks, then meaning checks, every problem located.

`validate` is the one entry point. The result, a `ValidSpec` (defined with the
defaults in `envspec.defaults`), holds everything the compiler needs with every
default resolved, including those that come from the process environment, so that
the compiler reads nothing but its arguments and never imports this package.
"""

from __future__ import annotations

from collections.abc import Mapping

from envspec.defaults import ValidSpec
from envspec.errors import SpecError
from envspec.loader import LoadedDocument
from envspec.validation.meaning import check_meaning
from envspec.validation.problems import ProblemCollector
from envspec.validation.structure import check_structure

__all__ = ["ValidSpec", "validate"]


def validate(doc: LoadedDocument, environ: Mapping[str, str]) -> ValidSpec:
    """Check everything; raise SpecError listing every problem found."""
    out = ProblemCollector(doc)
    shaped = check_structure(doc, out)
    if shaped is None:
        raise SpecError(out.problems)
    valid = check_meaning(doc, shaped, environ, out)
    if out.problems or valid is None:
        raise SpecError(out.problems)
    return valid
