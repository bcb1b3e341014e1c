"""Exclusive and rated claims, and the sliding windows of starts, on one connection.

Each function runs inside a BEGIN IMMEDIATE transaction its caller opened: the file's
write lock serialises every writer of every process, so reading a window's count and
recording the starts taken, or probing a tid and claiming its item, are atomic.
Statements: ``sql/coordination.sql``.

A window's starts are stamped with the store's clock read once the lock is held, never
with a time read before waiting for it: a claim that waited 50 ms for another process's
transaction must not record its starts 50 ms in the past, where they would leave the
window early. They are also stamped no earlier than the latest start recorded, so a
start never leaves the window before one granted ahead of it.
"""

from __future__ import annotations

import functools
import hashlib
import sqlite3
from collections.abc import Callable
from typing import Any

from wrkr.backend import MICROSECOND, QueueOptions, Rate, Window

__all__ = ["claim_rows", "configure", "for_queue", "next_slot", "take_slots"]

Row = tuple[Any, ...]


@functools.lru_cache(maxsize=256)
def for_queue(statement: str, queue: str) -> str:
    """Fill `queue` into a statement's ``{queue}`` (a SQL literal) and ``{index}``."""
    literal = "'" + queue.replace("'", "''") + "'"
    index = "wrkr_tid_" + hashlib.sha1(queue.encode(), usedforsecurity=False).hexdigest()[:16]
    return statement.replace("{queue}", literal).replace("{index}", index)


def period_us(window: Window) -> int:
    """Return `window`'s period in whole microseconds."""
    return window.period // MICROSECOND


def configure(conn: sqlite3.Connection, queries: dict[str, str], queue: str,
              options: QueueOptions) -> QueueOptions:
    """Store `options` with `queue` unless it has some; return the stored ones.

    An exclusive queue makes sure the indexes its claims seek exist (see
    ``tid_index_*``): on a file with many items of the queue they are built under the
    write lock, once.
    """
    rate = options.rate
    conn.execute(queries["configure"], {
        "queue": queue, "exclusive": options.exclusive,
        "rate_limit": None if rate is None else rate.limit,
        "rate_period": None if rate is None else rate.period // MICROSECOND})
    exclusive, limit, period = conn.execute(queries["options"], {"queue": queue}).fetchone()
    if exclusive:  # the indexes its claims seek, of its own (IF NOT EXISTS: once)
        conn.execute(for_queue(queries["tid_index_processing"], queue))
        conn.execute(for_queue(queries["tid_index_pending"], queue))
    stored_rate = None if limit is None else Rate(limit, period * MICROSECOND)
    return QueueOptions(bool(exclusive), stored_rate)


def take_slots(conn: sqlite3.Connection, queries: dict[str, str], window: Window,
               wanted: int, now: int) -> int:
    """Record up to `wanted` starts that `window` allows at `now` (µs); return how many."""
    room, stamp = _room(conn, queries, window, now)
    taken = max(0, min(wanted, room))
    if taken:
        conn.execute(queries["record_starts"], {"window": window.key, "at": stamp, "n": taken})
    return taken


def claim_rows(conn: sqlite3.Connection, queries: dict[str, str], params: dict[str, Any],
               exclusive: bool, window: Window | None,
               clock_now: Callable[[], int]) -> list[Row]:
    """Claim an exclusive or rated queue's items; return the claimed rows.

    A rated claim takes at most what its window allows, and records what it took, in
    the same transaction.
    """
    statement = (for_queue(queries["claim_exclusive"], params["queue"]) if exclusive
                 else queries["claim"])
    if window is None:
        return conn.execute(statement, params).fetchall()
    room, stamp = _room(conn, queries, window, max(params["now"], clock_now()))
    if room <= 0:
        return []
    rows = conn.execute(statement, params | {"limit": min(params["limit"], room)}).fetchall()
    if rows:
        conn.execute(queries["record_starts"],
                     {"window": window.key, "at": stamp, "n": len(rows)})
    return rows


def next_slot(conn: sqlite3.Connection, queries: dict[str, str], window: Window,
              now: int) -> int | None:
    """Return when (µs) `window` next allows a start; None if it does at `now`."""
    row = conn.execute(queries["next_slot"], {"window": window.key, "now": now,
                                              "period": period_us(window),
                                              "limit": window.limit}).fetchone()
    return None if row is None else int(row[0])


def _room(conn: sqlite3.Connection, queries: dict[str, str], window: Window,
          now: int) -> tuple[int, int]:
    """Forget starts a period old; return the room left at `now` and the stamp to use."""
    params = {"window": window.key, "now": now, "period": period_us(window)}
    conn.execute(queries["forget_starts"], params)
    used, latest = conn.execute(queries["used"], params).fetchone()
    return window.limit - int(used), max(now, int(latest))
