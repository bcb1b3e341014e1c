"""The dashboard: one static page, its script and its style, shipped inside the package.

No build step and no CDN: the files in `static/` are served as they are. The page learns
where it is mounted from a `<base href>` set to the request's `root_path`, so it works
mounted under any prefix and behind a proxy that strips one. Its script draws everything
from the API with `textContent` (never markup from data), under a strict content policy.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from wrkr.web._problems import problem

__all__ = ["ASSETS", "routes"]

ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; frame-ancestors 'none'; base-uri 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def routes() -> list[Route]:
    """Return the page at `/` and its assets under `/static/`."""
    return [Route("/", index, methods=["GET"]),
            Route("/static/{name}", asset, methods=["GET"])]


@cache
def _read(name: str) -> str:
    return (resources.files("wrkr.web") / "static" / name).read_text(encoding="utf-8")


async def index(request: Request) -> Response:
    """The page, told its own base URL."""
    base = html.escape(request.scope.get("root_path", "").rstrip("/") + "/", quote=True)
    page = _read("index.html").replace("{{base}}", base)
    return HTMLResponse(page, headers=HEADERS)


async def asset(request: Request) -> Response:
    """One of the known assets; anything else is a 404 (no path reaches the disk)."""
    name = request.path_params["name"]
    if name not in ASSETS:
        return problem(404, f"no asset {name[:100]!r}")
    return Response(_read(name), media_type=ASSETS[name], headers=HEADERS)
