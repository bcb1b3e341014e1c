"""What every request passes before an endpoint: the token, cross-site checks, body size.

- With a token, every path but `/healthz` and `/readyz` (and the dashboard's static
  page, which holds no data) needs `Authorization: Bearer <token>`, compared in
  constant time (`hmac.compare_digest`).
- Requests that change something (POST, PUT, PATCH, DELETE) coming from another site
  are refused (403), whatever the token: browsers say where a request comes from in
  `Sec-Fetch-Site` and `Origin`, and a page elsewhere must not make the user's browser
  retry or cancel items. Clients that are not browsers (curl, Prometheus) send neither.
- A request body larger than `max_body` bytes is refused (413), by its
  `Content-Length` or, when chunked, as soon as it grows past the limit.
- With `loopback_only` (`wrkr serve` and `--http` without a token), a request whose
  `Host` is not a loopback name is refused (403): a page whose domain an attacker points
  at 127.0.0.1 (DNS rebinding) would otherwise read and act as the same origin.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wrkr.web._problems import problem

__all__ = ["DEFAULT_MAX_BODY", "Guard", "is_loopback"]

DEFAULT_MAX_BODY = 1024 * 1024
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/", "/static/app.js", "/static/style.css"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyTooLarge(Exception):
    """The request body grew past the limit while it was being read."""


class Guard:
    """ASGI middleware: the bearer token, cross-site refusal and the body size limit."""

    def __init__(self, app: ASGIApp, *, token: str | None, max_body: int = DEFAULT_MAX_BODY,
                 open_paths: Iterable[str] = OPEN_PATHS, loopback_only: bool = False) -> None:
        self.app = app
        self.loopback_only = loopback_only
        self.expected = None if token is None else f"Bearer {token}".encode()
        self.max_body = max_body
        self.open_paths = frozenset(open_paths)

    @staticmethod
    def options(token: str | None, max_body: int, loopback_only: bool) -> dict[str, Any]:
        """Return the keyword arguments of a `Guard`, for `Middleware(Guard, **options)`."""
        return {"token": token, "max_body": max_body, "loopback_only": loopback_only}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, detail, extra = refusal
            await problem(status, detail, extra)(scope, receive, send)
            return
        try:
            await self.app(scope, self._limited(receive), send)
        except BodyTooLarge:
            await problem(413, f"request body larger than {self.max_body} bytes")(
                scope, receive, send)

    def _refusal(self, scope: Scope, headers: dict[bytes, bytes]
                 ) -> tuple[int, str, dict[str, str] | None] | None:
        path = _route_path(scope)
        if self.loopback_only and not _loopback_host(headers.get(b"host", b"")):
            return 403, "this server answers only to a loopback Host (127.0.0.1, localhost)", None
        if self.expected is not None and path not in self.open_paths:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                why = "a wrong bearer token" if given else "no bearer token"
                return 401, f"{why}: send 'Authorization: Bearer <token>'", {
                    "WWW-Authenticate": 'Bearer realm="wrkr"'}
        if scope["method"] in UNSAFE_METHODS and _cross_site(headers):
            return 403, "cross-site request refused: send it from the dashboard's own page", None
        length = headers.get(b"content-length", b"0")
        if not length.isdigit():
            return 400, f"invalid Content-Length {length[:40]!r}", None
        if int(length) > self.max_body:
            return 413, f"request body larger than {self.max_body} bytes", None
        return None

    def _limited(self, receive: Receive) -> Receive:
        left = self.max_body

        async def counted() -> Message:
            nonlocal left
            message = await receive()
            left -= len(message.get("body", b""))
            if left < 0:
                raise BodyTooLarge
            return message

        return counted


def is_loopback(host: str) -> bool:
    """Tell whether `host` is a loopback address (127.0.0.0/8, ::1) or `localhost`."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _loopback_host(header: bytes) -> bool:
    """Tell whether a `Host` header (name or address, maybe a port) names loopback."""
    host = urlsplit(f"//{header.decode('latin-1')}").hostname
    return host is not None and is_loopback(host)


def _route_path(scope: Scope) -> str:
    """Return the path below the mount point (Starlette keeps the full path in `path`)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root):] or "/"
    return path


def _cross_site(headers: dict[bytes, bytes]) -> bool:
    """Tell whether a browser says the request comes from a page of another origin."""
    fetch_site = headers.get(b"sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in (b"same-origin", b"none")
    origin = headers.get(b"origin")
    if origin is None:
        return False  # not a browser, or a same-origin GET-like request of an old one
    host = headers.get(b"host", b"").decode("latin-1")
    return origin == b"null" or urlsplit(origin.decode("latin-1")).netloc != host
