"""Reading a `mongodb://` URL and building the driver's client from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pymongo import AsyncMongoClient

from wrkr_mongodb._errors import redact_url

DEFAULT_URL = "mongodb://localhost:27017/wrkr"
DEFAULT_DATABASE = "wrkr"
SERVER_SELECTION_TIMEOUT_MS = 5000
"""Fail fast (5 s, not the driver's 30 s) when the server is away; the URL may say otherwise."""


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """What a URL says about where to connect, with the secrets set apart."""

    url: str
    database: str
    where: str  # the redacted host list, fit for logs and error messages
    secrets: tuple[str, ...]

    @classmethod
    def parse(cls, url: str, database: str | None = None) -> ServerAddress:
        """Read `url`; the database is `database`, else the URL's path, else "wrkr"."""
        parts = urlsplit(url)
        hosts = parts.netloc.rpartition("@")[2]
        name = database or unquote(parts.path.lstrip("/")) or DEFAULT_DATABASE
        secret = unquote(parts.password) if parts.password else ""
        return cls(url, name, f"{parts.scheme}://{hosts}/{name}", (secret,) if secret else ())

    def client(self) -> Any:
        """Build a client: timezone-aware UTC datetimes, fast failure unless told otherwise."""
        options: dict[str, Any] = {"tz_aware": True}
        given = {key.lower() for key, _ in parse_qsl(urlsplit(self.url).query)}
        if "serverselectiontimeoutms" not in given:
            options["serverSelectionTimeoutMS"] = SERVER_SELECTION_TIMEOUT_MS
        return AsyncMongoClient(self.url, **options)

    def __repr__(self) -> str:
        return f"ServerAddress({redact_url(self.where)!r})"
