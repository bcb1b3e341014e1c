"""MongoDB: wrkr-mongodb beside a raw PyMongo claim loop, end to end, on the same server.

Run: ``python -m bench mongodb`` (or ``python bench/bench_mongodb.py``). The server is
``WRKR_BENCH_MONGODB_URL`` (or ``WRKR_TEST_MONGODB_URL``) when set, else a secantusdb
wire server started for the run (``secantusd-py``, in-memory storage; a pure-Python
server, so the absolute rates mean little there and the ratios are what to read).

Each contender drains N items published beforehand into a fresh database: the clock
runs from the start of consuming until the last item was handled and deleted.
Baseline: one task looping ``find_one_and_update`` (claim the oldest due item under a
lease, on the same kind of index, hinted as wrkr hints it: secantusdb's planner scans
without) then ``delete_one``, two round trips per item.
wrkr: `Wrkr.listen()` with a counting handler, at concurrency 1 (one claim per item)
and 10 (batch claims of up to 10). Best of `REPEAT`, taking turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import load, per_second, ratio, table
from wrkr import Event, Wrkr
from wrkr_mongodb import MongoDBBackend

N = int(os.environ.get("WRKR_BENCH_MONGODB_N", "2000"))
REPEAT = 3
PAYLOAD = {"text": "x" * 180}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Client = AsyncMongoClient[dict[str, Any]]


@contextlib.contextmanager
def wire_server() -> Any:
    """Start a secantusdb wire server; yield its URL (no database)."""
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "secantusd.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [str(Path(sys.executable).with_name("secantusd-py")), "--port", "0",
                 "--storage-path", ":memory:"], stdout=sink, stderr=subprocess.STDOUT)
        try:
            yield f"mongodb://127.0.0.1:{_port(log, process)}"
        finally:
            process.terminate()
            process.wait(timeout=30)


def _port(log: Path, process: subprocess.Popen[bytes]) -> int:
    for _ in range(600):
        found = re.search(r"listening on [^\s:]+:(\d+)", log.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"secantusd-py did not start: {log.read_text(errors='replace')}")


@contextlib.asynccontextmanager
async def fresh_database(server: str, name: str) -> AsyncIterator[Client]:
    """Yield a client whose database `name` starts empty and is dropped afterwards."""
    client: Client = AsyncMongoClient(server, tz_aware=True)
    await client.drop_database(name)
    try:
        yield client
    finally:
        await client.drop_database(name)
        await client.close()


async def raw_loop(server: str, count: int) -> float:
    """Return items/second of a raw claim-then-delete loop over `count` items."""
    async with fresh_database(server, "bench_raw") as client:
        items = client["bench_raw"]["items"]
        await items.create_index([("queue", ASCENDING), ("state", ASCENDING),
                                  ("due", ASCENDING), ("seq", ASCENDING)], name="claim")
        now = datetime.now(UTC)
        await items.insert_many([{"queue": "q", "state": "queued", "due": now, "seq": i,
                                  "lease": EPOCH, "payload": b"x" * 200}
                                 for i in range(count)])
        start = time.perf_counter()
        for _ in range(count):
            now = datetime.now(UTC)
            item = await items.find_one_and_update(
                {"queue": "q", "state": "queued", "due": {"$lte": now}, "lease": {"$lte": now}},
                {"$set": {"lease": now + timedelta(minutes=5)}, "$inc": {"attempts": 1}},
                sort=[("due", ASCENDING), ("seq", ASCENDING)], hint="claim",
                return_document=ReturnDocument.AFTER)
            assert item is not None
            await items.delete_one({"_id": item["_id"]})
        return count / (time.perf_counter() - start)


async def wrkr_drain(server: str, count: int, concurrency: int) -> float:
    """Return items/second end to end through wrkr-mongodb over `count` items."""
    async with fresh_database(server, "bench_wrkr") as _:
        done, handled = asyncio.Event(), [0]

        async def handle(event: Event) -> None:
            handled[0] += 1
            if handled[0] == count:
                done.set()

        async with Wrkr(MongoDBBackend(f"{server}/bench_wrkr")) as app:
            await app.subscribe("bench.q", "bench.item", handle, concurrency=concurrency)
            for first in range(0, count, 100):
                await app.publish([{"name": "bench.item", "payload": PAYLOAD}
                                   for _ in range(min(100, count - first))])
            start = time.perf_counter()
            await app.listen()
            await asyncio.wait_for(done.wait(), timeout=600)
            return count / (time.perf_counter() - start)


async def best_rates(runs: dict[str, Callable[[], Awaitable[float]]]) -> dict[str, float]:
    """Run each contender `REPEAT` times in turns; return its best rate."""
    best = dict.fromkeys(runs, 0.0)
    for _ in range(REPEAT):
        for name, run in runs.items():
            best[name] = max(best[name], await run())
    return best


async def measure(server: str) -> None:
    """Print the table of rates and ratios for `server`."""
    runs: dict[str, Callable[[], Awaitable[float]]] = {
        "raw PyMongo: find_one_and_update + delete_one": lambda: raw_loop(server, N),
        "wrkr-mongodb, concurrency 1": lambda: wrkr_drain(server, N, 1),
        "wrkr-mongodb, concurrency 10 (batch claims)": lambda: wrkr_drain(server, N, 10),
    }
    best = await best_rates(runs)
    raw = best["raw PyMongo: find_one_and_update + delete_one"]
    rows = [(name, f"{N:,}", per_second(rate, 1), ratio(rate, raw))
            for name, rate in best.items()]
    print(f"{N:,} items, best of {REPEAT}, {load()}")
    print(table(["path", "items", "rate", "vs raw"], rows))


def main() -> None:
    """Benchmark on the configured server, or on a wire server started for the run."""
    url = os.environ.get("WRKR_BENCH_MONGODB_URL") or os.environ.get("WRKR_TEST_MONGODB_URL")
    if url:
        print(f"server: {url.rpartition('@')[2]}")
        asyncio.run(measure(url))
        return
    with wire_server() as server:
        print(f"server: secantusdb wire server (secantusd-py) at {server}")
        asyncio.run(measure(server))


if __name__ == "__main__":
    main()
