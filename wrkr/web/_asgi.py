"""`asgi(app)`: the HTTP API, probes, metrics and dashboard of one app, as one ASGI app.

It never starts or stops the wrkr app: whoever mounts it does, in their lifespan
(`async with events:`), and until then the API answers 503.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from wrkr._app import Wrkr
from wrkr._errors import InvalidConfig, WrkrError
from wrkr.web import _dashboard
from wrkr.web._api import DEFAULT_TIMEOUT, ApiV1
from wrkr.web._guard import DEFAULT_MAX_BODY, Guard
from wrkr.web._health import Health
from wrkr.web._metrics import metrics_for
from wrkr.web._openapi import document
from wrkr.web._problems import (
    Problem,
    on_http_exception,
    on_problem,
    on_unexpected,
    problem_from_error,
)

__all__ = ["asgi", "probes"]


def asgi(app: Wrkr, token: str | None = None, *, max_body: int = DEFAULT_MAX_BODY,
         timeout: float = DEFAULT_TIMEOUT, loopback_only: bool = False) -> ASGIApp:
    """Return the ASGI app serving `app`'s API, dashboard, probes and metrics.

    Args:
        app: the wrkr app; started and stopped by the caller, never by this.
        token: when given, every request but the probes and the dashboard's static page
            needs `Authorization: Bearer <token>`.
        max_body: the largest request body accepted, in bytes.
        timeout: the longest an API call waits for the backend before answering 503.
        loopback_only: refuse requests whose `Host` is not loopback (a server on 127.0.0.1
            without a token: against DNS rebinding).
    """
    _check(app, token, max_body)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise InvalidConfig(f"invalid timeout {timeout!r}: expected seconds > 0")
    metrics_for(app)  # count from now on, not from the first scrape
    spec = document(token=token is not None)

    async def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    routes = [*Health(app).routes(), *ApiV1(app, timeout).routes(), *_dashboard.routes(),
              Route("/openapi.json", openapi, methods=["GET"])]
    return _starlette(app, routes, Guard.options(token, max_body, loopback_only))


def probes(app: Wrkr, token: str | None = None, *, loopback_only: bool = False) -> ASGIApp:
    """Return an ASGI app with `/healthz`, `/readyz` and `/metrics` only (a worker's)."""
    _check(app, token, DEFAULT_MAX_BODY)
    metrics_for(app)
    return _starlette(app, Health(app).routes(), Guard.options(token, 0, loopback_only))


def _starlette(app: Wrkr, routes: list[Route], guard: dict[str, Any]) -> Starlette:
    async def on_wrkr_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WrkrError)
        return problem_from_error(exc, app.url)

    return Starlette(
        routes=routes,
        middleware=[Middleware(Guard, **guard)],
        exception_handlers={WrkrError: on_wrkr_error, Problem: on_problem,
                            HTTPException: on_http_exception, Exception: on_unexpected})


def _check(app: Wrkr, token: str | None, max_body: int) -> None:
    if not isinstance(app, Wrkr):
        raise InvalidConfig(f"wrkr.web.asgi() needs a wrkr.Wrkr app, not {type(app).__name__}")
    if token is not None and (not isinstance(token, str) or len(token) < 8
                              or not token.isprintable() or " " in token):
        raise InvalidConfig("invalid token: expected a str of at least 8 printable characters "
                            "without spaces")
    if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 0:
        raise InvalidConfig(f"invalid max_body {max_body!r}: expected an int >= 0")
