"""Configuration from the URL and constructor: wrkr's own options split from libpq's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from wrkr._errors import UnknownBackend
from wrkr.backend import redact
from wrkr_postgres._names import check_schema

SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """What a `PostgresBackend` is configured with (see its module docstring)."""

    conninfo: str
    schema: str = "wrkr"
    pool_size: int = 10
    poll_interval: float = 5.0
    cleanup_interval: float = 60.0
    fast_settle: bool = True

    def __post_init__(self) -> None:
        check_schema(self.schema)
        if self.pool_size < 1 or self.poll_interval <= 0 or self.cleanup_interval <= 0:
            raise ValueError("pool_size, poll_interval and cleanup_interval must be positive")


_OPTIONS: dict[str, Any] = {"schema": str, "pool_size": int, "poll_interval": float,
                            "cleanup_interval": float, "fast_settle": None}


def _typed(key: str, value: Any) -> Any:
    if _OPTIONS[key] is not None:
        return _OPTIONS[key](value)
    if isinstance(value, bool):
        return value
    return str(value).lower() not in ("0", "false", "no", "off")


def settings_from_url(url: str, options: dict[str, Any]) -> PostgresSettings:
    """Split wrkr's options off the URL's query; keyword `options` win over the URL.

    Raises:
        UnknownBackend: the scheme is not postgresql / postgres.
        TypeError: an unknown keyword option.
    """
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise UnknownBackend(f"PostgresBackend cannot use {redact(url)!r}: "
                             "expected 'postgresql://user@host:port/database'")
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"PostgresBackend got unknown options {unknown}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {key: value for key, value in query if key in _OPTIONS} | options
    libpq = urlencode([(key, value) for key, value in query if key not in _OPTIONS])
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, libpq, parts.fragment))
    return PostgresSettings(conninfo, **{key: _typed(key, v) for key, v in ours.items()})
