"""Inspection and control of stored items: items, get, cancel, retry, counts, purge."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument

from wrkr.backend import Item, ItemFilter, ItemNotFound, State
from wrkr_mongodb._documents import (
    NOT_LEASED,
    QUEUED,
    floor_ms,
    item_filter,
    item_from_document,
    pending_filter,
    state_of,
)

FIFO = [("due", ASCENDING), ("seq", ASCENDING)]


class MongoDBInspector:
    """Reads and edits items outside the claim path (QUERY, CANCEL, FAILED).

    Args:
        items: the items collection.
    """

    def __init__(self, items: Any) -> None:
        self.items = items

    async def find(self, where: ItemFilter, now: datetime) -> list[Item]:
        """Return the items matching `where`, oldest due first, `where.offset` skipped."""
        cursor = self.items.find(item_filter(where, floor_ms(now))).sort(FIFO)
        if where.offset:
            cursor = cursor.skip(where.offset)
        if where.limit is not None:
            cursor = cursor.limit(where.limit)
        return [item_from_document(document, now) async for document in cursor]

    async def get(self, item_id: str, now: datetime) -> Item:
        """Return one item, unless it is unknown or its archive time is over."""
        document = await self.items.find_one(
            {"_id": item_id, "$nor": [{"expires": {"$lte": floor_ms(now)}}]})
        if document is None:
            raise ItemNotFound(f"no item with id {item_id!r}")
        return item_from_document(document, now)

    async def cancel(self, where: ItemFilter, now: datetime) -> int:
        """Delete the pending items matching `where`'s queue, name and tid; return how many."""
        query = item_filter(ItemFilter(where.queue, where.name, where.tid), floor_ms(now))
        query.update(pending_filter(floor_ms(now)))
        result = await self.items.delete_many(query)
        return int(result.deleted_count)

    async def retry(self, item_id: str, now: datetime) -> str:
        """Make a failed item ready now, attempts reset, errors kept; return its queue."""
        document = await self.items.find_one_and_update(
            {"_id": item_id, "state": State.FAILED.value},
            {"$set": {"state": QUEUED, "due": floor_ms(now), "lease": NOT_LEASED,
                      "attempts": 0},
             "$unset": {"finished": "", "expires": ""}},
            projection={"queue": 1}, return_document=ReturnDocument.AFTER)
        if document is None:
            raise ItemNotFound(f"no failed item with id {item_id!r}")
        return str(document["queue"])

    async def counts(self, now: datetime) -> dict[str, dict[State, int]]:
        """Return, per queue, how many items are in each state (empty states left out)."""
        query = item_filter(ItemFilter(), floor_ms(now))
        result: dict[str, dict[State, int]] = {}
        projection = {"_id": 0, "queue": 1, "state": 1, "due": 1, "lease": 1}
        async for document in self.items.find(query, projection):
            state = state_of(document, now)
            per_queue = result.setdefault(str(document["queue"]), {})
            per_queue[state] = per_queue.get(state, 0) + 1
        return result

    async def purge(self, queue: str | None, state: State, older_than: datetime | None) -> int:
        """Delete `state` items (done or failed) finished before `older_than`; how many."""
        query: dict[str, Any] = {"state": state.value}
        if queue is not None:
            query["queue"] = queue
        if older_than is not None:
            query["finished"] = {"$lt": older_than}
        result = await self.items.delete_many(query)
        return int(result.deleted_count)
