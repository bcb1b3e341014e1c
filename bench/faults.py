"""The fault harness: kill -9 workers, cut connections, overload the CPU; count what is lost.

`python -m bench.faults --url postgresql://postgres@127.0.0.1:5432/test` (or `make
faults`) starts worker processes on the URL, publishes events with unique tids, and
while they are handled applies one fault at a time:

- ``kill``: SIGKILL a random worker every second and start a new one;
- ``drop``: cut every connection to the server (PostgreSQL: pg_terminate_backend);
- ``overload``: run Debian's `stress --cpu 2` beside the workers.

Every worker appends `start <tid> <time>` before and `done <tid> <time>` after its
handler's work, unbuffered, so a SIGKILL loses nothing it wrote. At the end it prints,
per fault: events published, handled (distinct tids), **lost** (never done), handled
more than once (at-least-once allows it), and for kills how long a killed worker's
item took to be done by another worker (the recovery time, about one lease).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

QUEUE, EVENT = "faults.work", "faults.job"
WORK = (0.005, 0.05)  # seconds a handler works, uniformly


# -- the worker process ---------------------------------------------------------------


async def work(url: str, log: Path, lease: str) -> None:
    """Handle events until SIGTERM, logging each start and finish unbuffered."""
    from wrkr import Event, Wrkr

    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    async def handler(event: Event) -> None:
        os.write(fd, f"start {event.tid} {time.time():.6f}\n".encode())
        await asyncio.sleep(random.uniform(*WORK))
        os.write(fd, f"done {event.tid} {time.time():.6f}\n".encode())

    app = Wrkr.from_url(url, lease=lease)
    async with app:
        await app.subscribe(QUEUE, EVENT, handler, concurrency=4)
        await app.run()


# -- the controller -----------------------------------------------------------------------


class Workers:
    """The worker processes of one run, each logging to its own file."""

    def __init__(self, url: str, folder: Path, lease: str) -> None:
        self.url, self.folder, self.lease = url, folder, lease
        self.running: list[subprocess.Popen[bytes]] = []
        self.started = 0
        self.kills: list[tuple[Path, float]] = []  # (log of the killed worker, when)
        self.logs: dict[int, Path] = {}

    def start(self) -> None:
        log = self.folder / f"worker-{self.started}.log"
        self.started += 1
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.faults", "--worker", str(log), "--url", self.url,
             "--lease", self.lease], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.logs[process.pid] = log
        self.running.append(process)

    def kill_one(self) -> None:
        victim = self.running.pop(random.randrange(len(self.running)))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.kills.append((self.logs[victim.pid], time.time()))
        self.start()

    def stop(self) -> None:
        for process in self.running:
            process.send_signal(signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def read_logs(folder: Path) -> dict[Path, list[tuple[str, str, float]]]:
    """Return each worker log's (what, tid, time) lines."""
    logs = {}
    for log in folder.glob("worker-*.log"):
        lines = []
        for line in log.read_text().splitlines():
            what, tid, at = line.split()
            lines.append((what, tid, float(at)))
        logs[log] = lines
    return logs


def recovery_times(folder: Path, kills: list[tuple[Path, float]]) -> list[float]:
    """For each item a killed worker started and never finished: kill to done elsewhere."""
    logs = read_logs(folder)
    done_at: dict[str, float] = {}
    for lines in logs.values():
        for what, tid, at in lines:
            if what == "done":
                done_at[tid] = min(at, done_at.get(tid, at))
    times = []
    for log, killed_at in kills:
        started = {tid for what, tid, _ in logs.get(log, []) if what == "start"}
        finished = {tid for what, tid, _ in logs.get(log, []) if what == "done"}
        for tid in started - finished:
            if tid in done_at:
                times.append(done_at[tid] - killed_at)
    return times


async def publish(url: str, count: int) -> None:
    from wrkr import Wrkr

    async with Wrkr.from_url(url) as app:
        await app.subscribe(QUEUE, EVENT, lambda event: None)
        events = [{"name": EVENT, "tid": f"t{i}"} for i in range(count)]
        for first in range(0, count, 100):
            await app.publish(events[first:first + 100])
            await asyncio.sleep(0.1)  # spread over the run, so faults hit mid-work


async def pending(url: str) -> int | str:
    """Items left in the queue ("-" where the backend cannot count them)."""
    from wrkr import NotSupported, Wrkr

    async with Wrkr.from_url(url) as app:
        try:
            counts = await app.counts()
        except NotSupported:
            return "-"
        return sum(counts.get(QUEUE, {}).values())


def drop_connections(url: str) -> None:
    """Cut every other connection to the server (PostgreSQL only)."""
    import psycopg

    with psycopg.connect(url.split("?")[0], autocommit=True) as connection:
        connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE pid <> pg_backend_pid() AND datname = current_database()")


def run_fault(url: str, fault: str, count: int, lease: str) -> dict[str, object]:
    """Run one fault scenario; return its figures."""
    folder = Path(tempfile.mkdtemp(prefix=f"wrkr-faults-{fault}-"))
    workers = Workers(url, folder, lease)
    for _ in range(3):
        workers.start()
    stress = None
    if fault == "overload":
        if shutil.which("stress") is None:
            raise SystemExit("overload needs Debian's stress (apt-get install stress)")
        stress = subprocess.Popen(["stress", "--cpu", "2"], stdout=subprocess.DEVNULL)
    begun = time.time()
    publisher = subprocess.Popen([sys.executable, "-c",
                                  "import asyncio, sys; from bench.faults import publish; "
                                  f"asyncio.run(publish({url!r}, {count}))"])
    faults: dict[str, Callable[[], None]] = {
        "kill": workers.kill_one, "drop": lambda: drop_connections(url)}
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(1.0)
        if fault in faults and publisher.poll() is None:
            faults[fault]()
        handled = {tid for lines in read_logs(folder).values()
                   for what, tid, _ in lines if what == "done"}
        if publisher.poll() is not None and len(handled) >= count:
            break
    took = time.time() - begun
    workers.stop()
    if stress is not None:
        stress.terminate()
        stress.wait()
    lines = [line for log in read_logs(folder).values() for line in log]
    done = [tid for what, tid, _ in lines if what == "done"]
    recovery = sorted(recovery_times(folder, workers.kills))
    left = asyncio.run(pending(url))
    shutil.rmtree(folder)
    return {
        "fault": fault, "published": count, "handled": len(set(done)),
        "lost": count - len(set(done)), "twice": len(done) - len(set(done)),
        "kills": len(workers.kills), "left in queue": left, "seconds": round(took, 1),
        "recovery p50 s": round(recovery[len(recovery) // 2], 2) if recovery else "-",
        "recovery max s": round(recovery[-1], 2) if recovery else "-",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.faults")
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--fault", action="append", choices=["kill", "drop", "overload"])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--lease", default="2 seconds")
    parser.add_argument("--worker", metavar="LOG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        asyncio.run(work(args.url, Path(args.worker), args.lease))
        return
    faults = args.fault or (["kill", "drop", "overload"] if args.url.startswith("postgres")
                            else ["kill", "overload"])
    rows = [run_fault(args.url, fault, args.count, args.lease) for fault in faults]
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[key]) for key in header))


if __name__ == "__main__":
    main()
