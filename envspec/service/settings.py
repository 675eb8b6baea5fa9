"""The worker's and the REST API's configuration from the original service's variables.

`REDIS_URL` (or `REDIS_HOST` / `REDIS_PORT`, with `REDIS_PASSWORD` and `REDIS_DB`),
`K8S_NAMESPACE_PREFIX`, `K8S_TTL_MINUTES`, `DEFAULT_CPU_LIMIT`, `DEFAULT_MEMORY_LIMIT`
and `K8S_IN_CLUSTER`. Every problem is reported at once, named by its variable; a
password never appears in a message (`Settings.redis_url_masked` is the printable URL).
Flags given on the command line win over these; the CLI applies that, not this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from envspec.defaults import DEFAULT_NAMESPACE_PREFIX
from envspec.errors import EnvspecError
from envspec.model import DNS_LABEL
from envspec.report.redis_url import mask_url, redis_url_problem
from envspec.units import parse_quantity

DEFAULT_TTL_MINUTES = 60
# A spec's ttl may be at most 36500d (envspec.validation): the same bound for the variable.
MAX_TTL_MINUTES = 36500 * 24 * 60
MAX_DIGITS = 18  # every setting fits; int() of more is never needed
NAMESPACE_PREFIX_MAX_LENGTH = 40  # as envspec.validation.meaning allows for namespacePrefix


class SettingsError(EnvspecError):
    """One or more environment variables are invalid; the message lists every one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Settings:
    redis_url: str | None  # None: no Redis configured
    namespace_prefix: str
    ttl_minutes: int
    cpu_limit: str | None  # DEFAULT_CPU_LIMIT; None: envspec's built-in default limit
    memory_limit: str | None
    in_cluster: bool

    @property
    def redis_url_masked(self) -> str | None:
        return None if self.redis_url is None else mask_url(self.redis_url)

    def spec_environ(self) -> dict[str, str]:
        """The variables spec validation may read for a request: these defaults and nothing else.

        A request's spec is written by someone else; `${env.X}` in it must not be able to
        copy the worker's own environment (its Redis password, say) into a pod.
        """
        environ = {
            "K8S_NAMESPACE_PREFIX": self.namespace_prefix,
            "K8S_TTL_MINUTES": str(self.ttl_minutes),
        }
        if self.cpu_limit is not None:
            environ["DEFAULT_CPU_LIMIT"] = self.cpu_limit
        if self.memory_limit is not None:
            environ["DEFAULT_MEMORY_LIMIT"] = self.memory_limit
        return environ


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read the variables from `environ`; raise SettingsError naming every invalid one."""
    problems: list[str] = []
    redis_url = _redis_url(environ, problems)
    prefix = _get(environ, "K8S_NAMESPACE_PREFIX") or DEFAULT_NAMESPACE_PREFIX
    if not (DNS_LABEL.fullmatch(prefix) and len(prefix) <= NAMESPACE_PREFIX_MAX_LENGTH):
        problems.append(
            f"K8S_NAMESPACE_PREFIX={prefix!r}: use 1-{NAMESPACE_PREFIX_MAX_LENGTH} lower-case letters, digits "
            "and '-', starting and ending with a letter or digit"
        )
    ttl_minutes = DEFAULT_TTL_MINUTES
    ttl_text = _get(environ, "K8S_TTL_MINUTES")
    if ttl_text is not None:
        minutes = _whole_number(ttl_text)
        if minutes is not None and 0 < minutes <= MAX_TTL_MINUTES:
            ttl_minutes = minutes
        else:
            problems.append(
                f"K8S_TTL_MINUTES={shorten(ttl_text)!r}: must be a whole number of minutes, 1 to {MAX_TTL_MINUTES}"
            )
    limits: dict[str, str | None] = {}
    for variable in ("DEFAULT_CPU_LIMIT", "DEFAULT_MEMORY_LIMIT"):
        value = _get(environ, variable)
        if value is not None:
            try:
                parse_quantity(value)
            except ValueError:
                problems.append(f"{variable}={value!r}: not a quantity (e.g. 500m, 2, 256Mi, 1Gi)")
        limits[variable] = value
    in_cluster = False
    in_cluster_text = _get(environ, "K8S_IN_CLUSTER")
    if in_cluster_text is not None:
        if in_cluster_text.lower() not in ("true", "false"):
            problems.append(f"K8S_IN_CLUSTER={in_cluster_text!r}: must be true or false")
        in_cluster = in_cluster_text.lower() == "true"
    if problems:
        raise SettingsError(problems)
    return Settings(
        redis_url=redis_url,
        namespace_prefix=prefix,
        ttl_minutes=ttl_minutes,
        cpu_limit=limits["DEFAULT_CPU_LIMIT"],
        memory_limit=limits["DEFAULT_MEMORY_LIMIT"],
        in_cluster=in_cluster,
    )


def _get(environ: Mapping[str, str], name: str) -> str | None:
    """The variable's value, stripped; None when unset or blank (as the original treated blanks)."""
    value = environ.get(name, "").strip()
    return value or None


def _redis_url(environ: Mapping[str, str], problems: list[str]) -> str | None:
    url = _get(environ, "REDIS_URL")
    if url is not None:
        problem = redis_url_problem(url)
        if problem is not None:
            problems.append(f"REDIS_URL={mask_url(url)!r}: {problem}")
            return None
        return url
    host = _get(environ, "REDIS_HOST")
    if host is None:
        for variable in ("REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB"):
            if _get(environ, variable) is not None:
                problems.append(f"{variable} is set but REDIS_HOST is not (or set REDIS_URL)")
        return None
    port = _number(environ, "REDIS_PORT", 6379, 1, 65535, problems)
    db = _number(environ, "REDIS_DB", 0, 0, None, problems)
    password = _get(environ, "REDIS_PASSWORD")
    auth = f":{quote(password, safe='')}@" if password else ""
    netloc_host = f"[{host}]" if ":" in host else host
    return f"redis://{auth}{netloc_host}:{port}/{db}"


def _number(
    environ: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None, problems: list[str]
) -> int:
    text = _get(environ, name)
    if text is None:
        return default
    number = _whole_number(text)
    if number is not None and number >= minimum and (maximum is None or number <= maximum):
        return number
    bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
    problems.append(f"{name}={shorten(text)!r}: must be a whole number {bound}")
    return default


def _whole_number(text: str) -> int | None:
    """Plain ASCII digits only: str.isdigit() also accepts '²', which int() refuses, and a
    number longer than any setting needs would only reach Python's digit limit."""
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_DIGITS:
        return None
    return int(text)


def shorten(text: str, limit: int = 40) -> str:
    """A setting's value as shown in a message: at most `limit` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


DEFAULT_SERVICE_PORT = 8004


def service_port(environ: Mapping[str, str]) -> int:
    """`SERVICE_PORT` (the original's), else 8004; SettingsError when it is not a port."""
    text = _get(environ, "SERVICE_PORT")
    if text is None:
        return DEFAULT_SERVICE_PORT
    if text.isdigit() and 1 <= int(text) <= 65535:
        return int(text)
    raise SettingsError([f"SERVICE_PORT={text!r}: must be a whole number between 1 and 65535"])
