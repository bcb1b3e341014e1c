"""Find the backend for a URL through the `wrkr.backends` entry-point group.

A third-party package plugs in a backend by declaring, in its own pyproject.toml::

    [project.entry-points."wrkr.backends"]
    redis = "wrkr_redis:RedisBackend"

and implementing `Backend.from_url`.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from wrkr._errors import UnknownBackend
from wrkr.backend import Backend

GROUP = "wrkr.backends"


def backend_class(url: str) -> type[Backend]:
    """Return the backend class registered for the scheme of `url`.

    Raises:
        UnknownBackend: the URL has no scheme, or no installed backend handles it.
    """
    scheme = urlsplit(url).scheme if "://" in url else ""
    found = entry_points(group=GROUP, name=scheme) if scheme else ()
    if not found:
        known = ", ".join(sorted({ep.name + "://" for ep in entry_points(group=GROUP)}))
        raise UnknownBackend(f"no wrkr backend for {redact(url)!r}; installed schemes: {known}")
    cls = next(iter(found)).load()
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise UnknownBackend(f"entry point {scheme!r} in {GROUP!r} is not a Backend: {cls!r}")
    return cls


def backend_from_url(url: str, **options: Any) -> Backend:
    """Build the backend for `url` with backend-specific `options`."""
    return backend_class(url).from_url(url, **options)


def redact(url: str) -> str:
    """Return `url` with any password replaced by `***`, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else f":***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))
