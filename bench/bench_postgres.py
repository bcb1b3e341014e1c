"""PostgreSQL: wrkr beside pgqueuer, procrastinate and a raw SKIP LOCKED loop; lateness.

Run: ``python -m bench postgres`` (or ``python -m bench.bench_postgres``), with the
server of ``WRKR_BENCH_PG`` (default the local ``test`` database) running;
``python -m bench.bench_postgres publish`` runs only the single-publish goals (issue 16). Each
contender works in a schema of its own, dropped afterwards. End to end means: the
worker runs, N events are published in batches of 100, and the clock stops when the
last one was handled. Lateness: 1,000 events published with ``when="1 second"``,
handler start minus due time. Single publishes: raw single-row INSERTs on one
connection, wrkr's serial `publish()` of one event per call, and waves of 50 concurrent
publishers, taking turns five times.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import percentile, ratio, table
from wrkr import Event, Wrkr
from wrkr_postgres import PostgresBackend

URL = os.environ.get("WRKR_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
N = int(os.environ.get("WRKR_BENCH_PG_N", "5000"))
BATCH = 100
PAYLOAD = {"text": "x" * 180}


async def reset(schema: str) -> None:
    """Drop and recreate `schema`."""
    async with await psycopg.AsyncConnection.connect(URL, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.execute(f'CREATE SCHEMA "{schema}"')


async def drop(schema: str) -> None:
    """Drop `schema` and what it holds."""
    async with await psycopg.AsyncConnection.connect(URL, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


CONCURRENCY = 100  # wrkr claims up to `concurrency` per statement, as pgqueuer its batch_size


async def bench_wrkr(count: int, *, fast_settle: bool = False) -> float:
    """Return items/second end to end through wrkr-postgres (concurrency 100).

    With `fast_settle` false every commit is synchronous, as for the other contenders;
    wrkr's default (true) commits claims and acks asynchronously (publish stays durable).
    """
    await drop("bench_wrkr")
    done, handled = asyncio.Event(), [0]

    async def handle(event: Event) -> None:
        handled[0] += 1
        if handled[0] == count:
            done.set()

    async with Wrkr(PostgresBackend(URL, schema="bench_wrkr", fast_settle=fast_settle)) as app:
        await app.subscribe("bench.q", "bench.item", handle, concurrency=CONCURRENCY)
        await app.listen()
        start = time.perf_counter()
        for first in range(0, count, BATCH):
            await app.publish([{"name": "bench.item", "tid": str(n), "payload": PAYLOAD}
                               for n in range(first, min(first + BATCH, count))])
        await asyncio.wait_for(done.wait(), timeout=300)
        seconds = time.perf_counter() - start
    await drop("bench_wrkr")
    return count / seconds


async def bench_lateness(count: int = 1000) -> tuple[float, float]:
    """Return p50 and p99 lateness (ms) of `count` events published 1 s ahead."""
    await drop("bench_late")
    late: list[float] = []
    done = asyncio.Event()

    async def handle(event: Event) -> None:
        assert isinstance(event.when, datetime)
        late.append((time.time() - event.when.timestamp()) * 1000)
        if len(late) == count:
            done.set()

    async with Wrkr(PostgresBackend(URL, schema="bench_late")) as app:
        await app.subscribe("late.q", "late.item", handle, concurrency=CONCURRENCY)
        await app.listen()
        for first in range(0, count, BATCH):
            await app.publish([{"name": "late.item", "tid": str(n), "when": "1 second"}
                               for n in range(first, first + BATCH)])
        await asyncio.wait_for(done.wait(), timeout=120)
    await drop("bench_late")
    return percentile(late, 50), percentile(late, 99)


RAW_CLAIM = """DELETE FROM bench_raw.items WHERE seq IN (
  SELECT seq FROM bench_raw.items ORDER BY seq LIMIT 100 FOR UPDATE SKIP LOCKED)
RETURNING payload"""


async def bench_raw(count: int) -> float:
    """Return items/second for a bare loop: batched insert, then 4 claim+delete workers."""
    await reset("bench_raw")
    async with await psycopg.AsyncConnection.connect(URL, autocommit=True) as conn:
        await conn.execute("CREATE TABLE bench_raw.items "
                           "(seq bigserial PRIMARY KEY, payload bytea NOT NULL)")
        start = time.perf_counter()
        for _ in range(0, count, BATCH):
            await conn.execute("INSERT INTO bench_raw.items (payload) SELECT p FROM "
                               "unnest(%s::bytea[]) p", ([b"x" * 200] * BATCH,))
        await asyncio.gather(*(raw_worker() for _ in range(4)))
        seconds = time.perf_counter() - start
    await drop("bench_raw")
    return count / seconds


async def raw_worker() -> None:
    """Claim and delete batches of 100 until the table is empty."""
    async with await psycopg.AsyncConnection.connect(URL, autocommit=True) as conn:
        while (await (await conn.execute(RAW_CLAIM)).fetchall()):
            pass


async def until(done: asyncio.Event, worker: asyncio.Task[Any]) -> None:
    """Wait (at most 300 s) for `done`; raise at once if the worker task dies first."""
    waiting = asyncio.ensure_future(done.wait())
    await asyncio.wait({waiting, worker}, timeout=300, return_when=asyncio.FIRST_COMPLETED)
    if not done.is_set():
        waiting.cancel()
        raise RuntimeError(f"the worker stopped or timed out: {worker}")


async def bench_pgqueuer(count: int) -> float:
    """Return items/second end to end through pgqueuer (its worker running, asyncpg)."""
    import asyncpg  # type: ignore[import-untyped]
    from pgqueuer import AsyncpgDriver, Queries, QueueManager
    from pgqueuer.domain.settings import db_settings

    os.environ["PGQUEUER_SCHEMA"] = "bench_pgqueuer"
    db_settings.cache_clear()
    await reset("bench_pgqueuer")
    conn = await asyncpg.connect(URL)
    queries = Queries(AsyncpgDriver(conn))
    await queries.install(create_schema=False)
    qm = QueueManager(Queries(AsyncpgDriver(await asyncpg.connect(URL))))
    done, handled = asyncio.Event(), [0]

    @qm.entrypoint("bench")
    async def handle(job: Any) -> None:
        handled[0] += 1
        if handled[0] == count:
            done.set()

    worker = asyncio.create_task(qm.run(batch_size=BATCH))
    start = time.perf_counter()
    for _ in range(0, count, BATCH):
        await queries.enqueue(["bench"] * BATCH, [b"x" * 200] * BATCH, [0] * BATCH)
    await until(done, worker)
    seconds = time.perf_counter() - start
    qm.shutdown.set()
    await asyncio.wait_for(worker, timeout=30)
    await conn.close()
    await drop("bench_pgqueuer")
    return count / seconds


async def bench_procrastinate(count: int) -> float:
    """Return items/second end to end through procrastinate (worker concurrency 50)."""
    import procrastinate

    await reset("bench_procrastinate")
    connector = procrastinate.PsycopgConnector(
        conninfo=URL, kwargs={"options": "-c search_path=bench_procrastinate"})
    app = procrastinate.App(connector=connector)
    done, handled = asyncio.Event(), [0]

    @app.task(name="bench")
    async def handle(text: str) -> None:
        handled[0] += 1
        if handled[0] == count:
            done.set()

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        worker = asyncio.create_task(
            app.run_worker_async(concurrency=50, install_signal_handlers=False))
        start = time.perf_counter()
        for _ in range(0, count, BATCH):
            jobs: list[dict[str, Any]] = [{"text": "x" * 180}] * BATCH
            await handle.batch_defer_async(*jobs)
        await until(done, worker)
        seconds = time.perf_counter() - start
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    await drop("bench_procrastinate")
    return count / seconds


PUBLISH_N = int(os.environ.get("WRKR_BENCH_PG_PUBLISH_N", "1000"))
PUBLISHERS = 50  # concurrent publishers: 50 web requests publishing one event each
RAW_INSERT = "INSERT INTO bench_raw_publish.items (payload) VALUES (%s)"
# The same single-row INSERT into a copy of wrkr's items table, with all its indexes: how
# much of the gap the table's shape explains, before routing, NOTIFY and the client.
ITEMS_INSERT = """INSERT INTO bench_raw_publish.items_like
(id, queue, name, tid, payload, due, created, updated, root)
VALUES (gen_random_uuid(), 'bench.q', 'bench.item', %s, %s, now(), now(), now(), 'root')"""
PAYLOAD_BYTES = b"x" * 200
# A worker elsewhere, LISTENing on wrkr's channel and reading every NOTIFY (the server
# signals it for each publish, as it would in production); a process of its own.
LISTENER = """
import asyncio, sys, psycopg
async def main():
    async with await psycopg.AsyncConnection.connect(sys.argv[1], autocommit=True) as conn:
        await conn.execute('LISTEN "' + sys.argv[2] + '"')
        print("listening", flush=True)
        async for _ in conn.notifies():
            pass
asyncio.run(main())
"""


async def publish_turn(conn: psycopg.AsyncConnection[Any], app: Wrkr,
                       seconds: dict[str, float]) -> None:
    """Run PUBLISHERS events through each path in turn; add the time each took."""
    async def raw() -> None:
        for _ in range(PUBLISHERS):
            await conn.execute(RAW_INSERT, (PAYLOAD_BYTES,))

    async def items() -> None:
        for n in range(PUBLISHERS):
            await conn.execute(ITEMS_INSERT, (str(n), PAYLOAD_BYTES))

    async def serial() -> None:
        for n in range(PUBLISHERS):
            await app.publish({"name": "bench.item", "tid": str(n), "payload": PAYLOAD})

    async def concurrent() -> None:
        await asyncio.gather(*(app.publish({"name": "bench.item", "tid": str(n),
                                            "payload": PAYLOAD})
                               for n in range(PUBLISHERS)))

    for label, run in (("raw", raw), ("items", items), ("serial", serial),
                       ("concurrent", concurrent)):
        start = time.perf_counter()
        await run()
        seconds[label] += time.perf_counter() - start


async def bench_publish(count: int = PUBLISH_N, rounds: int = 5) -> dict[str, list[float]]:
    """Return each path's events/second in each of `rounds` runs of `count` events.

    Within a run the paths take turns every PUBLISHERS events, so a load that comes
    and goes on a shared machine falls on all of them alike. wrkr's app subscribes one
    queue and runs no consumer (a web process publishing); another process LISTENs on
    its channel (a worker); every commit is synchronous on every path.
    """
    await reset("bench_raw_publish")
    await drop("bench_publish")
    rates: dict[str, list[float]] = {"raw": [], "items": [], "serial": [], "concurrent": []}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LISTENER, URL, "wrkr_bench_publish", stdout=subprocess.PIPE)
    assert worker.stdout is not None
    await asyncio.wait_for(worker.stdout.readline(), timeout=30)
    async with (await psycopg.AsyncConnection.connect(URL, autocommit=True) as conn,
                Wrkr(PostgresBackend(URL, schema="bench_publish")) as app):

        async def ignore(event: Event) -> None:
            pass

        await app.subscribe("bench.q", "bench.item", ignore)
        await conn.execute("CREATE TABLE bench_raw_publish.items "
                           "(seq bigserial PRIMARY KEY, payload bytea NOT NULL)")
        await conn.execute("CREATE TABLE bench_raw_publish.items_like "
                           "(LIKE bench_publish.items INCLUDING ALL)")
        await publish_turn(conn, app, dict.fromkeys(rates, 0.0))  # connect, prepare
        for _ in range(rounds):
            await conn.execute("TRUNCATE bench_publish.items, bench_raw_publish.items, "
                               "bench_raw_publish.items_like")
            seconds = dict.fromkeys(rates, 0.0)
            for _ in range(count // PUBLISHERS):
                await publish_turn(conn, app, seconds)
            for label, taken in seconds.items():
                rates[label].append(count // PUBLISHERS * PUBLISHERS / taken)
    worker.kill()
    await worker.wait()
    await drop("bench_publish")
    await drop("bench_raw_publish")
    return rates


def median(values: list[float]) -> float:
    """Return the median of `values`."""
    return percentile(values, 50)


def ratios(upper: list[float], lower: list[float]) -> list[float]:
    """Return `upper / lower` run by run."""
    return [a / b for a, b in zip(upper, lower, strict=True)]


async def main_publish() -> None:
    """Print the single-publish goals of issue 16 as ratios beside their targets."""
    rates = await bench_publish()
    print(f"single publishes, 5 runs of {PUBLISH_N} events of 200 bytes per path, the "
          f"paths taking turns every {PUBLISHERS} events (every commit synchronous):")
    print(table(("path", "per run /s", "median"), [
        (label, " / ".join(f"{rate:,.0f}" for rate in values), f"{median(values):,.0f}/s")
        for label, values in (("raw single-row INSERT, 1 connection", rates["raw"]),
                              ("same, into a copy of wrkr's items table", rates["items"]),
                              ("wrkr publish(), one event per call, serial", rates["serial"]),
                              (f"wrkr, {PUBLISHERS} concurrent publishers, one event each",
                               rates["concurrent"]))]))
    rows = [(goal, " / ".join(f"{x:.2f}x" for x in values), f"{median(values):.2f}x", target)
            for goal, values, target in (
                ("serial publish / raw INSERT", ratios(rates["serial"], rates["raw"]),
                 ">= 0.7x"),
                (f"{PUBLISHERS} concurrent / serial publish",
                 ratios(rates["concurrent"], rates["serial"]), ">= 3x"),
                ("(items-table INSERT / raw INSERT: the table's share)",
                 ratios(rates["items"], rates["raw"]), ""))]
    print(table(("goal", "per run", "median", "target"), rows))


async def main() -> None:
    """Run every contender once, print rates with ratios, then the lateness figures."""
    rates = {"raw SKIP LOCKED claim+delete": await bench_raw(N),
             "wrkr-postgres": await bench_wrkr(N),
             "wrkr-postgres, fast_settle (default)": await bench_wrkr(N, fast_settle=True)}
    for label, run, count in (("pgqueuer", bench_pgqueuer, N),
                              ("procrastinate", bench_procrastinate, N // 5)):
        try:
            rates[label] = await run(count)
        except ImportError as exc:
            print(f"-- {label} skipped: {exc} (pip install -e '.[bench]')")
    ours = rates["wrkr-postgres"]
    rows = [(label, f"{rate:,.0f}/s", ratio(ours, rate)) for label, rate in rates.items()]
    print(f"end to end, {N} items of 200 bytes, published in batches of {BATCH}, every "
          "commit synchronous unless marked:")
    print(table(("contender", "items/s", "wrkr-postgres is"), rows))
    p50, p99 = await bench_lateness()
    print(f"lateness of 1,000 events delayed 1 s: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    await main_publish()


if __name__ == "__main__":
    asyncio.run(main_publish() if sys.argv[1:] == ["publish"] else main())
