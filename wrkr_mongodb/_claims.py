"""Claiming items under leases: one `find_one_and_update`, or a batch in three round trips."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument

from wrkr_mongodb._documents import CLAIM_INDEX, QUEUED, ceil_lease, claimable, floor_ms

FIFO = [("due", ASCENDING), ("seq", ASCENDING)]
ID_INDEX = "_id_"
# Hinted, as not every server's planner picks it for a range plus a sort (secantusdb
# scans the collection without the hint); on MongoDB it is the planner's choice anyway.


@dataclass(frozen=True, slots=True)
class Receipt:
    """What fences a delivery: the item and the end of the lease it was claimed under.

    The lease end is a fencing token: an item is claimed again only once its lease
    ran out, and the new lease ends later than the old one, so a worker whose lease
    expired and whose item was claimed again holds a receipt that no longer matches:
    its ack / nack / fail / release changes nothing.
    """

    item_id: str
    lease: datetime

    def fence(self) -> dict[str, Any]:
        """Return the filter matching the item only while this claim still holds it."""
        return {"_id": self.item_id, "lease": self.lease}


class Claimer:
    """Claims one queue's items for one worker.

    Args:
        items: the items collection.
        queue: the queue to claim from.
        worker: the worker id recorded on claimed items.
        lease: how long a claim holds an item.
    """

    def __init__(self, items: Any, queue: str, worker: str, lease: timedelta) -> None:
        self.items = items
        self.queue = queue
        self.worker = worker
        self.lease = lease

    def _update(self, now: datetime, token: str | None = None) -> dict[str, Any]:
        claim = {"lease": ceil_lease(now, self.lease), "worker": self.worker}
        if token is not None:  # a batch reads back the items it won by this token
            claim["claim"] = token
        return {"$set": claim,
                "$inc": {"attempts": 1},
                "$unset": {"once": ""}}  # a claimed item no longer blocks `once_every`

    async def claim(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Claim up to `limit` due items, oldest due first; return their documents."""
        now = floor_ms(now)
        if limit <= 1:
            return await self._claim_one(now)
        return await self._claim_batch(now, limit)

    async def _claim_one(self, now: datetime) -> list[dict[str, Any]]:
        document = await self.items.find_one_and_update(
            claimable(self.queue, now), self._update(now),
            sort=FIFO, hint=CLAIM_INDEX, return_document=ReturnDocument.AFTER)
        return [] if document is None else [document]

    async def _claim_batch(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        # Pick candidates, claim those still claimable (each document atomically; a
        # competitor may win some), then read back the ones this claim token won.
        query = claimable(self.queue, now)
        cursor = self.items.find(query, {"_id": 1}).sort(FIFO).limit(limit).hint(CLAIM_INDEX)
        ids = [row["_id"] async for row in cursor]
        if len(ids) <= 1:
            return await self._claim_one(now) if ids else []
        token = uuid.uuid4().hex
        await self.items.update_many({**query, "_id": {"$in": ids}}, self._update(now, token))
        won = self.items.find({"_id": {"$in": ids}, "claim": token}).sort(FIFO).hint(ID_INDEX)
        return [document async for document in won]

    async def next_wake(self, now: datetime) -> datetime | None:
        """Return when something may next become claimable: a due time or a lease's end."""
        now = floor_ms(now)
        due = await self._first(
            {"queue": self.queue, "state": QUEUED, "due": {"$gt": now}, "lease": {"$lte": now}},
            "due", FIFO)
        held = await self._first(
            {"queue": self.queue, "state": QUEUED, "lease": {"$gt": now}},
            "lease", [("lease", ASCENDING)])
        times = [moment for moment in (due, held) if moment is not None]
        return min(times) if times else None

    async def _first(self, query: dict[str, Any], field: str,
                     order: list[tuple[str, int]]) -> datetime | None:
        cursor = self.items.find(query, {field: 1}).sort(order).limit(1).hint(CLAIM_INDEX)
        rows = [row async for row in cursor]
        return rows[0][field] if rows else None
