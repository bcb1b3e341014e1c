"""Compare psycopg 3 and asyncpg on wrkr's PostgreSQL workload (helper of bench_postgres).

The workload is what `wrkr_postgres` does per item: batched inserts through `unnest`,
batched `FOR UPDATE SKIP LOCKED` claims by four concurrent workers, and one fenced
`DELETE` (the ack) per item. Run: ``python bench/_postgres_drivers.py``.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import psycopg
import psycopg_pool

URL = os.environ.get("WRKR_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
ITEMS = 20_000
BATCH = 100
WORKERS = 4
SCHEMA = "wrkr_bench_drivers"

SETUP = f"""
DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
CREATE SCHEMA {SCHEMA};
CREATE TABLE {SCHEMA}.items (seq bigserial PRIMARY KEY, id uuid NOT NULL,
  queue text NOT NULL, payload bytea NOT NULL, due timestamptz NOT NULL,
  state text NOT NULL DEFAULT 'pending', lease uuid, attempts int NOT NULL DEFAULT 0);
CREATE INDEX ON {SCHEMA}.items (queue, due, seq) WHERE state = 'pending';
"""
INSERT = f"""INSERT INTO {SCHEMA}.items (id, queue, payload, due)
SELECT gen_random_uuid(), 'q', p, d FROM unnest(%s::bytea[], %s::timestamptz[]) AS m(p, d)"""
CLAIM = f"""WITH c AS (SELECT seq FROM {SCHEMA}.items WHERE queue = 'q' AND state = 'pending'
  AND due <= %s ORDER BY due, seq LIMIT %s FOR UPDATE SKIP LOCKED)
UPDATE {SCHEMA}.items i SET state = 'processing', lease = %s, attempts = attempts + 1
FROM c WHERE i.seq = c.seq RETURNING i.seq, i.payload"""
ACK = f"DELETE FROM {SCHEMA}.items WHERE seq = %s AND lease = %s"

Run = Callable[[str, tuple[Any, ...]], Awaitable[list[tuple[Any, ...]]]]


def dollar(query: str) -> str:
    """Rewrite psycopg's `%s` placeholders as asyncpg's `$n`."""
    counter = iter(range(1, 100))
    return re.sub("%s", lambda _: f"${next(counter)}", query)


async def workload(run: Run) -> tuple[float, float]:
    """Publish ITEMS in batches, then drain them with WORKERS claimers; return both rates."""
    payloads, now = [b'{"n": 1}' * 25] * BATCH, datetime.now(UTC)
    start = time.perf_counter()
    for _ in range(ITEMS // BATCH):
        await run(INSERT, (payloads, [now] * BATCH))
    publish = ITEMS / (time.perf_counter() - start)
    start = time.perf_counter()
    await asyncio.gather(*(drain(run) for _ in range(WORKERS)))
    return publish, ITEMS / (time.perf_counter() - start)


async def drain(run: Run) -> None:
    """Claim batches of 25 and ack each item on its own until the queue is empty."""
    while True:
        token = uuid.uuid4()
        rows = await run(CLAIM, (datetime.now(UTC), 25, token))
        if not rows:
            return
        for row in rows:
            await run(ACK, (row[0], token))


async def with_psycopg() -> tuple[float, float]:
    """Run the workload through a psycopg AsyncConnectionPool (autocommit)."""
    async with psycopg_pool.AsyncConnectionPool(
        URL, min_size=WORKERS, max_size=WORKERS, kwargs={"autocommit": True}, open=False
    ) as pool:

        async def run(query: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            async with pool.connection() as conn:
                cur = await conn.execute(query, args)
                return await cur.fetchall() if cur.description else []

        return await workload(run)


async def with_asyncpg() -> tuple[float, float]:
    """Run the workload through an asyncpg pool."""
    pool = await asyncpg.create_pool(URL, min_size=WORKERS, max_size=WORKERS)
    try:

        async def run(query: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
            async with pool.acquire() as conn:
                return [tuple(r) for r in await conn.fetch(dollar(query), *args)]

        return await workload(run)
    finally:
        await pool.close()


async def main() -> None:
    """Measure each driver twice (alternating) and print items/second."""
    for _ in range(2):
        for label, fn in (("psycopg", with_psycopg), ("asyncpg", with_asyncpg)):
            conn = await psycopg.AsyncConnection.connect(URL, autocommit=True)
            await conn.execute(SETUP)
            await conn.close()
            publish, consume = await fn()
            print(f"{label:8} publish {publish:8.0f}/s  claim+ack {consume:7.0f}/s")


if __name__ == "__main__":
    asyncio.run(main())
