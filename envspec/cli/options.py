"""Options shared by several commands, so every command spells them the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_SPEC_FILE = "maestro-env.yaml"


def spec_file(func: F) -> F:
    decorated: F = click.option(
        "-f",
        "--file",
        "file",
        default=DEFAULT_SPEC_FILE,
        show_default=True,
        metavar="FILE",
        help="The spec to read; '-' reads standard input.",
    )(func)
    return decorated


def env_id(func: F) -> F:
    decorated: F = click.option(
        "--id",
        "env_id",
        metavar="ID",
        default=None,
        help="Instance id, so one spec can run several times side by side: the namespace becomes "
        "<prefix>-<name>-<id> (1-20 characters of a-z, 0-9 and '-').",
    )(func)
    return decorated


def output_format(*choices: str, default: str) -> Callable[[F], F]:
    def decorator(func: F) -> F:
        decorated: F = click.option(
            "-o",
            "--output",
            "output",
            type=click.Choice(choices),
            default=default,
            show_default=True,
            help="Output format.",
        )(func)
        return decorated

    return decorator
