"""Connections: a pool for inspection and control, one for settling, driver errors wrapped.

Two pools because they commit differently. The first commits synchronously, as does
publishing (its own connection, `_publisher`): a published event is on disk before
`publish()` returns. Claims, acks, nacks and
releases may commit asynchronously (``fast_settle``, the default): if the server
crashes, the last few settlements are lost and those items are delivered again,
which at-least-once delivery allows; a commit then costs no disk flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, NoReturn

import orjson
import psycopg
import psycopg_pool
from psycopg.types.json import set_json_loads

from wrkr.backend import BackendUnavailable, NotStarted, redact, scrub

logger = logging.getLogger("wrkr.postgres")
Row = tuple[Any, ...]
Params = Mapping[str, Any]


def closed() -> NotStarted:
    """Return the error for a call on a closed backend (a pool or the publisher)."""
    return NotStarted("PostgresBackend is closed: start the app (or `await "
                      "backend.open()`) again first")


def unavailable(exc: BaseException, url: str) -> NoReturn:
    """Raise `BackendUnavailable` for a driver error, with no password in the message.

    psycopg answers a cancelled task by cancelling its query, and raises the server's
    error instead of `CancelledError`; a cancelled task must still see its cancellation.
    A closed pool is this process's doing, not the server's: `NotStarted`.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc
    if isinstance(exc, psycopg_pool.PoolClosed):
        raise closed() from None
    detail = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                   url)
    raise BackendUnavailable(f"PostgreSQL at {redact(url)} failed: {detail}") from None


@contextlib.contextmanager
def wrapped(url: str) -> Any:
    """Turn psycopg and pool errors raised inside into `BackendUnavailable`."""
    try:
        yield
    except (psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
        unavailable(exc, url)


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    set_json_loads(orjson.loads, conn)  # every claimed row carries its error history


async def _configure_fast(conn: psycopg.AsyncConnection[Any]) -> None:
    await _configure(conn)
    await conn.execute("SET synchronous_commit = off")


class PostgresPool:
    """An autocommit connection pool whose statements raise only wrkr errors.

    A pool opens once: a store builds a new one at each connect.

    Args:
        url: the libpq URL (wrkr's options already removed).
        size: the most connections it opens.
        fast_commit: commit asynchronously (see the module docstring).
    """

    def __init__(self, url: str, size: int, *, fast_commit: bool = False) -> None:
        self.url = url
        self._pool = psycopg_pool.AsyncConnectionPool(
            url, min_size=1, max_size=size, open=False, kwargs={"autocommit": True},
            configure=_configure_fast if fast_commit else _configure, name="wrkr")

    async def open(self, timeout: float) -> None:
        """Open the pool, waiting up to `timeout` seconds for its first connection."""
        with wrapped(self.url):
            try:
                await self._pool.open(wait=True, timeout=timeout)
            except BaseException:
                await self._pool.close()
                raise

    async def close(self) -> None:
        """Close every connection (idempotent)."""
        await self._pool.close()

    async def fetch(self, query: str, params: Params | Callable[[], Params]) -> list[Row]:
        """Run one statement (its own transaction) and return its rows.

        `params` may be a function, called once a connection is at hand: for times that
        must not go stale while a busy pool keeps the statement waiting.

        Rows come in binary: decoding a claimed batch costs about 40% less than text.
        A connection the server dropped (a restart) is found broken on first use; the
        statement is then retried once on a fresh connection, having not run.
        """
        for attempt in (1, 2):
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                async with self._pool.connection() as conn:
                    cur = await conn.execute(query, params() if callable(params) else params,
                                             binary=True)
                    return await cur.fetchall() if cur.description else []
            except psycopg.OperationalError as exc:
                if attempt == 2 or conn is None or not conn.broken:
                    unavailable(exc, self.url)
                logger.info("wrkr.postgres: connection lost, retrying once: %s",
                            scrub(str(exc), self.url))
                await self._pool.check()
            except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                unavailable(exc, self.url)
        raise AssertionError("unreachable")

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """Lend a connection (for transactions of several statements), errors wrapped."""
        with wrapped(self.url):
            async with self._pool.connection() as conn:
                yield conn
