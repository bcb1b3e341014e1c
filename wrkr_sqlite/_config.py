"""Configuration from the URL and constructor: the file's path and wrkr's options.

``sqlite:///relative/path.db`` is relative to the working directory when the backend
is built (resolved then, so a later ``chdir`` changes nothing); ``sqlite:////abs/path``
is absolute. Every mistake raises `InvalidConfig` naming the bad option or value and
the valid ones, before the file is opened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from wrkr.backend import InvalidConfig, UnknownBackend

SCHEME = "sqlite"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class SQLiteSettings:
    """What a `SQLiteBackend` is configured with (see its module docstring)."""

    path: str
    busy_timeout: float = 5.0
    poll_min: float = 0.01
    poll_max: float = 0.5
    cleanup_interval: float = 60.0
    fast_settle: bool = True

    @property
    def url(self) -> str:
        """The URL naming this file by its absolute path (``sqlite:////...``)."""
        return f"{SCHEME}:///{self.path}"


def _positive(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value)
    if not number > 0:
        raise ValueError(value)
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text not in _TRUE + _FALSE:
        raise ValueError(value)
    return text in _TRUE


_OPTIONS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "busy_timeout": (_positive, "seconds > 0"),
    "poll_min": (_positive, "seconds > 0"),
    "poll_max": (_positive, "seconds > 0"),
    "cleanup_interval": (_positive, "seconds > 0"),
    "fast_settle": (_flag, "true or false"),
}
VALID = ", ".join(sorted(_OPTIONS))


def _typed(key: str, value: Any, url: str) -> Any:
    convert, expected = _OPTIONS[key]
    try:
        return convert(value)
    except (TypeError, ValueError):
        raise InvalidConfig(f"SQLiteBackend option {key}={value!r} for {url!r} is invalid: "
                            f"expected {expected}") from None


def file_path(url: str) -> str:
    """Return the absolute path `url` names, relative ones resolved in the working directory.

    Raises:
        UnknownBackend: the scheme is not sqlite.
        InvalidConfig: a host is given, the path is empty, or it names no file.
    """
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        raise UnknownBackend(f"SQLiteBackend cannot use {url!r}: expected "
                             "'sqlite:///relative/path.db' or 'sqlite:////absolute/path.db'")
    path = unquote(parts.path[1:])
    if parts.netloc or not path or path.endswith("/") or path.startswith(":memory:"):
        raise InvalidConfig(
            f"SQLiteBackend cannot use {url!r}: expected a file, as 'sqlite:///wrkr.db' "
            "(relative to the working directory) or 'sqlite:////var/lib/app/wrkr.db' "
            "(absolute); for a store in memory use memory://")
    return str(Path(path).expanduser().absolute())


def settings_from_url(url: str, options: dict[str, Any]) -> SQLiteSettings:
    """Read the path and wrkr's options off `url`; keyword `options` win over the URL.

    Raises:
        UnknownBackend: the scheme is not sqlite.
        InvalidConfig: no file named, an unknown option, or a bad value.
    """
    path = file_path(url)
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    unknown = sorted((set(query) | set(options)) - set(_OPTIONS))
    if unknown:
        raise InvalidConfig(f"SQLiteBackend got unknown option(s) {unknown} for {url!r}; "
                            f"valid options are {VALID} (and clock)")
    typed = {key: _typed(key, value, url) for key, value in (query | options).items()}
    settings = SQLiteSettings(path, **typed)
    if settings.poll_min > settings.poll_max:
        raise InvalidConfig(f"SQLiteBackend for {url!r}: poll_min={settings.poll_min:g} is "
                            f"above poll_max={settings.poll_max:g}")
    return settings
