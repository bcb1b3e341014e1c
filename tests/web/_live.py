"""A live wrkr.web server on 127.0.0.1 (a random port), run in a thread of its own.

The thread runs its own event loop: the wrkr app (started the way a user's lifespan
would), its workers and uvicorn. Tests talk to it over HTTP only, as a user would, from
the main thread, so that synchronous clients (httpx, schemathesis, Playwright) can be used.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount

import wrkr.web
from wrkr import Fail, Wrkr
from wrkr.web._server import HTTPServer, bind

START_TIMEOUT = 20.0


@dataclass
class Live:
    """A running server: its base URL and the app behind it (for its loop's use only)."""

    url: str
    app: Wrkr
    loop: asyncio.AbstractEventLoop
    handled: list[str] = field(default_factory=list)

    def call(self, make: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run the coroutine `make()` on the server's loop; return its result."""
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(timeout)


def demo_app(url: str = "memory://", **options: Any) -> Wrkr:
    """An app with two queues: `test.web.mail` fails an event whose payload says so."""
    app = Wrkr.from_url(url, **options)

    @app.on("user.*", queue="test.web.mail", retry=None)
    async def mail(event: Any) -> None:
        if event.payload.get("fail"):
            raise Fail(f"cannot mail {event.tid}: {event.payload['fail']}")

    @app.on("report.due", queue="test.web.reports")
    async def report(event: Any) -> None:
        await asyncio.sleep(0)

    return app


@contextmanager
def live_server(app: Wrkr, *, token: str | None = None, prefix: str = "",
                started: bool = True, listen: bool = True) -> Iterator[Live]:
    """Serve `app` (mounted under `prefix` if given) until the block ends."""
    ready: concurrent.futures.Future[Live] = concurrent.futures.Future()
    stop = threading.Event()

    async def main() -> None:
        sock = bind("127.0.0.1", 0)
        inner = wrkr.web.asgi(app, token=token)
        outer = Starlette(routes=[Mount(prefix, app=inner)]) if prefix else inner
        server = HTTPServer(outer, sock)
        serving = asyncio.create_task(server.serve())
        try:
            if started:
                await app.start()
                if listen:
                    await app.listen()
            ready.set_result(Live(f"http://127.0.0.1:{server.port}{prefix}", app,
                                  asyncio.get_running_loop()))
            while not stop.is_set():
                await asyncio.sleep(0.05)
        finally:
            await app.stop()
            server.stop()
            await serving

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    thread = threading.Thread(target=run, name="wrkr-web-live", daemon=True)
    thread.start()
    try:
        yield ready.result(START_TIMEOUT)
    finally:
        stop.set()
        thread.join(START_TIMEOUT)
