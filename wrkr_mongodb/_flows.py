"""Workflows in MongoDB: one document per flow, its id as `_id`.

    _id       the flow id
    document  the core's record of the flow (BSON binary, opaque here)
    state     the flow's state, beside it for queries
    version   bumped by every change
    lock, lock_until   standalone servers only: which change holds the flow, until when

With transactions (a replica set or sharded cluster) a change to a flow is one
transaction whose first write bumps the flow's `version`: a concurrent change to the same
flow then meets a write conflict and is run again from the start, after the first one
committed, so the changes of one flow run one after another and the settle of its item,
the next step's items and the flow's new document commit together. A standalone server
(and the in-process mock) has no transactions: there a change takes the flow's `lock`
(a compare-and-set, with a lease so that a dead process's lock ends) and runs its
writes one after another; changes still run one at a time, but a process dying in the
middle of one can leave its writes half done (the flow then waits on an item that is
gone). Run flows on a replica set.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from pymongo.errors import PyMongoError

from wrkr.backend import Backoff, Clock, FlowTransaction, Message, Settle, Settlement
from wrkr_mongodb._claims import MongoDBReceipt
from wrkr_mongodb._documents import MongoDBSequence, new_item_document, pending_filter
from wrkr_mongodb._routes import MongoDBRoutes
from wrkr_mongodb._settlements import MongoDBSettler
from wrkr_mongodb._transactions import TRANSIENT, in_transaction

__all__ = ["MongoDBFlows"]

T = TypeVar("T")
LOCK_LEASE = timedelta(seconds=30)
"""How long a standalone server's flow lock holds if its process dies."""
CONFLICT_ROUNDS = 20
"""Transactions tried (each retrying its own transient failures) while others hold the flow."""


def _session(session: Any) -> dict[str, Any]:
    return {} if session is None else {"session": session}


class MongoDBFlowTransaction(FlowTransaction[MongoDBReceipt]):
    """One change to one flow: inside a transaction when `session` is given."""

    def __init__(self, flows: MongoDBFlows, flow_id: str, document: bytes | None,
                 session: Any) -> None:
        self.flows = flows
        self.flow_id = flow_id
        self.document = document
        self.session = session
        self.queues: set[str] = set()  # that got items: woken after the commit

    async def settle(self, settlement: Settlement[MongoDBReceipt]) -> bool:
        """Settle the item; see `FlowTransaction.settle`."""
        [held] = await self.flows.settler.settle([settlement], self.flows.clock.now(),
                                                 session=self.session)
        if held and settlement.how is Settle.NACK:
            self.queues.add(settlement.delivery.item.queue)
        return held

    async def put(self, messages: Sequence[Message], *, tagged: bool) -> list[str]:
        """Insert one item per (message, queue); see `FlowTransaction.put`."""
        now = self.flows.clock.now()
        routes = await self.flows.routes.fresh()
        documents = [new_item_document(message, queue, self.flows.sequence.take(), now)
                     for message in messages for queue in routes.lookup(message.name)]
        if tagged:
            for document in documents:
                document["flow"] = self.flow_id
        if documents:
            await self.flows.items.insert_many(documents, **_session(self.session))
        self.queues.update(document["queue"] for document in documents)
        return [document["_id"] for document in documents]

    async def cancel(self, item_ids: Sequence[str]) -> set[str]:
        """Delete the pending ones, one by one; see `FlowTransaction.cancel`."""
        pending = pending_filter(self.flows.clock.now())
        removed = set()
        for item_id in item_ids:
            done = await self.flows.items.delete_one({"_id": item_id, **pending},
                                                     **_session(self.session))
            if done.deleted_count:
                removed.add(item_id)
        return removed

    async def save(self, document: bytes, *, state: str) -> None:
        """Store the flow's document; see `FlowTransaction.save`."""
        now = self.flows.clock.now()
        await self.flows.collection.update_one(
            {"_id": self.flow_id},
            {"$set": {"document": document, "state": state, "updated": now},
             "$setOnInsert": {"created": now, "version": 0, "lock": None,
                              "lock_until": now}},
            upsert=True, **_session(self.session))


class MongoDBFlows:
    """The flows collection, and changes to one flow at a time.

    Args:
        collection: the flows collection.
        items: the items collection.
        routes: the cached subscriptions (the fan-out of a job's event).
        clock: the store's clock.
    """

    def __init__(self, collection: Any, items: Any, routes: MongoDBRoutes, clock: Clock) -> None:
        self.collection = collection
        self.items = items
        self.routes = routes
        self.clock = clock
        self.settler = MongoDBSettler(items)
        self.sequence = MongoDBSequence()
        self.client: Any = None  # set where the server runs transactions

    async def document(self, flow_id: str) -> bytes | None:
        """Return the flow's stored document, or None."""
        found = await self.collection.find_one({"_id": flow_id}, {"document": 1})
        return None if found is None else bytes(found["document"])

    async def run(self, flow_id: str,
                  work: Callable[[FlowTransaction[MongoDBReceipt]], Awaitable[T]]
                  ) -> tuple[T, set[str]]:
        """Run `work` as one change to the flow; return its result and the queues woken."""
        if self.client is None:
            return await self._run_locked(flow_id, work)
        backoff = Backoff(0.01, 0.2)
        for round_ in range(1, CONFLICT_ROUNDS + 1):
            try:
                return await in_transaction(
                    self.client, lambda session: self._attempt(flow_id, work, session))
            except PyMongoError as exc:
                if round_ == CONFLICT_ROUNDS or not exc.has_error_label(TRANSIENT):
                    raise
                await asyncio.sleep(backoff.next())
        raise AssertionError("unreachable: the last round returns or raises")

    async def _attempt(self, flow_id: str,
                       work: Callable[[FlowTransaction[MongoDBReceipt]], Awaitable[T]],
                       session: Any) -> tuple[T, set[str]]:
        found = await self.collection.find_one_and_update(
            {"_id": flow_id}, {"$inc": {"version": 1}}, projection={"document": 1},
            **_session(session))  # the write that makes concurrent changes conflict
        tx = MongoDBFlowTransaction(self, flow_id, None if found is None else
                                    bytes(found["document"]), session)
        return await work(tx), tx.queues

    async def _run_locked(self, flow_id: str,
                          work: Callable[[FlowTransaction[MongoDBReceipt]], Awaitable[T]]
                          ) -> tuple[T, set[str]]:
        token = uuid.uuid4().hex
        backoff = Backoff(0.005, 0.1)
        while True:
            now = self.clock.now()
            taken = await self.collection.find_one_and_update(
                {"_id": flow_id, "$or": [{"lock": None}, {"lock_until": {"$lte": now}}]},
                {"$set": {"lock": token, "lock_until": now + LOCK_LEASE}})
            if taken is not None or await self.collection.find_one({"_id": flow_id}) is None:
                break  # held, or a flow being created (its id is new: nobody else has it)
            await asyncio.sleep(backoff.next())
        try:
            return await self._attempt(flow_id, work, None)
        finally:
            if taken is not None:
                await self.collection.update_one({"_id": flow_id, "lock": token},
                                                 {"$set": {"lock": None}})

