"""Workflows: the time from a step's last job finishing to the next step's first job starting.

    python -m bench.bench_flows [memory|postgres|sqlite|mongodb]

A flow of two steps, [[a, b], [c]], run one flow at a time (so nothing queues): the
latency is from the moment the later of a and b returns (its ack, the advance and the
publish of c follow) to the moment c's handler starts (claimed, its flow context read).
Baseline, same run, alternating: a plain event's time from `publish()` to its handler
starting, on the same backend. Tasker's cron needed up to 15 minutes here, Celery's
chord polling up to 1 s; the goal is below 50 ms at p99.

MongoDB runs on `WRKR_BENCH_MONGODB_URL` when set, else on a secantusdb wire server started
for the run (a pure-Python one-node replica set: each change to a flow is a transaction
there, as on a real replica set; read the ratio, not the milliseconds).
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

from bench._common import load, percentile
from wrkr import Event, Wrkr

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
ROUNDS = {"memory": 500, "postgres": 200, "sqlite": 200, "mongodb": 100}


def new_app(kind: str, schema: str, server: str = "") -> Wrkr:
    """Return an app on a fresh memory store, the benchmark's PostgreSQL schema, its
    SQLite file (`schema` names it, in the temporary directory) or its MongoDB database
    on `server`."""
    if kind == "memory":
        return Wrkr()
    if kind == "sqlite":
        return Wrkr.from_url(f"sqlite:///{tempfile.gettempdir()}/{schema}.db")
    if kind == "mongodb":
        return Wrkr.from_url(f"{server}/{schema}")
    return Wrkr.from_url(f"{PG_URL}?schema={schema}")


@contextlib.contextmanager
def mongodb_server() -> Iterator[str]:
    """Yield `WRKR_BENCH_MONGODB_URL`, or the URL of a wire server started for the run."""
    given = os.environ.get("WRKR_BENCH_MONGODB_URL", "")
    if given:
        yield given.rstrip("/")
        return
    from bench.bench_mongodb import wire_server

    with wire_server() as url:
        yield url


def remove_file(schema: str) -> None:
    """Delete the benchmark's SQLite file and its WAL files."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tempfile.gettempdir()}/{schema}.db{suffix}").unlink(missing_ok=True)


async def step_latencies(make: Callable[[], Wrkr], rounds: int) -> list[float]:
    """Return, per flow, seconds from its step 1's last job returning to step 2 starting."""
    app, prefix = make(), f"bench.{secrets.token_hex(4)}"
    ended: list[float] = []
    started: asyncio.Queue[float] = asyncio.Queue()

    async def first_step(event: Event) -> int:
        ended.append(time.perf_counter())  # what follows: the ack, then the advance
        return 1

    async def second_step(event: Event) -> None:
        started.put_nowait(time.perf_counter())

    latencies = []
    async with app:
        await app.subscribe(f"{prefix}.a", f"{prefix}.a", first_step)
        await app.subscribe(f"{prefix}.b", f"{prefix}.b", first_step)
        await app.subscribe(f"{prefix}.c", f"{prefix}.c", second_step)
        await app.listen()
        steps = [[{"name": f"{prefix}.a"}, {"name": f"{prefix}.b"}], [{"name": f"{prefix}.c"}]]
        for _ in range(rounds):
            ended.clear()
            await app.start_flow(f"{prefix}.flow", steps=steps)
            began = await started.get()
            latencies.append(began - max(ended))
    return latencies


async def publish_latencies(make: Callable[[], Wrkr], rounds: int) -> list[float]:
    """Return, per plain event, seconds from `publish()` being called to its handler starting."""
    app, name = make(), f"bench.{secrets.token_hex(4)}"
    started: asyncio.Queue[float] = asyncio.Queue()

    async def handle(event: Event) -> None:
        started.put_nowait(time.perf_counter())

    latencies = []
    async with app:
        await app.subscribe(name, name, handle)
        await app.listen()
        for _ in range(rounds):
            sent = time.perf_counter()
            await app.publish({"name": name})
            latencies.append(await started.get() - sent)
    return latencies


def _ms(values: list[float]) -> str:
    return f"p50 {percentile(values, 50) * 1000:.2f} ms, p99 {percentile(values, 99) * 1000:.2f} ms"


async def main(kind: str = "memory") -> None:
    """Print the figures for one backend (three alternating rounds of each)."""
    if kind != "mongodb":
        await measure(kind)
        return
    with mongodb_server() as server:
        await measure(kind, server)


async def measure(kind: str, server: str = "") -> None:
    """Measure on one backend (`server`: the MongoDB server's URL) and print the figures."""
    schema = f"wrkr_bench_{secrets.token_hex(3)}"
    make = lambda: new_app(kind, schema, server)  # noqa: E731
    rounds = ROUNDS[kind]
    flows: list[float] = []
    plain: list[float] = []
    for _ in range(3):
        flows += await step_latencies(make, rounds)
        plain += await publish_latencies(make, rounds)
    ratio = percentile(flows, 50) / percentile(plain, 50)
    print(f"{kind}: last ack of a step -> next step's first job starting: {_ms(flows)} "
          f"({len(flows)} flows); plain publish -> start: {_ms(plain)}; p50 ratio "
          f"{ratio:.2f} ({load()})")
    if kind == "sqlite":
        remove_file(schema)
    if kind == "mongodb":
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(server)
        await client.drop_database(schema)
        await client.close()
    if kind == "postgres":
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "memory"))
