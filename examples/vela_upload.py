"""Vela's upload worker on wrkr: one shop at a time, Etsy's 30 requests per second.

An upload task (tid = shop id) creates the shop's missing sections, then uploads its
listings in batches of 100 in parallel; each listing is a PUT of its basic fields then a
POST of its variations, then its sync status is noted (Vela's own database: here the
per-shop countdown `LEFT`, readable while the task runs). A failed API call is tried
again at once (up to `CALL_TRIES`); a task that still fails is rescheduled at 10 s,
30 min, then 2 h (`Retry`). Every API call goes through `app.limiter("etsy", "30/s",
margin=ARRIVAL_MARGIN)`, shared by every worker process, and the queue is `exclusive`:
two tasks of one shop never run at once, in one process or across many (what Vela's
`get_task()` did).

`FakeEtsy` stands in for the API: it fails a share of calls and records every request
(when it arrived, which shop, which task), in process or over HTTP on 127.0.0.1.

Etsy counts requests as they arrive; the limiter counts grants, when the backend makes
them. A request arrives after its grant by the take's way back and the worker's event
loop, a lag that varies (on a loaded 2-core machine: p50 1 ms, p99 11 ms, up to 71 ms
on PostgreSQL), so 30 grants a second arrived as 31 in one second. The margin makes
every window 150 ms longer than Etsy's second: at most 30 grants in any 1.15 s, so at
most 30 arrivals in any second while the lag varies by less than 150 ms (the price:
26 calls a second at most, not 30).

Run it:
    python -m examples.vela_upload                 # memory, a ManualClock: the 30/s limit
                                                   # and every retry run in virtual time
    WRKR_URL=postgresql://postgres@127.0.0.1/test python -m examples.vela_upload
    python -m examples.vela_upload worker --etsy http://127.0.0.1:8123   # a worker process
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from wrkr import Event, Retry, Wrkr
from wrkr.backend import Clock, SystemClock

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python names it from 3.14
ARRIVAL_MARGIN = "0.15 seconds"  # the spread of grant-to-arrival lag the limit allows for
QUEUE = "vela.uploads"
EVENT = "vela.upload.requested"
BATCH = 100
CALL_TRIES = 5
LEFT: dict[str, int] = {}  # listings left per shop, while its task runs


# -- the fake Etsy API ------------------------------------------------------------------


@dataclass
class Request:
    """One request the API received."""

    at: float  # when it arrived, seconds since the epoch (the API's clock, or the kernel's)
    shop: str
    task: str
    path: str
    granted: float  # when the client's rate limit granted the call (its clock)


def most_per_window(times: list[float], seconds: float) -> int:
    """Return the most of the sorted `times` that fall in any window of `seconds`."""
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= seconds:
            start += 1
        most = max(most, end - start + 1)
    return most


@dataclass
class FakeEtsy:
    """Counts requests per second and per shop, and fails `failure_rate` of them."""

    failure_rate: float = 0.0
    clock: Clock = field(default_factory=SystemClock)
    down_until: float = 0.0  # every call fails before this time (an outage)
    seed: int = 7
    requests: list[Request] = field(default_factory=list)
    sections: dict[str, set[str]] = field(default_factory=dict)
    listings: dict[str, set[str]] = field(default_factory=dict)  # shop -> with variations
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def handle(self, method: str, path: str, task: str, granted: float | None = None,
               arrived: float | None = None) -> int:
        """Serve one call that `arrived` (now by default); its status (503: a failure)."""
        shop = path.split("/")[2]
        at = self.clock.now().timestamp() if arrived is None else arrived
        self.requests.append(Request(at, shop, task, path, at if granted is None else granted))
        if at < self.down_until or self._random.random() < self.failure_rate:
            return 503
        parts = path.strip("/").split("/")  # shops/{shop}/sections|listings/{id}[/variations]
        if parts[2] == "sections" and method == "POST":
            self.sections.setdefault(shop, set()).add(parts[3])
        elif parts[2] == "listings" and parts[-1] == "variations":
            self.listings.setdefault(shop, set()).add(parts[3])
        self.changed.set()
        return 200

    def uploaded(self, shop: str) -> int:
        """Return how many of `shop`'s listings have their variations."""
        return len(self.listings.get(shop, ()))

    def most_per_window(self, seconds: float = 1.0, *, granted: bool = False) -> int:
        """Return the most requests received (or `granted`) in any window of `seconds`."""
        return most_per_window(
            sorted(request.granted if granted else request.at for request in self.requests),
            seconds)

    def overlapping_tasks(self) -> list[tuple[str, str, str]]:
        """Return (shop, task, task) for tasks of one shop whose requests interleaved."""
        spans: dict[tuple[str, str], list[float]] = {}
        for request in self.requests:
            span = spans.setdefault((request.shop, request.task), [request.at, request.at])
            span[1] = request.at
        found = []
        by_shop: dict[str, list[tuple[float, float, str]]] = {}
        for (shop, task), (first, last) in spans.items():
            by_shop.setdefault(shop, []).append((first, last, task))
        for shop, tasks in by_shop.items():
            tasks.sort()
            for (_, last, task), (first, _, other) in itertools.pairwise(tasks):
                if first < last:
                    found.append((shop, task, other))
        return found

    async def serve(self, port: int = 0) -> ArrivalServer:
        """Serve the API over HTTP on 127.0.0.1 (`port` 0: any free one)."""
        return await ArrivalServer.start(self, port)


class ArrivalServer:
    """HTTP for `FakeEtsy`, timing each request by when its bytes reached the server.

    Etsy counts requests as they arrive, so does this server: by the kernel's receive
    time stamp of the request's first bytes (`SO_TIMESTAMPNS`, inherited by accepted
    sockets), not by when its own event loop got round to reading them, which on a
    loaded machine comes in bursts and would make a steady stream look crowded.
    """

    def __init__(self, api: FakeEtsy, listener: socket.socket) -> None:
        self.api, self.listener = api, listener
        self.port = listener.getsockname()[1]
        self._accepting = asyncio.create_task(self._accept())
        self._serving: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(cls, api: FakeEtsy, port: int = 0) -> ArrivalServer:
        """Listen on 127.0.0.1:`port` and serve `api` until `close()`."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(512)
        listener.setblocking(False)
        return cls(api, listener)

    def close(self) -> None:
        """Stop accepting and serving."""
        self._accepting.cancel()
        for task in self._serving:
            task.cancel()
        self.listener.close()

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(self.listener)
            task = asyncio.create_task(self._serve_one(conn))
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)

    async def _serve_one(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        with conn, contextlib.suppress(ConnectionError, ValueError):
            conn.setblocking(False)
            request, arrived = await _read_head(conn)
            head = request.decode().split("\r\n")
            method, path, _ = head[0].split(" ")
            headers = dict(line.split(": ", 1) for line in head[1:] if line)
            status = self.api.handle(method, path, headers.get("X-Task", "?"),
                                     float(headers["X-Granted"]), arrived)
            await loop.sock_sendall(conn, f"HTTP/1.1 {status} -\r\n"
                                          "Content-Length: 0\r\n\r\n".encode())


async def _read_head(conn: socket.socket) -> tuple[bytes, float]:
    """Read a request head; return it and the kernel's time stamp of its first bytes."""
    loop, data, arrived = asyncio.get_running_loop(), b"", None
    while b"\r\n\r\n" not in data:
        readable = loop.create_future()
        loop.add_reader(conn, readable.set_result, None)
        try:
            await readable
        finally:
            loop.remove_reader(conn)
        chunk, ancillary, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(16))
        if not chunk:
            raise ConnectionError("closed before the request's head")
        for level, kind, stamp in ancillary:
            if arrived is None and (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS):
                seconds, nanoseconds = struct.unpack("qq", stamp[:16])
                arrived = seconds + nanoseconds / 1e9
        data += chunk
    return data, time.time() if arrived is None else arrived


Slot = Callable[[], Any]  # awaits a slot of the rate limit
Transport = Callable[[str, str, str, Slot], Any]  # (method, path, task, slot) -> status


def in_process(api: FakeEtsy) -> Transport:
    """Call `api` directly."""
    async def call(method: str, path: str, task: str, slot: Slot) -> int:
        await slot()
        return api.handle(method, path, task)
    return call


def over_http(base: str) -> Transport:
    """Call the API served at `base` ("http://127.0.0.1:8123").

    The slot is taken once connected, just before the request is written: the API
    counts arrivals, so the time between the two must be as short as can be.
    """
    host, port = base.removeprefix("http://").split(":")

    async def call(method: str, path: str, task: str, slot: Slot) -> int:
        reader, writer = await asyncio.open_connection(host, int(port))
        await slot()
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nX-Task: {task}\r\n"
                     f"X-Granted: {time.time()}\r\nContent-Length: 0\r\n\r\n".encode())
        status = int((await reader.readline()).split()[1])
        writer.close()
        return status
    return call


# -- the worker ---------------------------------------------------------------------------


class EtsyDown(Exception):
    """An API call failed `CALL_TRIES` times: the task is retried later."""


def build_app(url: str, clock: Clock | None = None) -> Wrkr:
    """Build the app; with a ManualClock, leases long enough for virtual time.

    Leases are renewed by real time, while a test's virtual time may run much faster.
    """
    if clock is None:
        return Wrkr.from_url(url, name="vela", lease="10 seconds")
    return Wrkr.from_url(url, name="vela", lease="1 day", clock=clock)


@dataclass
class Uploader:
    """Uploads shops to Etsy through `transport`, within `app`'s "etsy" limit."""

    app: Wrkr
    transport: Transport
    rate: str = "30/s"
    margin: str = ARRIVAL_MARGIN

    def __post_init__(self) -> None:
        self.etsy = self.app.limiter("etsy", self.rate, margin=self.margin)
        self.app.on(EVENT, queue=QUEUE, concurrency=10, exclusive=True,
                    retry=Retry(attempts=4, backoff=("10 seconds", "30 minutes", "2 hours")),
                    timeout="1 hour")(self.upload)

    async def call(self, method: str, path: str, task: str) -> None:
        """Make one API call within the limit, tried again at once when it fails."""
        for _ in range(CALL_TRIES):
            if await self.transport(method, path, task, self.etsy.acquire) == 200:
                return
        raise EtsyDown(f"{method} {path} failed {CALL_TRIES} times")

    async def upload(self, event: Event) -> None:
        """Create the shop's missing sections, then upload its listings in batches."""
        shop, task = str(event.tid), f"{event.id}:{event.attempts}"
        for section in event.payload["sections"]:
            await self.call("POST", f"/shops/{shop}/sections/{section}", task)
        listings = list(event.payload["listings"])
        LEFT[shop] = len(listings)
        for start in range(0, len(listings), BATCH):
            batch = listings[start:start + BATCH]
            async with asyncio.TaskGroup() as group:  # one failure cancels the batch
                for listing in batch:
                    group.create_task(self.upload_listing(shop, listing, task))
        LEFT.pop(shop, None)

    async def upload_listing(self, shop: str, listing: str, task: str) -> None:
        """PUT the basic fields, POST the variations, note the sync status."""
        await self.call("PUT", f"/shops/{shop}/listings/{listing}", task)
        await self.call("POST", f"/shops/{shop}/listings/{listing}/variations", task)
        LEFT[shop] -= 1  # Vela's sync status: this listing is done


def tasks(shops: int, listings: int, per_shop: int = 2) -> list[dict[str, Any]]:
    """Return upload events: `per_shop` tasks per shop sharing its `listings`."""
    events = []
    for number in range(shops):
        shop, share = f"shop-{number}", -(-listings // per_shop)
        for part in range(per_shop):
            names = [f"l{index}" for index in range(part * share,
                                                    min(listings, (part + 1) * share))]
            events.append({"name": EVENT, "tid": shop,
                           "payload": {"sections": ["new", "sale"], "listings": names}})
    return events


# -- running it -----------------------------------------------------------------------------


async def run_here(url: str, shops: int, listings: int, failure_rate: float,
                   down_for: float = 0.0) -> FakeEtsy:
    """Run everything in this process; on memory the clock is a ManualClock.

    The API is down for the first `down_for` seconds: the tasks' first attempts fail.
    """
    from wrkr_memory import ManualClock

    clock = ManualClock() if url.startswith("memory:") else None
    api = FakeEtsy(failure_rate, clock or SystemClock())
    api.down_until = api.clock.now().timestamp() + down_for
    app = build_app(url, clock)
    Uploader(app, in_process(api))
    async with app:
        await app.publish(tasks(shops, listings))
        await app.listen()
        while await app.items(queue=QUEUE, limit=1):
            if clock is not None:
                clock.advance(0.05)  # virtual time: the limit refills, retries fall due
                await asyncio.sleep(0.001)
            else:
                api.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1):
                        await api.changed.wait()
    return api


async def run_worker(url: str, etsy: str) -> None:
    """Run one worker process against the API at `etsy` until SIGTERM or SIGINT."""
    app = build_app(url)
    Uploader(app, over_http(etsy))
    await app.run()


def main() -> None:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=("demo", "worker"), default="demo")
    parser.add_argument("--etsy", help="the API's base URL (worker mode)")
    parser.add_argument("--shops", type=int, default=3)
    parser.add_argument("--listings", type=int, default=250)
    parser.add_argument("--failure-rate", type=float, default=0.05)
    parser.add_argument("--down-for", type=float, default=5.0,
                        help="seconds the API is down at first (tasks are retried at 10 s)")
    args = parser.parse_args()
    url = os.environ.get("WRKR_URL", "memory://")
    if args.mode == "worker":
        asyncio.run(run_worker(url, args.etsy))
        return
    began = time.monotonic()
    api = asyncio.run(run_here(url, args.shops, args.listings, args.failure_rate,
                               args.down_for))
    print(orjson.dumps({
        "requests": len(api.requests), "most_per_second": api.most_per_window(),
        "uploaded": {shop: len(ids) for shop, ids in sorted(api.listings.items())},
        "overlapping_tasks": api.overlapping_tasks(), "seconds": round(
            time.monotonic() - began, 2),
        "virtual_seconds": round(api.requests[-1].at - api.requests[0].at, 1),
    }).decode())


if __name__ == "__main__":
    main()


__all__ = ["FakeEtsy", "Uploader", "build_app", "tasks"]
