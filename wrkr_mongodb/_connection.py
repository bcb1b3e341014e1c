"""Reading a `mongodb://` URL (refusing bad ones up front) and building the driver's client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from pymongo import AsyncMongoClient, uri_parser
from pymongo.common import URI_OPTIONS_VALIDATOR_MAP
from pymongo.errors import ConfigurationError

from wrkr.backend import InvalidConfig, UnknownBackend, redact, scrub

DEFAULT_URL = "mongodb://localhost:27017/wrkr"
DEFAULT_DATABASE = "wrkr"
SCHEMES = ("mongodb", "mongodb+srv")
SERVER_SELECTION_TIMEOUT_MS = 5000
"""Fail fast (5 s, not the driver's 30 s) when the server is away; the URL may say otherwise."""
FORBIDDEN_IN_DATABASE = '/\\. "$'


@dataclass(frozen=True, slots=True)
class MongoDBAddress:
    """What a URL says about where to connect, checked before anything connects."""

    url: str
    database: str

    @classmethod
    def parse(cls, url: str, database: str | None = None) -> MongoDBAddress:
        """Read `url`; the database is `database`, else the URL's path, else "wrkr".

        Raises:
            UnknownBackend: not a ``mongodb://`` or ``mongodb+srv://`` URL.
            InvalidConfig: a host, option or database the driver would refuse.
        """
        parts = urlsplit(url)
        if parts.scheme not in SCHEMES:
            raise UnknownBackend(f"MongoDBBackend cannot use {redact(url)!r}: expected "
                                 "'mongodb://' or 'mongodb+srv://'")
        _check_hosts(url, parts.scheme, parts.netloc.rpartition("@")[2])
        _check_options(url, parts.query)
        name = database or unquote(parts.path.lstrip("/")) or DEFAULT_DATABASE
        bad = sorted(set(name) & set(FORBIDDEN_IN_DATABASE))
        if bad:
            raise InvalidConfig(f"MongoDBBackend cannot use database {name!r} of "
                                f"{redact(url)!r}: a database name may not contain {bad}")
        return cls(url, name)

    @property
    def where(self) -> str:
        """Return the server and database, fit for messages once redacted."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/{self.database}"

    def client(self) -> Any:
        """Build a client: timezone-aware UTC datetimes, fast failure unless told otherwise."""
        options: dict[str, Any] = {"tz_aware": True}
        given = {key.lower() for key in _option_names(urlsplit(self.url).query)}
        if "serverselectiontimeoutms" not in given:
            options["serverSelectionTimeoutMS"] = SERVER_SELECTION_TIMEOUT_MS
        try:
            return AsyncMongoClient(self.url, **options)
        except (ConfigurationError, ValueError) as exc:  # e.g. an SRV record not found
            raise InvalidConfig(f"MongoDBBackend cannot use {redact(self.url)!r}: "
                                f"{scrub(str(exc), self.url)}") from exc

    def __repr__(self) -> str:
        return f"MongoDBAddress({redact(self.where)!r})"


def _option_names(query: str) -> list[str]:
    return [pair.partition("=")[0] for pair in query.replace(";", "&").split("&") if pair]


def _check_hosts(url: str, scheme: str, hosts: str) -> None:
    try:
        found = uri_parser.split_hosts(hosts) if hosts else []
    except (ConfigurationError, ValueError) as exc:
        raise InvalidConfig(f"MongoDBBackend cannot use the hosts {hosts!r} of "
                            f"{redact(url)!r}: {scrub(str(exc), url)}") from exc
    if not found:
        raise InvalidConfig(f"MongoDBBackend cannot use {redact(url)!r}: no host given; "
                            "expected 'mongodb://host[:port][,host2...]/[database]'")
    if scheme == "mongodb+srv" and (len(found) > 1 or ":" in hosts):
        raise InvalidConfig(f"MongoDBBackend cannot use {redact(url)!r}: a 'mongodb+srv://' "
                            "URL names one host and no port")


def _check_options(url: str, query: str) -> None:
    if not query:
        return
    valid = sorted(URI_OPTIONS_VALIDATOR_MAP)
    for name in _option_names(query):
        if name.lower() not in URI_OPTIONS_VALIDATOR_MAP:
            raise InvalidConfig(f"MongoDBBackend cannot use {redact(url)!r}: unknown URL "
                                f"option {name!r}; valid options (any case): {', '.join(valid)}")
    try:
        uri_parser.split_options(query, validate=True, warn=False)
    except (ConfigurationError, ValueError) as exc:
        raise InvalidConfig(f"MongoDBBackend cannot use {redact(url)!r}: "
                            f"{scrub(str(exc), url)}") from exc
