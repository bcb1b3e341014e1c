"""Errors as RFC 9457 problem details: the status a `WrkrError` means, never a traceback.

Every error the API or the dashboard answers is `application/problem+json` with
`type`, `title`, `status` and `detail`; the detail is the `WrkrError` message (which
names the bad value), with the password of the app's URL scrubbed.
"""

from __future__ import annotations

from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from wrkr._errors import (
    BackendUnavailable,
    CallTimedOut,
    ItemNotFound,
    NotStarted,
    NotSupported,
    WrkrError,
)
from wrkr._urls import scrub

__all__ = ["Conflict", "Problem", "problem", "problem_from_error"]

MEDIA_TYPE = "application/problem+json"

# Most specific first: NotSupported is also a NotImplementedError, NotStarted a RuntimeError.
_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (NotSupported, 501),
    (NotStarted, 503),
    (BackendUnavailable, 503),
    (CallTimedOut, 503),
    (ItemNotFound, 404),
    (WrkrError, 400),
)


class Problem(Exception):
    """An answer other than success, raised by an endpoint: a status and what went wrong."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Conflict(Problem):
    """The request is valid but the item is not in a state that allows it (409)."""

    def __init__(self, detail: str) -> None:
        super().__init__(409, detail)


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    """Return a problem-details response with `status` and the human-readable `detail`."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
            "detail": detail}
    return JSONResponse(body, status, headers=headers, media_type=MEDIA_TYPE)


def problem_from_error(error: WrkrError, url: str | None) -> Response:
    """Return the problem a `WrkrError` means (400, 404, 501, 503), its URL password scrubbed."""
    status = next(code for kind, code in _STATUS if isinstance(error, kind))
    detail = scrub(str(error), url) if url else str(error)
    return problem(status, detail)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    """Answer Starlette's own errors (404 for an unknown path, 405) as problems."""
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, str(exc.detail), dict(exc.headers or {}) or None)


async def on_problem(request: Request, exc: Exception) -> Response:
    """Answer a `Problem` raised by an endpoint."""
    assert isinstance(exc, Problem)
    return problem(exc.status, exc.detail)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    """Answer any other exception with a 500 that tells nothing of the server's insides.

    Starlette raises the exception again once this is sent, so the server logs it.
    """
    return problem(500, "internal error: see the server's log")
