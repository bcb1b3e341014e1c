"""Exclusive queues: one item per tid processing at a time, without transactions.

Each tid in flight has a lock document in ``<prefix>tids``:

    _id     the queue and the tid (`lock_id`): the `_id` index makes it one per pair
    queue, tid
    claim   the token of the claim holding it (the item's `claim`)
    lease   until when: the item's own lease end, renewed and ended with it

Taking a lock is one `find_one_and_update` upsert filtered on ``lease <= now``: it
replaces a lock whose lease ended (a dead worker's tid comes free with its item), and
when a live lock exists its upsert collides with that `_id` and fails with a duplicate
key error, atomically on any server, the in-process mock included. Only the lock's
holder then takes the tid's earliest claimable item (looked up in the index on
(queue, tid, state, due, seq), after the lock is held, so nobody can change it
meanwhile): items of one tid start in due order. A settlement of any kind deletes the
lock after the item's write (fenced by the claim token), so the tid is free for its
next item; a failed item frees it like any other settlement.

A claim reads the queue's live locks first and leaves their tids out of its find, so
tids in flight cost nothing per candidate; each candidate of a free tid costs a lock
upsert, a head lookup and the take.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from wrkr.backend import Claim, Delivery
from wrkr_mongodb._claims import MongoDBReceipt
from wrkr_mongodb._documents import (
    CLAIM_INDEX,
    IndexSpec,
    ceil_ms,
    claimable,
    floor_ms,
    item_from_document,
    lease_end,
)

__all__ = ["EXCLUSIVE_INDEXES", "LOCK_INDEXES", "MongoDBTidLocks", "lock_id"]

TID_INDEX = "wrkr_tid_fifo"
EXCLUSIVE_INDEXES: list[IndexSpec] = [
    ([("queue", ASCENDING), ("tid", ASCENDING), ("state", ASCENDING), ("due", ASCENDING),
      ("seq", ASCENDING)], {"name": TID_INDEX}),
]
"""Indexes of the items collection that exclusive claims seek."""

LOCK_INDEXES: list[IndexSpec] = [
    ([("queue", ASCENDING), ("lease", ASCENDING)], {"name": "wrkr_tid_locks"}),
]
"""Indexes of the locks collection: a claim reads its queue's live locks."""

FIFO = [("due", ASCENDING), ("seq", ASCENDING)]
SCAN = 4  # candidates read per item wanted: several may share a tid


def lock_id(queue: str, tid: str) -> str:
    """Return the `_id` of the lock of (`queue`, `tid`), unambiguous whatever they hold."""
    return f"{len(queue)}:{queue}:{tid}"


class MongoDBTidLocks:
    """Claims of exclusive queues, and the lock documents that fence them.

    Args:
        items: the items collection.
        locks: the locks collection.
    """

    def __init__(self, items: Any, locks: Any) -> None:
        self.items, self.locks = items, locks

    async def claim(self, claim: Claim) -> list[Delivery[MongoDBReceipt]]:
        """Claim up to `claim.limit` items, one per free tid, any without a tid."""
        now, token = floor_ms(claim.now), uuid.uuid4().hex
        lease = lease_end(now, claim.until)
        taken = {"$set": {"lease": lease, "worker": claim.worker, "claim": token},
                 "$inc": {"attempts": 1}, "$unset": {"once": ""}}
        won = await self._claim(claim.queue, now, claim.limit, lease, token, taken)
        return [Delivery(item_from_document(document, claim.now),
                         MongoDBReceipt(document["_id"], token)) for document in won]

    async def _claim(self, queue: str, now: datetime, limit: int, lease: datetime,
                     token: str, taken: dict[str, Any]) -> list[dict[str, Any]]:
        query = claimable(queue, now)
        busy = sorted({row["tid"] async for row in self.locks.find(
            {"queue": queue, "lease": {"$gt": now}}, {"tid": 1})})
        if busy:
            query["tid"] = {"$nin": busy}
        candidates = [document async for document in self.items.find(query).sort(FIFO)
                      .limit(limit * SCAN).hint(CLAIM_INDEX)]
        won: list[dict[str, Any]] = []
        seen: set[str] = set()
        for document in candidates:
            if len(won) == limit:
                break
            tid = document.get("tid")
            if tid is not None and tid in seen:
                continue
            if tid is not None:
                seen.add(tid)
                got = await self._take_tid(queue, tid, now, lease, token, taken)
            else:
                got = await self._take(queue, document, now, taken)
            if got is not None:
                won.append(got)
        return won

    async def _take_tid(self, queue: str, tid: str, now: datetime, lease: datetime,
                        token: str, taken: dict[str, Any]) -> dict[str, Any] | None:
        """Lock `tid`, then take its earliest claimable item; None if either fails."""
        try:
            await self.locks.find_one_and_update(
                {"_id": lock_id(queue, tid), "lease": {"$lte": now}},
                {"$set": {"queue": queue, "tid": tid, "claim": token, "lease": lease}},
                upsert=True)
        except DuplicateKeyError:
            return None  # another worker holds it
        cursor = (self.items.find({**claimable(queue, now), "tid": tid})
                  .sort(FIFO).limit(1).hint(TID_INDEX))  # (the mock's find_one takes no hint)
        head = next(iter([document async for document in cursor]), None)
        got = None if head is None else await self._take(queue, head, now, taken)
        if got is None:
            await self.locks.delete_one({"_id": lock_id(queue, tid), "claim": token})
        return got

    async def _take(self, queue: str, document: dict[str, Any], now: datetime,
                    taken: dict[str, Any]) -> dict[str, Any] | None:
        """Take `document` if it is unchanged since read; return it as taken, or None."""
        done = await self.items.update_one(
            {**claimable(queue, now), "_id": document["_id"],
             "attempts": document["attempts"]}, taken)
        if not done.matched_count:
            return None
        document.update(taken["$set"], attempts=document["attempts"] + 1)
        document.pop("once", None)
        return document

    async def renew(self, deliveries: Sequence[Delivery[Any]], until: datetime,
                    now: datetime) -> None:
        """Extend the locks of `deliveries`' tids that are still theirs and alive."""
        fences = _fences(deliveries)
        if fences:
            await self.locks.update_many({"$or": fences, "lease": {"$gt": floor_ms(now)}},
                                         {"$set": {"lease": ceil_ms(until)}})

    async def release(self, deliveries: Sequence[Delivery[Any]]) -> None:
        """Delete the locks that `deliveries` hold (a settled item frees its tid)."""
        fences = _fences(deliveries)
        if fences:
            await self.locks.delete_many({"$or": fences})


def _fences(deliveries: Sequence[Delivery[Any]]) -> list[dict[str, Any]]:
    return [{"_id": lock_id(d.item.queue, d.item.tid), "claim": d.receipt.token}
            for d in deliveries if d.item.tid is not None]

