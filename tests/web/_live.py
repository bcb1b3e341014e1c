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
from wrkr import Fail, Retry, Wrkr
from wrkr.backend import Backend
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


def demo_app(url: str = "memory://", fixed: set[str] | None = None,
             backend: Backend | None = None, **options: Any) -> Wrkr:
    """An app with two queues; `test.web.mail` fails an event whose payload says so.

    `{"fail": why}` raises `Fail`, `{"crash": why}` a RuntimeError (one attempt, so it
    fails with a traceback), unless the event's tid is in `fixed`. With `backend`, `url`
    is not used.
    """
    app = Wrkr(backend, **options) if backend is not None else Wrkr.from_url(url, **options)
    repaired = set() if fixed is None else fixed

    @app.on("user.*", queue="test.web.mail", retry=Retry(attempts=1))
    async def mail(event: Any) -> None:
        if event.tid in repaired:
            return
        if event.payload.get("fail"):
            raise Fail(f"cannot mail {event.tid}: {event.payload['fail']}")
        if event.payload.get("crash"):
            raise RuntimeError(f"mail server said {event.payload['crash']}")

    @app.on("report.due", queue="test.web.reports")
    async def report(event: Any) -> None:
        await asyncio.sleep(0)

    return app


def family_app(url: str = "memory://", **options: Any) -> Wrkr:
    """An app whose handlers publish (a lineage tree) and run flow jobs.

    `order.placed` publishes `order.paid` and `order.packed`; `order.paid` publishes
    `receipt.sent`. Flow jobs: `job.fetch` returns its tid, `job.check` fails the flow
    (`Fail`) when the flow's payload has `"fail"`, `job.combine` returns the names of
    the results it was given.
    """
    app = Wrkr.from_url(url, **options)

    @app.on("order.placed", queue="test.web.orders")
    async def placed(event: Any) -> None:
        await app.publish([{"name": "order.paid", "tid": event.tid},
                           {"name": "order.packed", "tid": event.tid}])

    @app.on("order.paid", queue="test.web.payments")
    async def paid(event: Any) -> None:
        await app.publish({"name": "receipt.sent", "tid": event.tid})

    @app.on("order.packed", queue="test.web.notes")
    @app.on("receipt.sent", queue="test.web.notes")
    async def noted(event: Any) -> None:
        await asyncio.sleep(0)

    @app.on("job.fetch", queue="test.web.jobs")
    async def fetch(event: Any) -> Any:
        return {"fetched": event.tid}

    @app.on("job.check", queue="test.web.jobs", retry=Retry(attempts=1))
    async def check(event: Any) -> Any:
        if event.flow.payload.get("fail"):
            raise Fail(f"check refused: {event.flow.payload['fail']}")
        return "checked"

    @app.on("job.combine", queue="test.web.jobs")
    async def combine(event: Any) -> Any:
        return {"combined": sorted(event.flow.results)}

    return app


FLOW_STEPS = [[{"name": "job.fetch"}, {"name": "job.check"}], [{"name": "job.combine"}]]


@contextmanager
def live_server(app: Wrkr, *, token: str | None = None, prefix: str = "",
                started: bool = True, listen: bool = True, worker: Wrkr | None = None,
                **options: Any) -> Iterator[Live]:
    """Serve `app` (mounted under `prefix` if given) until the block ends.

    `started=False` leaves the app stopped (as before a lifespan starts it); `listen=False`
    starts it without consuming; `worker`, another app, is started and listens beside it
    (a worker process of its own, in a real deployment). `options` go to `asgi()`.
    """
    ready: concurrent.futures.Future[Live] = concurrent.futures.Future()
    stopping: list[asyncio.Event] = []

    async def main() -> None:
        sock = bind("127.0.0.1", 0)
        inner = wrkr.web.asgi(app, token=token, **options)
        outer = Starlette(routes=[Mount(prefix, app=inner)]) if prefix else inner
        server = HTTPServer(outer, sock)
        serving = asyncio.create_task(server.serve())
        stopping.append(asyncio.Event())
        try:
            if started:
                await app.start()
                if listen:
                    await app.listen()
            if worker is not None:
                await worker.start()
                await worker.listen()
            ready.set_result(Live(f"http://127.0.0.1:{server.port}{prefix}", app,
                                  asyncio.get_running_loop()))
            await stopping[0].wait()
        finally:
            if worker is not None:
                await worker.stop()
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
    live = ready.result(START_TIMEOUT)
    try:
        yield live
    finally:
        live.loop.call_soon_threadsafe(stopping[0].set)
        thread.join(START_TIMEOUT)
