"""The Tasker worker, rebuilt on wrkr: a request is a flow of steps of parallel jobs.

Tasker broke a request into steps processed in order, each of jobs processed in
parallel, and moved requests on with three cron jobs polling MySQL every 1-15 minutes.
Here a request is a wrkr flow (the request table's role): step 1 asks services 1 and 2
at once, step 2 asks service 3 with what they answered (the request's `extras`), and the
next step starts the moment the last job of the previous one is acked. A job's result is
its handler's return value; a service answering 503 raises a retry error (the job runs
again, each attempt kept in its error history); one answering 422 fails the request for
good (`Fail`: no further step runs). A request is Queuing, Inprogress, then Completed or
Failed (`request_status`), and its end is published as `tasker.request.completed` or
`tasker.request.failed`, which this worker logs (other services may subscribe too).

    python -m examples.tasker services          the three fake services on 127.0.0.1
    python -m examples.tasker                   the worker, and its HTTP side on PORT
    python -m examples.tasker submit ada pro    start a request, wait, print its status

Configuration (environment): PORT (8080), SERVICE1_URL, SERVICE2_URL, SERVICE3_URL
(http://127.0.0.1:8101, 8102, 8103), WRK_ENABLED (true: consume requests; false: only
serve), WRKR_URL (memory://), FLAKY_RATE (0.3, the fake service 2's share of 503s).

The worker's HTTP side on 127.0.0.1:PORT is `wrkr.web`'s (needs ``wrkr[web]``): Tasker's
`GET /heartbeat` (200 while the process runs) beside `wrkr.web.probes(app)`'s `GET /metrics`
(Prometheus: what this worker handled, and the items in the backend), `/healthz`, `/readyz`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

import wrkr.web
from examples._http import call, serve
from wrkr import Event, Fail, Flow, Retry, Wrkr

PORT = int(os.environ.get("PORT", "8080"))
SERVICE1_URL = os.environ.get("SERVICE1_URL", "http://127.0.0.1:8101")
SERVICE2_URL = os.environ.get("SERVICE2_URL", "http://127.0.0.1:8102")
SERVICE3_URL = os.environ.get("SERVICE3_URL", "http://127.0.0.1:8103")
WRK_ENABLED = os.environ.get("WRK_ENABLED", "true").lower() in ("1", "true", "yes")
FLAKY_RATE = float(os.environ.get("FLAKY_RATE", "0.3"))

REQUEST = "tasker.request"
STEPS = [
    [{"name": "tasker.profile.fetch"}, {"name": "tasker.quota.fetch"}],  # in parallel
    [{"name": "tasker.account.provision"}],  # once both are done, with their results
]
STATUS = {"queued": "Queuing", "running": "Inprogress", "completed": "Completed",
          "failed": "Failed", "cancelled": "Failed"}

logger = logging.getLogger("tasker")
app = Wrkr.from_url(os.environ.get("WRKR_URL", "memory://"), name="tasker",
                    retry=Retry(attempts=5, backoff=("1 second", "5 seconds", "30 seconds")))


class RetryableError(Exception):
    """A service could not answer now (503): the job is tried again later."""


async def ask(url: str, body: dict[str, Any]) -> Any:
    """Call a service; raise `RetryableError` on 503 and `Fail` on any other refusal."""
    status, answer = await call(url, body)
    if status == 503:
        raise RetryableError(f"{url} answered 503: {answer}")
    if status != 200:
        raise Fail(f"{url} answered {status}: {answer}")
    return answer


def _params(event: Event) -> dict[str, Any]:
    assert event.flow is not None, "a Tasker job runs inside a request's flow"
    return {"request": event.tid, "params": event.flow.payload["params"]}


@app.on("tasker.profile.fetch", queue="tasker.service1")
async def fetch_profile(event: Event) -> Any:
    """Step 1: the user's profile, from service 1."""
    return await ask(f"{SERVICE1_URL}/profile", _params(event))


@app.on("tasker.quota.fetch", queue="tasker.service2")
async def fetch_quota(event: Event) -> Any:
    """Step 1, beside the profile: the quota, from service 2 (which fails now and then)."""
    return await ask(f"{SERVICE2_URL}/quota", _params(event))


@app.on("tasker.account.provision", queue="tasker.service3")
async def provision(event: Event) -> Any:
    """Step 2: provision the account with what step 1 found (the request's extras)."""
    assert event.flow is not None
    return await ask(f"{SERVICE3_URL}/provision", {**_params(event), "extras": event.flow.results})


FINISHED: dict[str, str] = {}  # request id -> its final status, as the end events said
WAITING: dict[str, asyncio.Future[str]] = {}  # request id -> told its final status


@app.on("tasker.request.completed", queue="tasker.requests")
@app.on("tasker.request.failed", queue="tasker.requests")
async def request_ended(event: Event) -> None:
    """Log a request's end (pub-sub: no service polls for it)."""
    status = FINISHED[event.payload["flow"]] = STATUS[event.payload["state"]]
    waiting = WAITING.pop(event.payload["flow"], None)
    if waiting is not None and not waiting.done():
        waiting.set_result(status)
    logger.info("request %s: %s %s", event.payload["flow"], STATUS[event.payload["state"]],
                event.payload["error"] or event.payload["results"])


async def submit(user: str, plan: str, *, request_id: str | None = None) -> str:
    """Start a request for `user` on `plan`; return its id (the flow's)."""
    tid = request_id or str(uuid.uuid4())
    return await app.start_flow(REQUEST, tid=tid, payload={"params": {"user": user,
                                                                      "plan": plan}},
                                steps=STEPS)


def request_status(flow: Flow) -> str:
    """Return Tasker's name for a request's state: Queuing, Inprogress, Completed, Failed."""
    return STATUS[flow.state]


# -- GET /heartbeat and GET /metrics, through wrkr.web ---------------------------------------


def http_app() -> Starlette:
    """Return the worker's HTTP side: `/heartbeat`, and wrkr.web's `/metrics` and probes."""

    async def heartbeat(request: Request) -> Response:
        return JSONResponse({"status": "ok", "worker": WRK_ENABLED})

    return Starlette(routes=[Route("/heartbeat", heartbeat, methods=["GET"]),
                             Mount("/", app=wrkr.web.probes(app))])


class _Server(uvicorn.Server):
    """uvicorn leaving SIGINT and SIGTERM to `app.run()`, which stops gracefully on them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def http_server(port: int = PORT) -> AsyncIterator[int]:
    """Serve `http_app()` on 127.0.0.1:`port` until the block ends; yield the port.

    The socket listens before the block starts (port 0 picks a free one), so a request
    made at once waits in its backlog instead of being refused.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    server = _Server(uvicorn.Config(http_app(), lifespan="off", log_level="warning",
                                    access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        await serving
        sock.close()


# -- the three fake downstream services -------------------------------------------------------


@dataclass
class Call:
    """One call a fake service received: which, for which request, when it ran."""

    service: str
    request: str
    started: float  # time.monotonic()
    ended: float = 0.0


@dataclass
class FakeServices:
    """Services 1, 2 and 3 on 127.0.0.1: 2 answers 503 at `flaky_rate` (and to its first
    `fail_first` calls); 3 answers 422, for good, to a plan it does not know."""

    flaky_rate: float = FLAKY_RATE
    fail_first: int = 0
    plans: tuple[str, ...] = ("free", "pro")
    latency: float = 0.02
    calls: list[Call] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    async def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """Answer one call (each takes `latency` seconds)."""
        record = Call(path.strip("/"), str(body.get("request")), time.monotonic())
        self.calls.append(record)
        await asyncio.sleep(self.latency)
        record.ended = time.monotonic()
        params = body["params"]
        if path == "/profile":
            return 200, {"user": params["user"], "name": params["user"].title()}
        if path == "/quota":
            if self.fail_first > 0 or self.rng.random() < self.flaky_rate:
                self.fail_first -= 1
                return 503, {"error": "busy, try again"}
            return 200, {"quota": 100 if params["plan"] == "pro" else 10}
        if params["plan"] not in self.plans:
            return 422, {"error": f"unknown plan {params['plan']!r}"}
        extras = body["extras"]
        return 200, {"account": f"{extras['tasker.profile.fetch']['user']}-acct",
                     "quota": extras["tasker.quota.fetch"]["quota"]}

    async def start(self, *ports: int) -> list[asyncio.Server]:
        """Serve the three services on `ports` (0: free ones), all with this one route."""
        return [await serve(self.route, port) for port in ports]


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


async def main(argv: list[str]) -> None:
    """Run the command line (see the module docstring)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if argv[:1] == ["services"]:
        await FakeServices().start(*(_port(url) for url in (SERVICE1_URL, SERVICE2_URL,
                                                            SERVICE3_URL)))
        await asyncio.Event().wait()
    elif argv[:1] == ["submit"]:
        async with app:
            flow_id = await submit(argv[1], argv[2])
            if WRK_ENABLED:  # handle it here, and hear its end (no polling)
                ended = WAITING[flow_id] = asyncio.get_running_loop().create_future()
                await app.listen()
                await ended
            flow = await app.flow(flow_id)
            print(flow_id, request_status(flow), flow.error or flow.results)
    else:
        await app.start()  # the queues are subscribed: /heartbeat answers from now on
        async with http_server():
            if WRK_ENABLED:
                await app.run()  # until SIGINT / SIGTERM, then a graceful stop
            else:
                await _signalled()
                await app.stop()


async def _signalled() -> None:
    """Wait for SIGINT or SIGTERM."""
    stop, loop = asyncio.Event(), asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
