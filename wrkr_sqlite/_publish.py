"""Publishing on a connection: routing, the inserts, and waking consumers at commit.

The same function inserts a batch on the store's own connection (in its BEGIN
IMMEDIATE transaction) and on the caller's (inside the caller's open transaction, for
an outbox), so both route and deduplicate alike.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from wrkr.backend import InvalidConfig, Message, matches, new_item_id, to_micros

COMMIT_CHECK = 0.005  # seconds between looks at the caller's transaction
COMMIT_WATCH = 60.0  # then consumers find the items by polling anyway


def route(conn: sqlite3.Connection, names: set[str]) -> dict[str, list[str]]:
    """Return, for each event name, the sorted distinct queues it reaches now."""
    subscriptions = conn.execute("SELECT queue, pattern FROM wrkr_subscriptions").fetchall()
    return {name: sorted({queue for queue, pattern in subscriptions if matches(pattern, name)})
            for name in names}


def insert(conn: sqlite3.Connection, queries: Mapping[str, str], messages: Sequence[Message],
           now: datetime, flow: str | None = None) -> list[tuple[str, str]]:
    """Insert one item per (message, routed queue); return (id, queue) of those created.

    Runs inside a transaction the caller opened: the batch is all or nothing, and its
    items get `seq` in message order. A run of plain messages is one prepared
    ``enqueue_many`` statement run by `executemany` (2.5x less SQLite-thread time per
    batch of 100 than a statement per item, bench/README.md); a `once_every` message
    is one ``enqueue`` of its own, which sees the items inserted before it. `flow`: the
    id of the flow whose job the items are (`Item.flow`).
    """
    routes = route(conn, {message.name for message in messages})
    stamp = to_micros(now)
    created: list[tuple[str, str]] = []
    plain: list[tuple[object, ...]] = []
    for message in messages:
        if message.dedupe:
            _insert_plain(conn, queries["enqueue_many"], plain, created)
            created.extend(_insert_once(conn, queries["enqueue"], message, routes[message.name],
                                        stamp, flow))
            continue
        due, made = to_micros(message.due), to_micros(message.created)
        plain.extend((new_item_id(), queue, message.name, message.tid, message.payload, due,
                      made, stamp, message.parent, message.root, message.trace, flow)
                     for queue in routes[message.name])
    _insert_plain(conn, queries["enqueue_many"], plain, created)
    return created


def _insert_plain(conn: sqlite3.Connection, statement: str, rows: list[tuple[object, ...]],
                  created: list[tuple[str, str]]) -> None:
    """Insert the pending rows of plain messages, add them to `created`, and clear `rows`."""
    if rows:
        conn.executemany(statement, rows)
        created.extend((str(row[0]), str(row[1])) for row in rows)
        rows.clear()


def _insert_once(conn: sqlite3.Connection, statement: str, message: Message, queues: list[str],
                 stamp: int, flow: str | None) -> list[tuple[str, str]]:
    """Insert a `once_every` message into each queue holding no pending item like it."""
    base = {"name": message.name, "tid": message.tid, "payload": message.payload,
            "due": to_micros(message.due), "created": to_micros(message.created),
            "dedupe": message.dedupe, "now": stamp, "parent": message.parent,
            "root": message.root, "trace": message.trace, "flow": flow}
    created = []
    for queue in queues:
        item_id = new_item_id()
        if conn.execute(statement, base | {"id": item_id, "queue": queue}).rowcount:
            created.append((item_id, queue))
    return created


def check_same_file(connection: object, path: str) -> sqlite3.Connection:
    """Return `connection` if it is a sqlite3 connection to the file at `path`.

    Raises:
        InvalidConfig: another kind of connection, or one to another database.
    """
    if not isinstance(connection, sqlite3.Connection):
        raise InvalidConfig("SQLiteBackend joins the transaction of a sqlite3.Connection "
                            f"to its own file; got {type(connection).__name__}")
    try:
        files = {row[2] for row in connection.execute("PRAGMA database_list") if row[1] == "main"}
    except sqlite3.ProgrammingError as exc:
        raise InvalidConfig(f"SQLiteBackend cannot use that connection: {exc} (open it with "
                            "check_same_thread=False to publish through BlockingWrkr)") from None
    if not any(file and Path(file).resolve() == Path(path).resolve() for file in files):
        raise InvalidConfig(f"the connection given is to {sorted(files)[0] or 'memory'!r}, "
                            f"not to the backend's file {path!r}: the items and your change "
                            "must be in one file to commit together")
    return connection


def wake_at_commit(connection: sqlite3.Connection, wake: Callable[[], None]) -> None:
    """Call `wake()` once the caller's transaction has ended (sqlite3 has no commit hook).

    Looks every `COMMIT_CHECK` seconds, for at most `COMMIT_WATCH`; a rolled-back
    transaction wakes consumers too, who then find nothing.
    """
    loop = asyncio.get_running_loop()
    give_up = time.monotonic() + COMMIT_WATCH

    def look() -> None:
        try:
            ended = not connection.in_transaction
        except sqlite3.Error:  # closed meanwhile
            ended = True
        if ended or time.monotonic() > give_up:
            wake()
        else:
            loop.call_later(COMMIT_CHECK, look)

    look()
