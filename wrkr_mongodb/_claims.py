"""Claiming items under leases, renewing them, and when a queue next has work.

A claim of one item is one `find_one_and_update`. A batch is two round trips: a find of
up to `limit` claimable documents, then one `update_many` that takes each of them only
if it is still claimable with the attempt count just read (any competing claim counts
an attempt), so that the documents read are exactly what was won. Only when a
competitor won some does a third query read back which ones this claim's token holds;
the claim then tries again for the rest (a few rounds), so that a worker losing a race
does not go to sleep while items are due.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import OperationFailure

from wrkr.backend import Claim, Delivery
from wrkr_mongodb._documents import (
    CLAIM_INDEX,
    NOT_LEASED,
    QUEUED,
    as_utc,
    ceil_ms,
    claimable,
    floor_ms,
    item_from_document,
    lease_end,
)

FIFO = [("due", ASCENDING), ("seq", ASCENDING)]
CONTENDED_ROUNDS = 3  # finds a batch claim makes at most while competitors win its picks
# Hinted, as not every server's planner picks it for a range plus a sort (secantusdb
# scans the collection without the hint); on MongoDB it is the planner's choice anyway.


@dataclass(frozen=True, slots=True)
class MongoDBReceipt:
    """What fences a delivery: the item and the token of the claim that took it.

    Every claim draws a new token, and a settlement ends the hold (the item leaves the
    queue, or its lease is reset), so a worker whose item went back or was claimed
    again holds a receipt that no longer matches: its renew or settlement changes nothing.
    """

    item_id: str
    token: str

    def fence(self) -> dict[str, Any]:
        """Return the filter matching the item only while this claim still holds it."""
        return {"_id": self.item_id, "claim": self.token, "state": QUEUED,
                "lease": {"$gt": NOT_LEASED}}

    def holds(self, document: dict[str, Any] | None) -> bool:
        """Tell whether `document` (read back) is still held by this claim."""
        return (document is not None and document.get("claim") == self.token
                and document["state"] == QUEUED and as_utc(document["lease"]) > NOT_LEASED)


class MongoDBClaimer:
    """Claims, renews and schedules the items of one collection.

    Args:
        items: the items collection.
    """

    def __init__(self, items: Any) -> None:
        self.items = items
        self._union = True  # the server runs $unionWith (the in-process mock does not)

    async def claim(self, claim: Claim) -> list[Delivery[MongoDBReceipt]]:
        """Claim up to `claim.limit` due items, oldest due first; see `Store.claim`."""
        now, token = floor_ms(claim.now), uuid.uuid4().hex
        held: dict[str, Any] = {"lease": lease_end(now, claim.until), "worker": claim.worker,
                                "claim": token}
        taken = {"$set": held, "$inc": {"attempts": 1},
                 "$unset": {"once": ""}}  # a claimed item no longer blocks `once_every`
        if claim.limit <= 1:
            document = await self.items.find_one_and_update(
                claimable(claim.queue, now), taken, sort=FIFO, hint=CLAIM_INDEX,
                return_document=ReturnDocument.AFTER)
            return [] if document is None else [_delivery(document, token, claim.now)]
        won: list[dict[str, Any]] = []
        for _ in range(CONTENDED_ROUNDS):  # items a competitor took: claim others instead
            cursor = (self.items.find(claimable(claim.queue, now))
                      .sort(FIFO).limit(claim.limit - len(won)).hint(CLAIM_INDEX))
            documents = [document async for document in cursor]
            taken_now = await self.take(claim.queue, now, documents, taken, token)
            won.extend(taken_now)
            if len(taken_now) == len(documents) or len(won) == claim.limit:
                break
        for document in won:  # as the update left them
            document.update(held, attempts=document["attempts"] + 1)
            document.pop("once", None)
        return [_delivery(document, token, claim.now) for document in won]

    async def take(self, queue: str, now: datetime, documents: list[dict[str, Any]],
                   taken: dict[str, Any], token: str) -> list[dict[str, Any]]:
        """Take the documents unchanged since they were read; return those taken.

        One `update_many` (and, only if a competitor won some, one read of which).
        """
        if not documents:
            return []
        ids = [document["_id"] for document in documents]
        unchanged = [{"_id": d["_id"], "attempts": d["attempts"]} for d in documents]
        result = await self.items.update_many(
            {**claimable(queue, now), "_id": {"$in": ids}, "$or": unchanged}, taken)
        if result.matched_count == len(documents):
            return documents
        mine = self.items.find({"_id": {"$in": ids}, "claim": token}, {"_id": 1})
        won = {row["_id"] async for row in mine}
        return [document for document in documents if document["_id"] in won]

    async def renew(self, receipts: Sequence[MongoDBReceipt], until: datetime,
                    now: datetime) -> list[bool]:
        """Extend to `until` the leases `receipts` still hold and that have not ended by
        `now`; tell which were extended (an ended lease is not, even if unclaimed)."""
        alive = {"$gt": floor_ms(now)}
        result = await self.items.update_many(
            {"$or": [receipt.fence() for receipt in receipts], "lease": alive},
            {"$set": {"lease": ceil_ms(until)}})
        if result.matched_count == len(receipts):
            return [True] * len(receipts)
        found = self.items.find({"_id": {"$in": [r.item_id for r in receipts]}},
                                {"claim": 1, "state": 1, "lease": 1})
        documents = {row["_id"]: row async for row in found}
        extended = ceil_ms(until)
        renewed = []
        for receipt in receipts:  # held and now leased until `until`: this renewal's work
            document = documents.get(receipt.item_id)
            renewed.append(document is not None and receipt.holds(document)
                           and as_utc(document["lease"]) == extended)
        return renewed

    async def next_due(self, queue: str, now: datetime) -> datetime | None:
        """Return the earliest future due time or lease end of `queue`'s queued items."""
        now = floor_ms(now)
        due: list[dict[str, Any]] = [
            {"$match": {"queue": queue, "state": QUEUED, "due": {"$gt": now},
                        "lease": {"$lte": now}}},
            {"$sort": dict(FIFO)}, {"$limit": 1}, {"$project": {"_id": 0, "at": "$due"}}]
        held: list[dict[str, Any]] = [
            {"$match": {"queue": queue, "state": QUEUED, "lease": {"$gt": now}}},
            {"$sort": {"lease": ASCENDING}}, {"$limit": 1},
            {"$project": {"_id": 0, "at": "$lease"}}]
        if self._union:
            try:
                return _earliest(await self._aggregate(
                    [*due, {"$unionWith": {"coll": self.items.name, "pipeline": held}}]))
            except (NotImplementedError, OperationFailure):
                self._union = False  # the mock, or a server older than 4.4: two queries
        rows = await asyncio.gather(self._aggregate(due), self._aggregate(held))
        return _earliest([row for part in rows for row in part])

    async def _aggregate(self, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        cursor = await self.items.aggregate(pipeline, hint=CLAIM_INDEX)
        return [row async for row in cursor]


def _delivery(document: dict[str, Any], token: str, now: datetime) -> Delivery[MongoDBReceipt]:
    return Delivery(item_from_document(document, now), MongoDBReceipt(document["_id"], token))


def _earliest(rows: list[dict[str, Any]]) -> datetime | None:
    return min((row["at"] for row in rows), default=None)
