"""Putting `envspec serve` together: settings, tokens, reporting, and the uvicorn server.

`envspec.cli.serve` parses the options and calls `build_server`; the CLI runs the
returned server's `serve()` on its event loop. Access logs carry the method, path and
status only: uvicorn never logs headers, so a token in `Authorization` never reaches a log.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import uvicorn

from envspec.api.app import DEFAULT_MAX_REPLICAS, ApiConfig, create_app
from envspec.api.auth import TOKENS_ENV, load_tokens
from envspec.api.records import DEFAULT_HEARTBEAT_SECONDS
from envspec.errors import EnvspecError
from envspec.events import Envelope, envelope_to_dict
from envspec.kube.client import ClusterTarget
from envspec.report.redis_sink import RedisStreamSink
from envspec.report.redis_url import mask_text, mask_url
from envspec.service.operations import DEFAULT_TIMEOUT_SECONDS, Service
from envspec.service.settings import load_settings

REDIS_CHECK_TIMEOUT = 2.0


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    kubeconfig: str | None
    context: str | None
    report_redis: str | None
    token_files: Sequence[str]
    no_auth: bool
    max_operations: int
    operation_timeout: float = DEFAULT_TIMEOUT_SECONDS
    max_replicas: int = DEFAULT_MAX_REPLICAS
    heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS
    log_level: str = "info"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_config(options: ServeOptions, environ: Mapping[str, str]) -> ApiConfig:
    """The application's configuration; EnvspecError (naming what is wrong, never a secret) when unusable."""
    settings = load_settings(environ)
    tokens = load_tokens(environ, options.token_files)
    if options.no_auth:
        if not is_loopback(options.host):
            raise EnvspecError(f"--no-auth is only allowed on a loopback --host (127.0.0.1, ::1), not {options.host}")
    elif not tokens:
        raise EnvspecError(
            f"no API tokens: set {TOKENS_ENV} or pass --token-file FILE (or --no-auth on a loopback --host)"
        )
    redis_url = options.report_redis or settings.redis_url
    target = ClusterTarget.from_options(options.kubeconfig, options.context, environ)
    service = Service(target, settings, timeout_seconds=options.operation_timeout)
    reporter = None
    redis_check = None
    if redis_url is not None:
        reporter = RedisStreamSink[Envelope](redis_url, status_type=lambda envelope: None, to_fields=envelope_to_dict)

        async def check() -> str | None:
            return await redis_problem(redis_url)

        redis_check = check
    return ApiConfig(
        service=service,
        tokens=tokens,
        auth=not options.no_auth,
        redis_url=redis_url,
        redis_masked=mask_url(redis_url) if redis_url else None,
        max_running=options.max_operations,
        max_replicas=options.max_replicas,
        heartbeat_seconds=options.heartbeat_seconds,
        reporter=reporter,
        redis_check=redis_check,
    )


async def redis_problem(url: str) -> str | None:
    """None when Redis answers PING, else why not (the URL's password masked)."""
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    try:
        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=REDIS_CHECK_TIMEOUT, socket_timeout=REDIS_CHECK_TIMEOUT
        )
    except (ValueError, RedisError) as exc:
        return mask_text(str(exc), url)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        return mask_text(f"{type(exc).__name__}: {exc}", url)
    finally:
        await client.aclose()
    return None


def build_server(options: ServeOptions, environ: Mapping[str, str]) -> uvicorn.Server:
    app = create_app(build_config(options, environ))
    logging.getLogger("envspec").setLevel(options.log_level.upper())
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level=options.log_level,
        proxy_headers=False,
        server_header=False,
        # The body limit is enforced by the application (413); this bounds the rest.
        h11_max_incomplete_event_size=64 * 1024,
        timeout_graceful_shutdown=10,
    )
    return uvicorn.Server(config)
