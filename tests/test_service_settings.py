"""The worker's settings from the original service's environment variables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envspec.errors import EnvspecError
from envspec.report.redis_url import mask_text, mask_url, url_secrets
from envspec.service.settings import Settings, SettingsError, load_settings


def test_defaults_without_any_variable() -> None:
    assert load_settings({}) == Settings(
        redis_url=None,
        namespace_prefix="envspec",
        ttl_minutes=60,
        cpu_limit=None,
        memory_limit=None,
        in_cluster=False,
    )


def test_every_variable_of_the_original_is_read() -> None:
    settings = load_settings(
        {
            "REDIS_URL": "redis://:pw@redis.example:6380/2",
            "K8S_NAMESPACE_PREFIX": "quality-fabric",
            "K8S_TTL_MINUTES": "30",
            "DEFAULT_CPU_LIMIT": "500m",
            "DEFAULT_MEMORY_LIMIT": "512Mi",
            "K8S_IN_CLUSTER": "True",
        }
    )
    assert settings == Settings(
        redis_url="redis://:pw@redis.example:6380/2",
        namespace_prefix="quality-fabric",
        ttl_minutes=30,
        cpu_limit="500m",
        memory_limit="512Mi",
        in_cluster=True,
    )
    assert settings.redis_url_masked == "redis://:****@redis.example:6380/2"


def test_redis_host_and_port_make_a_url_when_redis_url_is_unset() -> None:
    assert load_settings({"REDIS_HOST": "redis"}).redis_url == "redis://redis:6379/0"
    environ = {"REDIS_HOST": "10.0.0.5", "REDIS_PORT": "6390", "REDIS_PASSWORD": "a/b@c", "REDIS_DB": "3"}
    settings = load_settings(environ)
    assert settings.redis_url == "redis://:a%2Fb%40c@10.0.0.5:6390/3"
    assert settings.redis_url_masked == "redis://:****@10.0.0.5:6390/3"


def test_redis_url_wins_over_host_and_port() -> None:
    settings = load_settings({"REDIS_URL": "redis://a:1/0", "REDIS_HOST": "b", "REDIS_PORT": "2"})
    assert settings.redis_url == "redis://a:1/0"


def test_blank_values_count_as_unset() -> None:
    assert load_settings({"K8S_NAMESPACE_PREFIX": "  ", "REDIS_URL": "", "K8S_TTL_MINUTES": ""}) == load_settings({})


def test_every_invalid_variable_is_reported_at_once_without_the_password() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(
            {
                "REDIS_URL": "http://:topsecret@host",
                "K8S_NAMESPACE_PREFIX": "Quality_Fabric",
                "K8S_TTL_MINUTES": "-5",
                "DEFAULT_CPU_LIMIT": "lots",
                "DEFAULT_MEMORY_LIMIT": "1 Gi",
                "K8S_IN_CLUSTER": "maybe",
            }
        )
    problems = caught.value.problems
    assert [problem.split("=")[0] for problem in problems] == [
        "REDIS_URL",
        "K8S_NAMESPACE_PREFIX",
        "K8S_TTL_MINUTES",
        "DEFAULT_CPU_LIMIT",
        "DEFAULT_MEMORY_LIMIT",
        "K8S_IN_CLUSTER",
    ]
    assert "topsecret" not in str(caught.value)
    assert isinstance(caught.value, EnvspecError) and caught.value.exit_code == 1


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"REDIS_URL": "redis://h:99999"}, "REDIS_URL"),
        ({"REDIS_HOST": "h", "REDIS_PORT": "0"}, "REDIS_PORT='0': must be a whole number between 1 and 65535"),
        ({"REDIS_HOST": "h", "REDIS_DB": "x"}, "REDIS_DB='x'"),
        ({"REDIS_PORT": "6379"}, "REDIS_PORT is set but REDIS_HOST is not"),
        ({"K8S_TTL_MINUTES": "1.5"}, "K8S_TTL_MINUTES='1.5': must be a whole number of minutes, 1 to 52560000"),
        ({"K8S_NAMESPACE_PREFIX": "a" * 41}, "K8S_NAMESPACE_PREFIX"),
    ],
)
def test_invalid_values_name_their_variable(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(environ)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(expected)


def test_spec_environ_holds_only_the_defaults() -> None:
    settings = load_settings(
        {"K8S_NAMESPACE_PREFIX": "qf", "DEFAULT_CPU_LIMIT": "2", "REDIS_URL": "redis://:pw@h/0", "HOME": "/root"}
    )
    assert settings.spec_environ() == {"K8S_NAMESPACE_PREFIX": "qf", "K8S_TTL_MINUTES": "60", "DEFAULT_CPU_LIMIT": "2"}


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:s3cr%40t@127.0.0.1:6379/0", "redis://:****@127.0.0.1:6379/0"),
        ("redis://user:pw@h/1?password=pw&x=1", "redis://user:****@h/1?password=****&x=1"),
        ("rediss://h:6379", "rediss://h:6379"),
        ("unix:///tmp/r.sock?password=abc&db=2", "unix:///tmp/r.sock?password=****&db=2"),
        ("redis://:pw@[::1]:7000/0", "redis://:****@[::1]:7000/0"),
        ("redis://:pw@h:99999", "<unparsable Redis URL>"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


# Characters a URL's userinfo may hold as they are (RFC 3986 unreserved and sub-delims).
PASSWORD_CHARACTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()+,;="


@given(st.text(alphabet=PASSWORD_CHARACTERS, min_size=1))
def test_a_password_never_survives_masking(password: str) -> None:
    url = f"redis://user:{password}@host:6379/0"
    assert mask_url(url) == "redis://user:****@host:6379/0"
    assert password in url_secrets(url)
    assert password not in mask_text(f"<{password}>", url)


@pytest.mark.parametrize("value", ["²", "1" * 5000, "0", str(36500 * 24 * 60 + 1), "-5"])
def test_a_ttl_variable_out_of_range_or_not_ascii_digits_is_a_problem_not_a_crash(value: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings({"K8S_TTL_MINUTES": value})
    message = str(refused.value)
    assert "K8S_TTL_MINUTES=" in message
    assert "1 to 52560000" in message
    assert len(message) < 300
