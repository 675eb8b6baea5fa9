"""The Redis test fixtures themselves: a real server, restartable on its port, with a password."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis

from tests.redis_fixtures import RedisFactory, RedisServer

pytestmark = pytest.mark.redis


def test_shared_server_is_emptied_for_each_test_first(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.dbsize() == 0
    client.set("left-behind", "1")


def test_shared_server_is_emptied_for_each_test_second(redis_url: str) -> None:
    assert redis.Redis.from_url(redis_url).dbsize() == 0


def test_server_has_no_persistence(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}
    assert client.config_get("bind")["bind"] == "127.0.0.1"


def test_stop_and_restart_keep_the_port_and_drop_clients(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    client = redis.Redis.from_url(server.url, socket_connect_timeout=1)
    client.set("k", "v")
    port = server.port
    server.stop()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    server.start()
    assert server.port == port
    assert client.ping()
    assert client.get("k") is None  # no persistence: a restart empties it


def test_persistent_variant_keeps_data_over_a_restart(redis_factory: RedisFactory) -> None:
    server = redis_factory(persistent=True)
    with server.client() as client:
        client.xadd("s", {"a": "1"})
    server.restart()
    with server.client() as client:
        assert client.xlen("s") == 1


def test_password_variant_refuses_clients_without_it(redis_factory: RedisFactory) -> None:
    server = redis_factory(password="pw-123")
    assert server.url == f"redis://:pw-123@127.0.0.1:{server.port}/0"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=server.port).set("k", "v")
    assert redis.Redis.from_url(server.url).ping()


def test_missing_redis_server_fails_the_test_instead_of_skipping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "redis-server" else real_which(name))
    with pytest.raises(pytest.fail.Exception, match="redis-server is not installed"):
        RedisServer(tmp_path)
