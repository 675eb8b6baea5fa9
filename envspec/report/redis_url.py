"""Redis URLs in messages: the password masked, wherever it was written."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

PASSWORD_MASK = "****"
REDIS_SCHEMES = ("redis", "rediss", "unix")


def redis_url_problem(url: str) -> str | None:
    """What makes `url` unusable as a Redis URL (as redis-py would refuse it), or None."""
    try:
        scheme = urlsplit(url).scheme
        urlsplit(url).port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        return str(exc)
    if scheme not in REDIS_SCHEMES:
        return "must start with redis://, rediss:// or unix://"
    return None


def mask_url(url: str) -> str:
    """`redis://user:secret@host:6379/0` -> `redis://user:****@host:6379/0`.

    A `password=` in the query string (which redis-py also reads) is masked as well.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
        port = parts.port
    except ValueError:
        return "<unparsable Redis URL>"
    netloc = parts.netloc
    if password:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:{PASSWORD_MASK}@{host}{f':{port}' if port is not None else ''}"
    query = "&".join(
        f"{key}={PASSWORD_MASK}" if key.lower() == "password" else f"{key}={value}" if value or "=" in item else key
        for item in parts.query.split("&")
        if item
        for key, _, value in [item.partition("=")]
    )
    if netloc == parts.netloc and query == parts.query:
        return url
    # Built by hand: urlunsplit drops the `//` of `unix:///path`.
    text = f"{parts.scheme}://{netloc}{parts.path}"
    text += f"?{query}" if query else ""
    return text + (f"#{parts.fragment}" if parts.fragment else "")


def url_secrets(url: str) -> tuple[str, ...]:
    """The password of `url` as written and decoded, to mask it in any text (an error message)."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
    except ValueError:
        return ()
    found += [value for key, value in parse_qsl(parts.query) if key.lower() == "password"]
    found += [unquote(value) for value in found]
    return tuple(sorted({value for value in found if value}, key=len, reverse=True))


def mask_text(text: str, url: str) -> str:
    """`text` (an error message, say) with every form of `url`'s password masked."""
    for secret in url_secrets(url):
        text = text.replace(secret, PASSWORD_MASK)
    return text
