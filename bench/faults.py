"""The fault harness: kill, restart, cut, poison and overload; count what is lost.

`python -m bench.faults --backend postgresql` (or `make faults`, every backend) runs
each scenario on real worker and publisher processes (`bench/_faults_roles.py`) and
prints one table per backend:

1. ``kill``: events fanned out to 2 queues, 3 workers at concurrency 8, one of them
   SIGKILLed every ~2 s and replaced. Lost (never handled) must be 0; "twice" is at
   most the items in flight at the kills; recovery = kill → its items handled elsewhere.
2. ``restart``: the server restarted mid-stream, on a private server the harness owns
   (`bench/_faults_servers.py`); publishers retry on `BackendUnavailable`, workers keep
   running. Confirmed publishes lost must be 0; resume = server up → first new claim.
3. ``cut``: the harness's own connections cut by the server every second
   (`pg_terminate_backend` by application_name, `rabbitmqctl close_connection` by
   connection_name; the wire server cannot, so a TCP proxy in front of it resets every
   connection); the same figures.
4. ``publisher``: a publisher SIGKILLed while publishing batches of 100, again and
   again; batches found partly stored must be 0 (every batch is one transaction).
5. ``poison``: malformed items put straight into the table / queue: parked as failed
   with an error saying why, the consumer goes on with the good ones.
6. ``overload``: 100,000 events published as fast as the backend takes them while one
   slowish worker drains (two more drain the rest at the end): peak RSS of worker and
   publisher, nothing dropped.

`--stress` runs `stress --cpu 2` beside it all; `--short` uses the test suite's sizes.
Every loop is bounded in count and time and talks to 127.0.0.1 only. The shared
servers are never restarted; only the harness's own sessions are cut.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench._faults_processes import (
    FOLDERS,
    Processes,
    lines_of,
    peak_rss_kib,
    published,
    wait_until,
)
from bench._faults_roles import EVENT
from bench._faults_servers import (
    SESSION_NAME,
    CuttingProxy,
    Server,
    WireServer,
    cut_postgres_sessions,
    cut_rabbitmq_connections,
    private_server,
)
from wrkr import Wrkr

SHARED = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432/test?schema=wrkr_faults"
                  f"&application_name={SESSION_NAME}",
    "amqp": "amqp://guest:guest@127.0.0.1:5672/?prefix=wrkr_faults"
            f"&client_properties={{'connection_name':'{SESSION_NAME}'}}",
}
NAMES = {"postgresql": "PostgreSQL", "amqp": "RabbitMQ", "mongodb": "MongoDB (wire server)",
         "sqlite": "SQLite"}
SCENARIOS = {"postgresql": [1, 2, 3, 4, 5, 6], "amqp": [1, 2, 3, 4, 5, 6],
             "mongodb": [1, 2, 3, 4, 5, 6], "sqlite": [1, 4, 5, 6]}


@dataclass
class Sizes:
    """How much each scenario does; `short()` is what the test suite runs."""

    kill_events: int = 10_000
    kill_every: float = 2.0
    stream_events: int = 3_000
    cuts: int = 5
    publisher_kills: int = 10
    publisher_cap: int = 1_000_000  # events a killed publisher would publish if not killed
    poison_good: int = 200
    overload_events: int = 100_000
    lease: str = "2 seconds"

    @classmethod
    def short(cls) -> Sizes:
        return cls(kill_events=600, kill_every=1.0, stream_events=600,
                   cuts=2, publisher_kills=4, poison_good=20, overload_events=3_000)

    def scaled(self, kind: str) -> Sizes:
        """The wire server is pure Python and claims in O(items queued): less for it."""
        if kind != "mongodb":
            return self
        return replace(self, kill_events=min(self.kill_events, 1_000),
                       publisher_kills=min(self.publisher_kills, 4),
                       overload_events=min(self.overload_events, 3_000), lease="10 seconds")


@dataclass
class Row:
    """One scenario's figures, as the table prints them."""

    scenario: str
    items: int
    lost: int
    twice: int | str = "-"
    figures: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0

    def cells(self) -> list[str]:
        shown = "; ".join(f"{key} {value}" for key, value in self.figures.items())
        return [self.scenario, f"{self.items:,}", f"**{self.lost}**", str(self.twice), shown,
                f"{self.seconds:.1f}"]


# -- in-process helpers -----------------------------------------------------------------------


async def _subscribe(url: str, queues: list[str]) -> None:
    async with Wrkr.from_url(url) as app:
        for queue in queues:
            await app.subscribe(queue, EVENT, lambda event: None)


async def _forget(url: str, queues: list[str]) -> None:
    """Unsubscribe and purge a scenario's queues, so runs do not pile up (best effort)."""
    from wrkr import WrkrError

    with contextlib.suppress(WrkrError, OSError):
        async with Wrkr.from_url(url) as app:
            for queue in queues:
                await app.unsubscribe(queue, EVENT)
                with contextlib.suppress(WrkrError):
                    await app.purge(queue=queue)


async def _failed(url: str, queues: list[str]) -> set[tuple[str, str]]:
    """The (tid, queue) of every item parked as failed in `queues`."""
    from wrkr import NotSupported, State

    async with Wrkr.from_url(url) as app:
        found: set[tuple[str, str]] = set()
        for queue in queues:
            with contextlib.suppress(NotSupported):
                found |= {(str(event.tid), queue)
                          for event in await app.items(queue=queue, state=State.FAILED)}
        return found


def new_queues(scenario: str, count: int = 1) -> list[str]:
    token = secrets.token_hex(3)
    return [f"faults.{scenario}{token}.{chr(ord('a') + n)}" for n in range(count)]


# -- 1. killed workers --------------------------------------------------------------------------


def killed_workers(url: str, sizes: Sizes) -> Row:
    queues = new_queues("kill", 2)
    asyncio.run(_subscribe(url, queues))
    run = Processes(url, sizes.lease)
    begun = time.time()
    try:
        for _ in range(3):
            run.worker(queues)
        publisher, _ = run.publisher("k", sizes.kill_events, 100, 0.1)  # spread out
        expected = {(f"k{i}", q) for i in range(sizes.kill_events) for q in queues}

        def finished() -> bool:
            if publisher.poll() is None:
                run.kill_worker(queues)
                return False
            return set(run.done()) >= expected

        wait_until(finished, every=sizes.kill_every)
        took = time.time() - begun
        done = run.done()
        recovery = sorted(recovery_times(run))
        parked = asyncio.run(_failed(url, queues)) if publisher.poll() is not None else set()
    finally:
        run.stop()
        asyncio.run(_forget(url, queues))
    # An item held by every one of its attempts' workers when they were killed is parked
    # as failed ("gave up after 5 attempts (worker lost)"): crash-loop protection, on
    # purpose. It is not lost: it is in the store, failed, for `wrkr retry`.
    missing = expected - set(done)
    lost = len(missing - parked)
    held, unexplained = kill_accounting(run)
    figures: dict[str, object] = {"kills": len(run.kills), "handlers running at the kills": held,
                                  "twice with no killed worker among its finishers": unexplained}
    if missing & parked:
        figures["parked failed after 5 lost workers"] = len(missing & parked)
    if recovery:
        figures["kill → handled elsewhere p50 / max"] = (
            f"{recovery[len(recovery) // 2]:.1f} s / {recovery[-1]:.1f} s")
    return Row("1 kill -9 a worker every ~2 s", len(expected), lost, len(done) - len(set(done)),
               figures, took)


def kill_accounting(run: Processes) -> tuple[int, int]:
    """Count the handlers the kills cut short, and the items finished twice no kill explains.

    An item finished twice because of a kill was finished (its handler returned) by a
    worker killed before its ack reached the backend; a duplicate none of whose finishers
    was killed came from something else (a lease running out under load).
    """
    killed = {log for log, _ in run.kills}
    held = 0
    for log in killed:
        lines = list(lines_of(log))
        started = {(tid, q) for what, tid, q, _ in lines if what == "start"}
        held += len(started - {(tid, q) for what, tid, q, _ in lines if what == "done"})
    finishers: dict[tuple[str, str], list[Path]] = {}
    for log in run.folder.glob("worker-*.log"):
        for what, tid, queue, _ in lines_of(log):
            if what == "done":
                finishers.setdefault((tid, queue), []).append(log)
    unexplained = sum(1 for logs in finishers.values()
                      if len(logs) > 1 and not killed.intersection(logs))
    return held, unexplained


def recovery_times(run: Processes) -> list[float]:
    """For each item a kill took back: the seconds from the kill to its finish elsewhere.

    Taken back are the items the killed worker had started and not finished, and those it
    finished whose ack died with it (finished again by another worker after the kill).
    """
    finishes: dict[tuple[str, str], list[tuple[Path, float]]] = {}
    for log in run.folder.glob("worker-*.log"):
        for what, tid, queue, at in lines_of(log):
            if what == "done":
                finishes.setdefault((tid, queue), []).append((log, at))
    times = []
    for log, killed_at in run.kills:
        lines = list(lines_of(log))
        started = {(tid, q) for what, tid, q, _ in lines if what == "start"}
        for key in started:
            later = [at for other, at in finishes.get(key, []) if other != log and at > killed_at]
            if later:
                times.append(min(later) - killed_at)
    return times


# -- 2 and 3. server restart, connections cut ------------------------------------------------


def stream_with_fault(url: str, sizes: Sizes, scenario: str,
                      fault: Callable[[], tuple[float, float] | int]) -> Row:
    """Publish a stream (retrying) to 2 workers while `fault` strikes; count the confirmed."""
    queues = new_queues("stream")
    asyncio.run(_subscribe(url, queues))
    run = Processes(url, sizes.lease)
    begun = time.time()
    outages: list[tuple[float, float]] = []
    cut = 0
    try:
        for _ in range(2):
            run.worker(queues, concurrency=4)
        publisher, log = run.publisher("s", sizes.stream_events, 10, 0.05)
        if scenario.startswith("2"):  # a third of the way through the stream
            third = sizes.stream_events // 30
            wait_until(lambda: len(published(log)[2]) >= third, timeout=60, every=0.05)
            outage = fault()
            assert isinstance(outage, tuple)
            outages.append(outage)
        else:
            for _ in range(sizes.cuts):
                time.sleep(1.0)
                count = fault()
                assert isinstance(count, int)
                cut += count

        def finished() -> bool:
            confirmed = published(log)[0]
            return publisher.poll() is not None and {(tid, queues[0]) for tid in confirmed} <= set(
                run.done())

        wait_until(finished)
        took = time.time() - begun
        done = run.done()
        starts = sorted(at for log_ in run.folder.glob("worker-*.log")
                        for what, _, _, at in lines_of(log_) if what == "start")
    finally:
        run.stop()
    asyncio.run(_forget(url, queues))
    confirmed, counts, times = published(log)
    lost = len({(tid, queues[0]) for tid in confirmed} - set(done))
    figures: dict[str, object] = {}
    for down, up in outages:
        resumed = next((at for at in starts if at > up), None)
        published_again = next((at for at in times if at > up), None)
        figures["restart took"] = f"{up - down:.1f} s"
        figures["consumers resume after"] = f"{resumed - up:.1f} s" if resumed else "never"
        figures["publisher after"] = (f"{published_again - up:.1f} s" if published_again
                                      else "never")
    if cut:
        figures["sessions cut"] = cut
    figures["publish retries"] = counts["retry"]
    figures["other errors"] = counts["error"]
    return Row(scenario, len(confirmed), lost, len(done) - len(set(done)), figures, took)


# -- 4. killed publisher --------------------------------------------------------------------


def killed_publisher(url: str, sizes: Sizes) -> Row:
    queues = new_queues("pub")
    asyncio.run(_subscribe(url, queues))
    run = Processes(url, sizes.lease)
    begun = time.time()
    confirmed: set[str] = set()
    try:
        for kill in range(sizes.publisher_kills):
            publisher, log = run.publisher(f"p{kill}-", sizes.publisher_cap, 100, 0.0)
            # Kill once it is confirming batches, at a random point within a batch's time.
            wait_until(functools.partial(_confirmed_batches, log, 2), timeout=60, every=0.05)
            time.sleep(random.uniform(0.0, 0.2))
            publisher.send_signal(signal.SIGKILL)
            publisher.wait()
            confirmed |= published(log)[0]
        for _ in range(2):
            run.worker(queues, concurrency=16, work_ms="0-0")

        def drained() -> bool:
            return {(tid, queues[0]) for tid in confirmed} <= set(run.done())

        wait_until(drained)
        quiet(run)
        done = run.done()
    finally:
        run.stop()
        asyncio.run(_forget(url, queues))
    stored = Counter(tid.rsplit("-", 1)[0] + f"-{int(tid.rsplit('-', 1)[1]) // 100}"
                     for tid in {tid for tid, _ in done})
    partial = sum(1 for n in stored.values() if n < 100)
    lost = len({(tid, queues[0]) for tid in confirmed} - set(done))
    return Row("4 publisher killed mid-batch (batches of 100)", len(confirmed), lost,
               len(done) - len(set(done)),
               {"kills": sizes.publisher_kills, "batches stored": len(stored),
                "partial batches": partial}, time.time() - begun)


def _confirmed_batches(log: Path, at_least: int) -> bool:
    return len(published(log)[2]) >= at_least


def quiet(run: Processes, seconds: float = 2.0) -> None:
    """Wait (bounded) until the workers have finished nothing new for `seconds`."""
    seen = -1
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        count = len(run.done())
        if count == seen:
            return
        seen = count
        time.sleep(seconds)


# -- 5. poison input -------------------------------------------------------------------------


def poison(url: str, sizes: Sizes) -> Row:
    from bench._faults_poison import inject

    return asyncio.run(_poison(url, sizes, inject))


async def _poison(url: str, sizes: Sizes,
                  inject: Callable[[Wrkr, str, str], Awaitable[int]]) -> Row:
    from wrkr import Event, Fail, State

    [queue] = new_queues("poison")
    handled: set[str] = set()
    begun = time.time()
    async def handle(event: Event) -> None:
        handled.add(str(event.tid))
        if event.tid == "history":  # its failure is appended to the unreadable history
            raise Fail("failed on purpose, after an unreadable error history")

    async with Wrkr.from_url(url, lease=sizes.lease) as app:
        await app.subscribe(queue, EVENT, handle, concurrency=4)  # not listening yet
        await app.publish({"name": EVENT, "tid": "template"})
        poisoned = await inject(app, url, queue)
        await app.publish([{"name": EVENT, "tid": f"good{i}"} for i in range(sizes.poison_good)])
        await app.listen()
        good = {f"good{i}" for i in range(sizes.poison_good)} | {"template", "history"}
        parked = []
        async with asyncio.timeout(60):
            while True:
                parked = await app.items(queue=queue, state=State.FAILED)
                if handled >= good and len(parked) >= poisoned + 1:
                    break
                await asyncio.sleep(0.2)  # polls the store: a parked item has no event
        await app.unsubscribe(queue, EVENT)
        with contextlib.suppress(Exception):
            await app.purge(queue=queue)
    history = [event for event in parked if event.tid == "history"]
    parked = [event for event in parked if event.tid != "history"]
    said = sorted({event.errors[-1].message[:50] for event in parked})
    return Row("5 poison input put straight into the store", len(good), len(good - handled),
               "-", {"malformed parked as failed": f"{len(parked)} / {poisoned}",
                     "error": " / ".join(repr(s) for s in said),
                     "unreadable error history": "handled, then parked" if history
                     else "NOT parked"},
               time.time() - begun)


# -- 6. overload ------------------------------------------------------------------------------


def overload(url: str, sizes: Sizes) -> Row:
    queues = new_queues("load")
    asyncio.run(_subscribe(url, queues))
    run = Processes(url, sizes.lease)
    begun = time.time()
    try:
        slow = run.worker(queues, concurrency=8, work_ms="1-3")
        publisher, log = run.publisher("o", sizes.overload_events, 1000, 0.0)
        worker_peak = 0

        def published_all() -> bool:
            nonlocal worker_peak
            worker_peak = max(worker_peak, peak_rss_kib(slow.pid))
            return publisher.poll() is not None

        wait_until(published_all, every=1.0)
        published_in = time.time() - begun
        backlog = sizes.overload_events - len(set(run.done()))
        worker_peak = max(worker_peak, peak_rss_kib(slow.pid))
        for _ in range(2):
            run.worker(queues, concurrency=16, work_ms="0-0")
        expected = {(f"o{i}", queues[0]) for i in range(sizes.overload_events)}
        wait_until(lambda: set(run.done()) >= expected, every=1.0)
        worker_peak = max(worker_peak, peak_rss_kib(slow.pid))
        done = run.done()
    finally:
        run.stop()
        asyncio.run(_forget(url, queues))
    confirmed, counts, _ = published(log)
    lost = len(expected - set(done))
    return Row("6 overload: one slowish worker (8 x 1-3 ms)", sizes.overload_events, lost,
               len(done) - len(set(done)),
               {"published in": f"{published_in:.1f} s", "backlog then": f"{backlog:,}",
                "peak RSS worker / publisher": f"{worker_peak // 1024} / "
                                               f"{counts['rss'] // 1024} MiB",
                "confirmed": f"{len(confirmed):,}"}, time.time() - begun)


# -- the backends ------------------------------------------------------------------------------


@contextlib.contextmanager
def shared_url(kind: str, url: str | None) -> Iterator[str]:
    """The URL of the scenarios but the restart: the shared servers, a real MongoDB if
    `WRKR_TEST_MONGODB_URL` names one (else a wire server of the run's own), a new SQLite file."""
    if url is not None:
        yield url
    elif kind in SHARED:
        yield SHARED[kind]
    elif kind == "mongodb" and os.environ.get("WRKR_TEST_MONGODB_URL"):
        real = urlsplit(os.environ["WRKR_TEST_MONGODB_URL"])  # a real MongoDB, when named
        yield urlunsplit((real.scheme, real.netloc, "/wrkr_faults", real.query, ""))
    elif kind == "mongodb":
        server = WireServer(port=27218)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()
    else:
        folder = Path(tempfile.mkdtemp(prefix="wrkr-faults-sqlite-"))
        try:
            yield f"sqlite:///{folder / 'faults.db'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def restart_scenario(kind: str, sizes: Sizes, *, any_port: bool = False) -> Row:
    """Scenario 2 on a private server of `kind`, restarted mid-stream."""
    with private_server(kind, any_port=any_port) as server:
        url = _namespaced(kind, server)
        return stream_with_fault(url, sizes, f"2 server restart mid-stream ({_how(kind)})",
                                 server.restart)


def _namespaced(kind: str, server: Server) -> str:
    return {"postgresql": f"{server.url}&schema=wrkr_faults",
            "amqp": f"{server.url}&prefix=wrkr_faults"}.get(kind, server.url)


def _how(kind: str) -> str:
    return {"postgresql": "pg_ctl restart -m fast", "amqp": "rabbitmqctl stop_app; start_app",
            "mongodb": "SIGTERM, started again on its port"}[kind]


def cut_scenario(kind: str, url: str, sizes: Sizes) -> Row:
    if kind == "mongodb":  # the wire server cannot cut a client: a proxy in front does
        parts = urlsplit(url)
        proxy = CuttingProxy(parts.port or 27017)
        try:
            proxied = urlunsplit((parts.scheme, f"127.0.0.1:{proxy.port}", parts.path,
                                  parts.query, ""))
            return stream_with_fault(proxied, sizes, "3 connections reset (by a proxy in "
                                     "front of the server) every 1 s", proxy.cut)
        finally:
            proxy.close()
    if kind == "postgresql":
        return stream_with_fault(url, sizes, "3 own sessions cut (pg_terminate_backend) every 1 s",
                                 lambda: cut_postgres_sessions(url))
    return stream_with_fault(url, sizes, "3 own connections closed (rabbitmqctl "
                                         "close_connection) every 1 s",
                             lambda: cut_rabbitmq_connections(["rabbitmqctl"]))


def run_backend(kind: str, scenarios: list[int], sizes: Sizes, url: str | None = None) -> list[Row]:
    """Run the chosen scenarios on one backend; return their rows."""
    rows = []
    sizes = sizes.scaled(kind)
    with shared_url(kind, url) as base:
        for number in scenarios:
            if number not in SCENARIOS[kind]:
                continue
            if number == 1:
                rows.append(killed_workers(base, sizes))
            elif number == 2:
                rows.append(restart_scenario(kind, sizes))
            elif number == 3:
                rows.append(cut_scenario(kind, base, sizes))
            elif number == 4:
                rows.append(killed_publisher(base, sizes))
            elif number == 5:
                rows.append(poison(base, sizes))
            else:
                rows.append(overload(base, sizes))
            print("  ", " | ".join(rows[-1].cells()), file=sys.stderr, flush=True)
            while FOLDERS:
                shutil.rmtree(FOLDERS.pop(), ignore_errors=True)
    return rows


def table(kind: str, rows: list[Row]) -> str:
    header = ["scenario", "items", "lost", "twice", "figures", "seconds"]
    lines = [f"### {NAMES[kind]}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.faults")
    parser.add_argument("--backend", action="append", choices=list(NAMES))
    parser.add_argument("--scenario", action="append", type=int, choices=range(1, 7))
    parser.add_argument("--url", help="the URL of scenarios 1, 3-6 (default: the local one)")
    parser.add_argument("--short", action="store_true", help="the test suite's small sizes")
    parser.add_argument("--stress", action="store_true",
                        help="run Debian's `stress --cpu 2` beside everything")
    args = parser.parse_args(argv)
    sizes = Sizes.short() if args.short else Sizes()
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    with _stressed(args.stress):
        for kind in args.backend or list(NAMES):
            rows = run_backend(kind, args.scenario or [1, 2, 3, 4, 5, 6], sizes, args.url)
            print(table(kind, rows), "\n", flush=True)


@contextlib.contextmanager
def _stressed(wanted: bool) -> Iterator[None]:
    """Keep both cores busy beside the run, if `wanted`."""
    if not wanted:
        yield
        return
    if shutil.which("stress") is None:
        raise SystemExit("--stress needs Debian's stress (apt-get install stress)")
    stress = subprocess.Popen(["stress", "--cpu", "2"], stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        stress.terminate()
        stress.wait()


if __name__ == "__main__":
    main()
