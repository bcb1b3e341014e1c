"""SQLite: wrkr beside a raw sqlite3 claim-and-delete loop and huey's SQLite storage.

Run: ``python -m bench sqlite`` (huey from the ``bench`` extra). Every contender works on
a fresh file in a temporary folder, in WAL mode, with the same 200-byte payloads. End to
end means: the worker runs, N events are published (wrkr: batches of 100; huey: one
`enqueue` each, its only way), and the clock stops when the last one was handled.

- memory: the same wrkr app on the memory backend, to tell the core's share of the time
  from the store's.
- raw: one thread inserts in batches of 100, then claims and deletes batches of 100,
  each in one BEGIN IMMEDIATE transaction: the least any SQLite queue can do.
- huey: `SqliteHuey`, its storage driven by a bare dequeue-execute loop (no consumer
  sleeps), the most favourable way to run it.
- lateness: 1,000 events published with ``when="1 second"`` in the worker's own process
  (woken at once), handler start minus due time.
- two processes: two worker processes, started and listening first, handle what a third
  process publishes to one file (it watches the counts), against one worker process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import best_times, load, percentile, ratio, table
from wrkr import Event, Wrkr
from wrkr_sqlite import SQLiteBackend

N = int(os.environ.get("WRKR_BENCH_SQLITE_N", "5000"))
BATCH = 100
PAYLOAD = {"text": "x" * 180}
CONCURRENCY = 100


@contextlib.contextmanager
def fresh_file() -> Iterator[Path]:
    """Yield the path of a database file in a new temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="wrkr-bench-sqlite-") as folder:
        yield Path(folder) / "bench.db"


def url(path: Path, **options: str) -> str:
    query = "&".join(f"{key}={value}" for key, value in options.items())
    return f"sqlite:///{path}" + (f"?{query}" if query else "")


async def wrkr_rate(path: Path, count: int, **options: str) -> float:
    """Return the seconds wrkr-sqlite takes end to end for `count` items."""
    done, handled = asyncio.Event(), [0]

    async def handle(event: Event) -> None:
        handled[0] += 1
        if handled[0] == count:
            done.set()

    async with Wrkr(SQLiteBackend(url(path, **options))) as app:
        await app.subscribe("bench.q", "bench.item", handle, concurrency=CONCURRENCY)
        await app.listen()
        start = time.perf_counter()
        for first in range(0, count, BATCH):
            await app.publish([{"name": "bench.item", "tid": str(n), "payload": PAYLOAD}
                               for n in range(first, min(first + BATCH, count))])
        await asyncio.wait_for(done.wait(), timeout=300)
        return time.perf_counter() - start


def run_wrkr(count: int, **options: str) -> float:
    with fresh_file() as path:
        return asyncio.run(wrkr_rate(path, count, **options))


async def memory_rate(count: int) -> float:
    """Return the seconds the memory backend takes for the same work: the core's own cost."""
    done, handled = asyncio.Event(), [0]

    async def handle(event: Event) -> None:
        handled[0] += 1
        if handled[0] == count:
            done.set()

    async with Wrkr() as app:
        await app.subscribe("bench.q", "bench.item", handle, concurrency=CONCURRENCY)
        await app.listen()
        start = time.perf_counter()
        for first in range(0, count, BATCH):
            await app.publish([{"name": "bench.item", "tid": str(n), "payload": PAYLOAD}
                               for n in range(first, min(first + BATCH, count))])
        await asyncio.wait_for(done.wait(), timeout=300)
        return time.perf_counter() - start


def run_raw(count: int) -> float:
    """Return the seconds a bare insert-then-claim+delete loop takes for `count` items."""
    with fresh_file() as path, contextlib.closing(
            sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE items (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
        start = time.perf_counter()
        for _ in range(0, count, BATCH):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO items (payload) VALUES (?)", [(b"x" * 200,)] * BATCH)
            conn.execute("COMMIT")
        while True:
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute("DELETE FROM items WHERE seq IN (SELECT seq FROM items "
                                "ORDER BY seq LIMIT 100) RETURNING payload").fetchall()
            conn.execute("COMMIT")
            if not rows:
                break
        return time.perf_counter() - start


def run_huey(count: int) -> float:
    """Return the seconds huey's SQLite storage takes for `count` tasks, enqueued then run."""
    from huey import SqliteHuey

    with fresh_file() as path:
        huey = SqliteHuey(filename=str(path), journal_mode="wal")
        handled = [0]

        @huey.task()
        def handle(text: str) -> None:
            handled[0] += 1

        start = time.perf_counter()
        for _ in range(count):
            handle("x" * 180)
        while (task := huey.dequeue()) is not None:
            huey.execute(task)
        seconds = time.perf_counter() - start
        assert handled[0] == count, handled
        huey.storage.close()
        return seconds


async def lateness(count: int = 1000) -> tuple[float, float]:
    """Return p50 and p99 lateness (ms) of `count` events published 1 s ahead."""
    late: list[float] = []
    done = asyncio.Event()

    async def handle(event: Event) -> None:
        assert isinstance(event.when, datetime)
        late.append((time.time() - event.when.timestamp()) * 1000)
        if len(late) == count:
            done.set()

    with fresh_file() as path:
        async with Wrkr(SQLiteBackend(url(path))) as app:
            await app.subscribe("late.q", "late.item", handle, concurrency=CONCURRENCY)
            await app.listen()
            for first in range(0, count, BATCH):
                await app.publish([{"name": "late.item", "tid": str(n), "when": "1 second"}
                                   for n in range(first, first + BATCH)])
            await asyncio.wait_for(done.wait(), timeout=120)
    return percentile(late, 50), percentile(late, 99)


DRAIN = """
import asyncio, sys
from wrkr import Wrkr
from wrkr_sqlite import SQLiteBackend

async def main(path):
    async with Wrkr(SQLiteBackend(f"sqlite:///{path}")) as app:
        await app.subscribe("bench.q", "bench.item", lambda event: None, concurrency=100)
        await app.listen()
        print("ready", flush=True)
        await asyncio.Event().wait()

asyncio.run(main(sys.argv[1]))
"""


async def publish_and_wait(path: Path, count: int) -> float:
    """Publish `count` events in batches; return the seconds until none is left."""
    async with Wrkr(SQLiteBackend(url(path))) as app:
        start = time.perf_counter()
        for first in range(0, count, BATCH):
            await app.publish([{"name": "bench.item", "tid": str(n), "payload": PAYLOAD}
                               for n in range(first, min(first + BATCH, count))])
        # other processes do the work: nothing here can be awaited but their counts
        while sum((await app.counts()).get("bench.q", {}).values()):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return time.perf_counter() - start


def drain_with(processes: int, count: int) -> float:
    """Return the seconds until `processes` worker processes have handled `count` events
    published by this one (the workers are started and listening first)."""
    with fresh_file() as path:
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": root}
        workers = [subprocess.Popen([sys.executable, "-c", DRAIN, str(path)], env=env,
                                    stdout=subprocess.PIPE, text=True)
                   for _ in range(processes)]
        try:
            for worker in workers:
                assert worker.stdout is not None
                if worker.stdout.readline().strip() != "ready":
                    raise RuntimeError("a bench worker did not start")
            return asyncio.run(publish_and_wait(path, count))
        finally:
            for worker in workers:
                worker.kill()
                worker.wait()


def main() -> None:
    """Print the end-to-end table (best of 3, in turns), lateness and the two-process run."""
    seconds = best_times({
        "raw sqlite3 claim+delete (BEGIN IMMEDIATE, synchronous=FULL)": lambda: run_raw(N),
        "wrkr-sqlite, fast_settle=false (every commit synchronous=FULL)":
            lambda: run_wrkr(N, fast_settle="false"),
        "wrkr-sqlite (default: claims and acks synchronous=NORMAL)": lambda: run_wrkr(N),
        "huey SqliteHuey, bare dequeue/execute loop": lambda: run_huey(N),
        "wrkr on the memory backend (no file: the core's own cost)":
            lambda: asyncio.run(memory_rate(N)),
    }, repeat=3)
    ours = N / seconds["wrkr-sqlite (default: claims and acks synchronous=NORMAL)"]
    rows = [(label, f"{N / s:,.0f}/s", ratio(ours, N / s)) for label, s in seconds.items()]
    print(f"end to end, {N} items of 200 bytes, best of 3 in turns, {load()}:")
    print(table(("contender", "items/s", "wrkr-sqlite (default) is"), rows))
    p50, p99 = asyncio.run(lateness())
    print(f"lateness of 1,000 events delayed 1 s, one process: p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms")
    drains = best_times({1: lambda: drain_with(1, N), 2: lambda: drain_with(2, N)}, repeat=2)
    print(f"{N} events published by a third process, handled by worker processes on one "
          f"file: 1 process {N / drains[1]:,.0f}/s, 2 processes {N / drains[2]:,.0f}/s "
          f"({ratio(drains[1], drains[2])} of one)")


if __name__ == "__main__":
    main()
