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

from wrkr._errors import InvalidConfig, UnknownBackend
from wrkr._urls import redact
from wrkr.backend import Backend

__all__ = ["GROUP", "backend_class", "backend_from_url", "redact"]

GROUP = "wrkr.backends"

# The extra of wrkr's own pyproject.toml that installs each bundled backend's driver.
EXTRAS = {
    "amqp": "rabbitmq", "amqps": "rabbitmq",
    "mqtt": "mqtt", "mqtts": "mqtt",
    "mongodb": "mongodb", "mongodb+srv": "mongodb",
    "postgresql": "postgres", "postgres": "postgres",
}


def backend_class(url: str) -> type[Backend]:
    """Return the backend class registered for the scheme of `url`.

    Raises:
        UnknownBackend: the URL has no scheme, or no installed backend handles it.
        InvalidConfig: the backend is registered but its driver is not installed; the
            message names the `pip install` that adds it.
    """
    scheme = urlsplit(url).scheme if "://" in url else ""
    found = entry_points(group=GROUP, name=scheme) if scheme else ()
    if not found:
        known = ", ".join(sorted({ep.name + "://" for ep in entry_points(group=GROUP)}))
        raise UnknownBackend(f"no wrkr backend for {redact(url)!r}; installed schemes: {known}")
    cls = _load(next(iter(found)).load, scheme)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise UnknownBackend(f"entry point {scheme!r} in {GROUP!r} is not a Backend: {cls!r}")
    return cls


def _load(load: Any, scheme: str) -> object:
    """Load a backend class; a missing driver becomes the `pip install` that adds it."""
    try:
        return load()
    except ImportError as exc:
        extra = EXTRAS.get(scheme)
        if extra is None:
            raise InvalidConfig(f"the backend for {scheme}:// cannot be imported: {exc}; "
                                "install the package that provides it") from exc
        raise InvalidConfig(f"{scheme}:// needs the {extra!r} extra, which is not installed: "
                            f'pip install "wrkr[{extra}]"') from exc


def backend_from_url(url: str, **options: Any) -> Backend:
    """Build the backend for `url` with backend-specific `options`."""
    return backend_class(url).from_url(url, **options)
