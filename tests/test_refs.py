"""`${...}` reference parsing."""

from __future__ import annotations

import pytest

from envspec import refs
from envspec.refs import Reference, ReferenceSyntaxError, parse, references


def ref(scope: str, attribute: str, default: str | None = None) -> Reference:
    text = f"${{{scope}.{attribute}" + (f":-{default}" if default is not None else "") + "}"
    return Reference(scope, attribute, default, text)


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("plain text", ["plain text"]),
        ("", []),
        ("${db.url}", [ref("db", "url")]),
        ("a${db.host}:${db.port}b", ["a", ref("db", "host"), ":", ref("db", "port"), "b"]),
        ("${my-db.password}", [ref("my-db", "password")]),
        ("${env.HOME}", [ref("env", "HOME")]),
        ("${env.TAG:-latest}", [ref("env", "TAG", "latest")]),
        ("${env.TAG:-}", [ref("env", "TAG", "")]),
        ("${env.URL:-redis://h:6379/0}", [ref("env", "URL", "redis://h:6379/0")]),
        ("${env.A:-x:-y}", [ref("env", "A", "x:-y")]),
        ("${environment.namespace}", [ref("environment", "namespace")]),
        ("$${db.url}", ["${db.url}"]),
        ("$${literal} and ${db.host}", ["${literal} and ", ref("db", "host")]),
        ("cost: $5 $db $(VAR)", ["cost: $5 $db $(VAR)"]),
        ("$", ["$"]),
        ("}{", ["}{"]),
    ],
)
def test_parse(text: str, segments: list[str | Reference]) -> None:
    assert parse(text) == segments


def test_reference_kinds() -> None:
    assert ref("env", "X").is_env and not ref("env", "X").is_environment
    assert ref("environment", "name").is_environment and not ref("environment", "name").is_env
    assert not ref("db", "url").is_env and not ref("db", "url").is_environment


def test_reference_text_is_as_written() -> None:
    (found,) = references("postgres at ${db.host} ok")
    assert found.text == "${db.host}"
    assert references("${a.url}-${b.url}") == [ref("a", "url"), ref("b", "url")]
    assert references("no refs, $${escaped}") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${db.url", "unterminated reference"),
        ("x ${", "unterminated reference"),
        ("${db}", "invalid reference '${db}'"),
        ("${}", "invalid reference '${}'"),
        ("${ db.url}", "invalid reference"),
        ("${db.}", "invalid reference"),
        ("${db.1x}", "invalid reference"),
        ("${.url}", "invalid reference"),
        ("${db.url\n}", "invalid reference"),
        ("${db.url:-x}", "only env references take a default"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(ReferenceSyntaxError, match=message.replace("$", r"\$").replace("{", r"\{")):
        parse(text)
    assert issubclass(ReferenceSyntaxError, ValueError)


def test_attribute_tables() -> None:
    assert refs.DATABASE_ATTRIBUTES == ("host", "port", "user", "password", "database", "url")
    assert refs.SERVICE_ATTRIBUTES == ("host", "port", "url")
    assert refs.ENVIRONMENT_ATTRIBUTES == ("name", "namespace")
    assert {"password", "url"} == refs.SECRET_ATTRIBUTES
