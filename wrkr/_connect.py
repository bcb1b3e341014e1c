"""Find the backend for a URL through the `wrkr.backends` entry-point group.

A third-party package plugs in a backend by declaring, in its own pyproject.toml::

    [project.entry-points."wrkr.backends"]
    redis = "wrkr_redis:RedisBackend"

and implementing `Backend.from_url`.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlsplit

from wrkr._errors import UnknownBackend
from wrkr._urls import redact
from wrkr.backend import Backend

__all__ = ["GROUP", "backend_class", "backend_from_url", "redact"]

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
