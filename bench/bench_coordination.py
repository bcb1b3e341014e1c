"""Coordination: claim throughput with `exclusive=True`, and achieved rate against `rate`.

    python -m bench.bench_coordination [memory|postgres|sqlite|mongodb]

(sqlite: a fresh file in a temporary directory; mongodb: the secantusdb wire server
started for the run, as the test suite does, unless WRKR_BENCH_MONGODB_URL names one.)

Exclusive: 5,000 items over 1,000 distinct tids, a no-op handler, concurrency 50, beside
the same queue without `exclusive` (a ratio, same run, alternating). Rate: a queue with
plenty of due items and `rate` 30/s and 1,000/s; the starts counted over the run against
the rate (the first window's burst of N left out: it is allowed at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from wrkr import Event, Wrkr
from wrkr.backend import QueueOptions

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def new_app(kind: str, schema: str) -> Wrkr:
    """Return an app on a fresh memory store or the benchmark's storage of `kind`."""
    if kind == "memory":
        return Wrkr()
    if kind in ("sqlite", "mongodb"):
        return Wrkr.from_url(schema)  # the URL made by `storage`
    return Wrkr.from_url(f"{PG_URL}?schema={schema}")


@contextlib.contextmanager
def storage(kind: str) -> Iterator[str]:
    """Yield where the run's apps keep their items: a schema, a file URL, a database URL."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/bench.db"
    elif kind == "mongodb" and os.environ.get("WRKR_BENCH_MONGODB_URL"):
        yield f"{os.environ['WRKR_BENCH_MONGODB_URL']}/wrkr_bench_{secrets.token_hex(3)}"
    elif kind == "mongodb":
        from tests.backends._mongo_servers import secantus_process

        with tempfile.TemporaryDirectory() as folder, \
                secantus_process(Path(folder) / "secantusd.log") as url:
            yield f"{url}/wrkr_bench"
    else:
        yield f"wrkr_bench_{secrets.token_hex(3)}"


async def drain(make: Callable[[], Wrkr], exclusive: bool, items: int = 5000,
                tids: int = 1000) -> float:
    """Return items per second through a queue, exclusive or not."""
    app, done = make(), asyncio.Event()
    handled = 0

    async def handle(event: Event) -> None:
        nonlocal handled
        handled += 1
        if handled == items:
            done.set()

    queue = f"bench.{secrets.token_hex(4)}"
    async with app:
        await app.subscribe(queue, queue, handle, concurrency=50, exclusive=exclusive)
        for start in range(0, items, 1000):
            await app.publish([{"name": queue, "tid": f"t{n % tids}"}
                               for n in range(start, min(items, start + 1000))])
        began = time.perf_counter()
        await app.listen()
        await done.wait()
        return items / (time.perf_counter() - began)


async def achieved(make: Callable[[], Wrkr], rate: int, seconds: float) -> float:
    """Return the starts per second a queue rated `rate`/s reaches, after its burst."""
    app, starts = make(), []

    async def handle(event: Event) -> None:
        starts.append(time.perf_counter())

    queue = f"bench.{secrets.token_hex(4)}"
    async with app:
        await app.subscribe(queue, queue, handle, concurrency=50, rate=f"{rate}/s")
        await app.publish([{"name": queue} for _ in range(int(rate * (seconds + 2)))])
        await app.listen()
        await asyncio.sleep(seconds + 1)
    first = starts[0]
    later = [at for at in starts if first + 1.0 <= at < first + 1.0 + seconds]
    return len(later) / seconds


async def main(kind: str) -> None:
    """Print the figures for one backend."""
    with storage(kind) as where:
        await figures(kind, where)


async def figures(kind: str, schema: str) -> None:
    """Print the figures for one backend on `schema` (a schema or a URL)."""
    make = lambda: new_app(kind, schema)  # noqa: E731
    # secantusdb (a wire server in Python, ~50-100 items/s, each query O(items queued))
    # cannot drain 30,000 items in a sitting: fewer, once, and no 1,000/s it cannot reach
    slow = kind == "mongodb" and not os.environ.get("WRKR_BENCH_MONGODB_URL")
    items, rounds, rates = (2000, 1, (30,)) if slow else (5000, 3, (30, 1000))
    plain, exclusive = [], []
    for _ in range(rounds):
        plain.append(await drain(make, False, items))
        exclusive.append(await drain(make, True, items))
    best_plain, best_exclusive = max(plain), max(exclusive)
    print(f"{kind}: claim throughput, {items:,} items over 1,000 tids, best of {rounds}: "
          f"plain {best_plain:,.0f}/s, exclusive {best_exclusive:,.0f}/s, "
          f"ratio {best_exclusive / best_plain:.2f}")
    for rate in rates:
        got = await achieved(make, rate, 3.0)
        print(f"{kind}: rate {rate}/s achieved {got:,.1f}/s ({got / rate:.1%})")
    if kind == "sqlite":
        await index_cost(schema)
    if kind == "postgres":
        import psycopg

        await postgres_index_cost(schema)
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def index_cost(url: str) -> None:
    """Print what the coordination indexes cost a plain queue on SQLite (a ratio).

    The same plain drain on two fresh files, one of which also has an exclusive queue
    (so it has the two partial indexes on (queue, tid) that exclusive claims seek),
    alternating, best of 7.
    """
    indexed, bare = url.replace("bench.db", "indexed.db"), url.replace("bench.db", "bare.db")
    for each in (indexed, bare):  # created and migrated
        async with Wrkr.from_url(each) as app:
            if each == indexed:
                await app.backend.configure("bench.other", QueueOptions(exclusive=True))
    with_indexes, without = [], []
    for _ in range(7):  # a drain takes a quarter of a second: noisy on a shared machine
        without.append(await drain(lambda: Wrkr.from_url(bare), False))
        with_indexes.append(await drain(lambda: Wrkr.from_url(indexed), False))
    print(f"sqlite: plain queue, file with an exclusive queue {max(with_indexes):,.0f}/s, "
          f"without {max(without):,.0f}/s, ratio {max(with_indexes) / max(without):.2f}")


async def postgres_index_cost(schema: str, rounds: int = 5) -> None:
    """Print what coordination costs a plain queue on PostgreSQL (a ratio).

    Plain claims run the statement they ran before coordination; what a plain queue
    pays is the two partial indexes on (queue, tid) that every item with a tid enters.
    The same plain drain on two schemas, the second with those indexes dropped, in
    turns, best of `rounds`.
    """
    import psycopg

    bare = f"{schema}_bare"
    async with Wrkr.from_url(f"{PG_URL}?schema={bare}"):
        pass  # created and migrated
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        for index in ("items_tid_processing", "items_tid_pending"):
            conn.execute(f'DROP INDEX "{bare}".{index}')
    with_indexes, without = [], []
    for _ in range(rounds):
        without.append(await drain(lambda: new_app("postgres", bare), False))
        with_indexes.append(await drain(lambda: new_app("postgres", schema), False))
    print(f"postgres: plain queue, coordination indexes {max(with_indexes):,.0f}/s, "
          f"dropped {max(without):,.0f}/s, ratio {max(with_indexes) / max(without):.2f}")
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{bare}" CASCADE')


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "memory"))
