"""Mask secrets in URLs and in text before they are logged, stored or printed.

A secret is a password in a URL's user info (``scheme://user:PASSWORD@host``), the value
of a query parameter whose name holds one of ``SECRET_KEYS`` (case-insensitive:
``?password=``, ``&PWD=``, ``?access_token=``, ``?sslpassword=``...), or a libpq-style
``password=...`` inside a connection string. Each becomes ``***``; nothing else changes,
so the masked text still says which host, database and user were used.

Every place a URL reaches the outside goes through here: source descriptions (MLflow
params and dataset sources), error messages, the CLI's lines about the tracking store,
and the configuration logged as params. It lives in `core` because the configuration
(below the sources) logs `tracking.uri`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, unquote, urlsplit

__all__ = ["MASK", "SECRET_KEYS", "mask_secrets", "mask_url", "scrub", "url_secrets"]

MASK = "***"
"""What a secret is replaced with."""

SECRET_KEYS = ("password", "passwd", "pwd", "token", "secret", "api_key", "apikey")
"""A query parameter whose name contains one of these (any case) holds a secret, so
`access_token`, `client_secret` and `sslpassword` are masked too."""

_KEYS = "|".join(SECRET_KEYS)
# scheme://user:password@host - the password may hold '@' or '/', so it runs up to the
# last '@' before the host (a host holds no '@', '/', '?', '#' or blank).
_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):(?P<password>\S*?)@"
    r"(?=[^@/?#\s]*(?:[/?#\s]|$))"
)
_QUERY_SECRET = re.compile(rf"(?i)(?P<key>[?&;][^=&;#\s]*(?:{_KEYS})[^=&;#\s]*=)[^&;#\s]*")
_CONNINFO_PASSWORD = re.compile(
    r"(?i)(?P<key>(?<![\w?&;])(?:password|passwd|pwd)\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s'&;]+)"
)
# Secrets shorter than this are not searched for as plain words in driver messages:
# replacing every occurrence of a one- or two-letter string would garble the message.
# Secrets inside URLs are masked whatever their length.
MIN_SCRUBBED_SECRET = 4


def mask_secrets(text: str) -> str:
    """``text`` with every secret of every URL or connection string in it masked."""
    text = _USERINFO.sub(rf"\g<head>:{MASK}@", text)
    text = _QUERY_SECRET.sub(rf"\g<key>{MASK}", text)
    return _CONNINFO_PASSWORD.sub(rf"\g<key>{MASK}", text)


def mask_url(url: str) -> str:
    """``url`` (or any text holding URLs) with its secrets masked.

    A SQLAlchemy URL is rendered by SQLAlchemy first (``hide_password=True``), so the
    masked form is the one SQLAlchemy itself prints; anything else is masked as text.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        text = make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        text = url
    return mask_secrets(text)


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(name in lowered for name in SECRET_KEYS)


def url_secrets(url: str) -> tuple[str, ...]:
    """The secrets a URL carries (its password, secret query values), decoded and as
    written, so that a driver's message quoting one can be scrubbed."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return ()
    found = [password] if password else []
    found += [value for key, value in parse_qsl(parts.query) if _is_secret_key(key) and value]
    spelled = {form for value in found for form in (value, unquote(value), quote(value))}
    return tuple(sorted(spelled, key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` masked as by `mask_secrets`, and every one of ``secrets`` (at least
    `MIN_SCRUBBED_SECRET` characters long) replaced wherever it appears."""
    text = mask_secrets(text)
    for secret in secrets:
        if len(secret) >= MIN_SCRUBBED_SECRET:
            text = text.replace(secret, MASK)
    return text
