"""`/healthz` (the process answers) and `/readyz` (the app can do its work), and `/metrics`.

Ready means: the app has started, every subscription its handlers declare is stored in
the backend, and the backend answered within `READY_TIMEOUT` seconds. Otherwise 503,
with the reason as the problem's detail.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wrkr._app import Wrkr
from wrkr._errors import NotStarted, WrkrError
from wrkr._urls import scrub
from wrkr.web._metrics import metrics_for
from wrkr.web._problems import problem

__all__ = ["READY_TIMEOUT", "Health", "is_started", "require_started"]

READY_TIMEOUT = 2.0
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def is_started(app: Wrkr) -> bool:
    """Tell whether the app is started."""
    return app.started


def require_started(app: Wrkr, what: str) -> None:
    """Raise `NotStarted` (answered 503) unless the app is started."""
    if not is_started(app):
        raise NotStarted(f"cannot {what}: the app is not started")


class Health:
    """The endpoints a probe or a scraper calls."""

    def __init__(self, app: Wrkr) -> None:
        self.app = app

    def routes(self) -> list[Route]:
        """Return `/healthz`, `/readyz` and `/metrics`."""
        return [Route("/healthz", self.healthz, methods=["GET"]),
                Route("/readyz", self.readyz, methods=["GET"]),
                Route("/metrics", self.metrics, methods=["GET"])]

    async def healthz(self, request: Request) -> Response:
        """The process is alive and answering."""
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """The app has started, its subscriptions are stored and the backend answers."""
        reason = await self.not_ready()
        if reason is not None:
            return problem(503, reason)
        return JSONResponse({"status": "ready"})

    async def not_ready(self) -> str | None:
        """Return why the app is not ready, or None when it is."""
        if not is_started(self.app):
            return "the app is not started"
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                stored = set(await self.app.subscriptions())
        except TimeoutError:
            return f"the backend did not answer within {READY_TIMEOUT:g} s"
        except WrkrError as exc:
            return f"the backend does not answer: {self._scrubbed(exc)}"
        missing = sorted({(queue, route.pattern) for queue, routes in self.app.routes().items()
                          for route in routes} - stored)
        if missing:
            queue, pattern = missing[0]
            return f"{len(missing)} subscription(s) not stored, e.g. {queue!r} <- {pattern!r}"
        return None

    async def metrics(self, request: Request) -> Response:
        """Prometheus text: this process's counters and the backend's item counts."""
        if not is_started(self.app):
            return problem(503, "the app is not started")
        body = await metrics_for(self.app).scrape()
        return Response(body, media_type=PROMETHEUS_TEXT)

    def _scrubbed(self, error: Exception) -> str:
        return scrub(str(error), self.app.url) if self.app.url else str(error)
