"""Workflows on SQLite: a flow's `FlowTransaction` is one BEGIN IMMEDIATE transaction,
run whole as one job of the store's connection thread (statements: sql/flows.sql).

BEGIN IMMEDIATE takes the file's write lock before the flow's row is read, so every
change to one flow, from any process, runs after the last one committed: the acks of a
step's last items run one after another, and the one that finds the step over starts
the next step in its own transaction, with its ack.

The core's `work` is driven to its end on the thread, inside the transaction: it awaits
nothing but this transaction's methods, which run their statements at once and never
suspend (the memory store relies on the same fact). So the transaction is one hop to the
thread and back, and no other statement of this process can land inside it: the
thread runs one job at a time, and the store's other primitives need no lock.
"""

from __future__ import annotations

import contextvars
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import orjson

from wrkr import WrkrError
from wrkr.backend import FlowTransaction, Message, Settle, Settlement, to_micros
from wrkr_sqlite._publish import insert
from wrkr_sqlite._rows import SQLiteReceipt

if TYPE_CHECKING:
    from wrkr_sqlite._store import SQLiteStore

T = TypeVar("T")
_WAKING = (Settle.NACK, Settle.RELEASE, Settle.ABANDON)


class SQLiteFlowTransaction(FlowTransaction[SQLiteReceipt]):
    """One flow's change, on the connection's thread inside its open transaction.

    Attributes:
        woken: the queues to wake once it commits (new items, nacked items).
    """

    def __init__(self, store: SQLiteStore, conn: sqlite3.Connection, flow_id: str) -> None:
        self.store, self.conn, self.flow_id = store, conn, flow_id
        row = conn.execute(store.queries["flow_get"], {"id": flow_id}).fetchone()
        self.document = None if row is None else bytes(row[0])
        self.woken: set[str] = set()

    async def settle(self, settlement: Settlement[SQLiteReceipt]) -> bool:
        """Settle the item in this transaction; see `FlowTransaction.settle`."""
        now = to_micros(self.store.clock.now())
        queue = self.store.settle_one(self.conn, settlement, now)
        if queue is not None and settlement.how in _WAKING:
            self.woken.add(queue)
        return queue is not None

    async def put(self, messages: Sequence[Message], *, tagged: bool) -> list[str]:
        """Insert items in this transaction; see `FlowTransaction.put`."""
        rows = insert(self.conn, self.store.queries, messages,
                      self.store.clock.now(), self.flow_id if tagged else None)
        self.woken.update(queue for _, queue in rows)
        return [item_id for item_id, _ in rows]

    async def cancel(self, item_ids: Sequence[str]) -> set[str]:
        """Delete the pending ones; see `FlowTransaction.cancel`."""
        ids = orjson.dumps(list(item_ids)).decode()
        return {row[0] for row in self.conn.execute(self.store.queries["flow_cancel"],
                                                    {"ids": ids})}

    async def save(self, document: bytes, *, state: str) -> None:
        """Insert or update the flow's row; see `FlowTransaction.save`."""
        self.conn.execute(self.store.queries["flow_save"], {
            "id": self.flow_id, "state": state, "document": document,
            "now": to_micros(self.store.clock.now())})


def run_to_end(awaitable: Awaitable[T]) -> T:
    """Run `awaitable` to its end here and now; it must never suspend.

    Raises:
        WrkrError: it suspended (it awaited something besides its transaction); it is
            closed, and the transaction is rolled back.
    """
    steps = awaitable.__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    steps.close()
    raise WrkrError("a flow's change awaited something other than its SQLite transaction; "
                    "it was rolled back")


def change(store: SQLiteStore, flow_id: str,
           work: Callable[[FlowTransaction[SQLiteReceipt]], Awaitable[T]],
           context: contextvars.Context, conn: sqlite3.Connection) -> tuple[T, set[str]]:
    """Carry out `work` on `conn`, in the transaction the caller opened; return its
    result and the queues to wake once it commits.

    `context`: the caller's context variables, as an awaited call would see them.
    """
    tx = SQLiteFlowTransaction(store, conn, flow_id)
    return context.run(lambda: run_to_end(work(tx))), tx.woken
