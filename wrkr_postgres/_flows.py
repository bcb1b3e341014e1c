"""Workflows on PostgreSQL: a flow's `FlowTransaction` is one database transaction that
starts by locking the flow's row (statements: sql/flows.sql).

The lock serialises every change to one flow, from any process: the acks of a step's
last items run one after another, and the one that finds the step over starts the next
step in its own transaction, with its ack. Nothing of it is seen before the commit,
and NOTIFYs of the new items go out at the commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from wrkr.backend import FlowTransaction, Message, Settlement
from wrkr_postgres._db import wrapped
from wrkr_postgres._rows import PostgresReceipt

if TYPE_CHECKING:
    from wrkr_postgres._store import PostgresStore

T = TypeVar("T")


class PostgresFlowTransaction(FlowTransaction[PostgresReceipt]):
    """One flow's change, on one connection inside its open transaction."""

    def __init__(self, store: PostgresStore, conn: psycopg.AsyncConnection[Any], flow_id: str,
                 document: bytes | None) -> None:
        self.store = store
        self.conn = conn
        self.flow_id = flow_id
        self.document = document
        self.published = False

    async def _run(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        cur = await self.conn.execute(self.store.queries[name], params)
        return await cur.fetchall() if cur.description else []

    async def settle(self, settlement: Settlement[PostgresReceipt]) -> bool:
        """Settle the item in this transaction; see `FlowTransaction.settle`."""
        wake_all = settlement.delivery.item.queue in self.store.exclusive_queues
        params = self.store.settle_params([settlement]) | {"wake_all": wake_all}
        return bool(await self._run("settle", params))

    async def put(self, messages: Sequence[Message], *, tagged: bool) -> list[str]:
        """Insert items in this transaction; see `FlowTransaction.put`."""
        ids = await self.store.put(messages, connection=self.conn)
        if tagged and ids:
            await self._run("flow_tag", {"flow": self.flow_id, "ids": ids})
        self.published = self.published or bool(ids)
        return ids

    async def cancel(self, item_ids: Sequence[str]) -> set[str]:
        """Delete the pending ones; see `FlowTransaction.cancel`."""
        rows = await self._run("flow_cancel", {"ids": list(item_ids)})
        return {row[0].hex for row in rows}

    async def save(self, document: bytes, *, state: str) -> None:
        """Insert or update the flow's row; see `FlowTransaction.save`."""
        await self._run("flow_save", {"id": self.flow_id, "state": state, "document": document,
                                      "now": self.store.clock.now()})


async def flow_transaction(
    store: PostgresStore, flow_id: str,
    work: Callable[[FlowTransaction[PostgresReceipt]], Awaitable[T]],
) -> T:
    """Lock `flow_id`'s row, run `work`, commit; return what `work` returned."""
    with wrapped(store.settings.conninfo):
        async with store.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(store.queries["flow_lock"], {"id": flow_id})
            row = await cur.fetchone()
            tx = PostgresFlowTransaction(store, conn, flow_id,
                                         None if row is None else bytes(row[0]))
            result = await work(tx)
    if tx.published and not store.wakes_live:  # else the NOTIFYs at commit wake them
        store.notify(None)
    return result
