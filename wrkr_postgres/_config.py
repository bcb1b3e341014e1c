"""Configuration from the URL and constructor: wrkr's own options split from libpq's.

Every mistake raises `InvalidConfig` naming the bad option or value and the valid ones,
with the URL's password masked, before anything reaches the server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict

from wrkr.backend import InvalidConfig, UnknownBackend, redact, scrub
from wrkr_postgres._names import check_schema

SCHEMES = ("postgresql", "postgres")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """What a `PostgresBackend` is configured with (see its module docstring)."""

    conninfo: str
    schema: str = "wrkr"
    pool_size: int = 10
    poll_interval: float = 5.0
    cleanup_interval: float = 60.0
    fast_settle: bool = True


def _positive(kind: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, bool) or (kind is int and isinstance(value, float)):
            raise ValueError(value)
        number = kind(value)
        if not number > 0:
            raise ValueError(value)
        return number
    return convert


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text not in _TRUE + _FALSE:
        raise ValueError(value)
    return text in _TRUE


_OPTIONS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "schema": (check_schema, "a lower-case identifier ([a-z_][a-z0-9_]*, at most 63 "
                             "characters)"),
    "pool_size": (_positive(int), "a whole number of connections >= 1"),
    "poll_interval": (_positive(float), "seconds > 0"),
    "cleanup_interval": (_positive(float), "seconds > 0"),
    "fast_settle": (_flag, "true or false"),
}
VALID = ", ".join(sorted(_OPTIONS))


def _typed(key: str, value: Any, url: str) -> Any:
    convert, expected = _OPTIONS[key]
    try:
        return convert(value)
    except (TypeError, ValueError):
        raise InvalidConfig(f"PostgresBackend option {key}={scrub(repr(value), url)} for "
                            f"{redact(url)!r} is invalid: expected {expected}") from None


def _check_libpq(conninfo: str, url: str) -> None:
    """Let libpq parse the rest of the URL now, so a typo fails here, not at connect."""
    try:
        conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        raise InvalidConfig(f"PostgresBackend cannot use {redact(url)!r}: "
                            f"{scrub(str(exc).strip(), url)}; wrkr's own options are "
                            f"{VALID}, any other query option must be libpq's (sslmode, "
                            "connect_timeout, application_name, ...)") from None


def settings_from_url(url: str, options: dict[str, Any]) -> PostgresSettings:
    """Split wrkr's options off the URL's query; keyword `options` win over the URL.

    Raises:
        UnknownBackend: the scheme is not postgresql / postgres.
        InvalidConfig: an unknown keyword option, a bad value, or a URL libpq rejects.
    """
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise UnknownBackend(f"PostgresBackend cannot use {redact(url)!r}: "
                             "expected 'postgresql://user@host:port/database'")
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise InvalidConfig(f"PostgresBackend got unknown option(s) {unknown} for "
                            f"{redact(url)!r}; valid options are {VALID} (and clock)")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {key: value for key, value in query if key in _OPTIONS} | options
    libpq = urlencode([(key, value) for key, value in query if key not in _OPTIONS])
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, libpq, parts.fragment))
    _check_libpq(conninfo, url)
    return PostgresSettings(conninfo, **{key: _typed(key, v, url) for key, v in ours.items()})
