"""Exclusive queues: one item per tid processing at a time, without transactions.

Each tid in flight has a lock document in ``<prefix>tids``:

    _id     the queue and the tid (`lock_id`): the `_id` index makes it one per pair
    queue, tid
    claim   the token of the claim holding it (the item's `claim`)
    lease   until when: the item's own lease end, renewed and ended with it

A claim reads the queue's live locks and leaves their tids out of its find of due
items (FIFO), so tids in flight cost nothing per candidate; of what it reads, it keeps
the items without a tid and the first item of each other tid. It then takes those tids'
locks in one unordered `bulk_write` of upserts filtered on ``lease <= now``: an upsert
replaces a lock whose lease ended (a dead worker's tid comes free with its item), and
where a live lock exists it collides with that `_id` and fails with a duplicate key
error, atomically on any server, the in-process mock included. Only then does it read
the locked tids' earliest claimable items (index (queue, tid, state, due, seq)): with
the locks held nobody else can take them, so items of one tid start in due order even
when an earlier one came back meanwhile. One `update_many` takes them; locks whose
item was not won are deleted again. A claim is five round trips however many items.

A settlement of any kind deletes the lock after the item's write (fenced by the claim
token), so the tid is free for its next item; a failed item frees it like any other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.errors import BulkWriteError

from wrkr.backend import Claim, Delivery
from wrkr_mongodb._claims import MongoDBClaimer, MongoDBReceipt
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
DUPLICATE_KEY = 11000


def lock_id(queue: str, tid: str) -> str:
    """Return the `_id` of the lock of (`queue`, `tid`), unambiguous whatever they hold."""
    return f"{len(queue)}:{queue}:{tid}"


class MongoDBTidLocks:
    """Claims of exclusive queues, and the lock documents that fence them.

    Args:
        items: the items collection.
        locks: the locks collection.
    """

    def __init__(self, items: Any, locks: Any, claimer: MongoDBClaimer) -> None:
        self.items, self.locks, self.claimer = items, locks, claimer

    async def create_indexes(self) -> None:
        """Create the indexes exclusive claims seek (idempotent).

        Called by the first exclusive queue configured: until then no item pays for
        the (queue, tid, state, due, seq) index.
        """
        for keys, options in EXCLUSIVE_INDEXES:
            await self.items.create_index(keys, **options)
        for keys, options in LOCK_INDEXES:
            await self.locks.create_index(keys, **options)

    async def claim(self, claim: Claim) -> list[Delivery[MongoDBReceipt]]:
        """Claim up to `claim.limit` items, one per free tid, any without a tid."""
        queue, now, token = claim.queue, floor_ms(claim.now), uuid.uuid4().hex
        lease = lease_end(now, claim.until)
        held = {"lease": lease, "worker": claim.worker, "claim": token}
        taken = {"$set": held, "$inc": {"attempts": 1}, "$unset": {"once": ""}}
        untied, tids = await self._candidates(queue, now, claim.limit)
        locked = await self._lock(queue, tids, now, lease, token)
        chosen = sorted([*untied, *await self._heads(queue, locked, now)],
                        key=lambda document: (document["due"], document["seq"]))
        won = await self.claimer.take(queue, now, chosen, taken, token)
        lost = set(locked) - {document.get("tid") for document in won}
        if lost:  # its head was taken back meanwhile (a lease ended): free the tid again
            await self.locks.delete_many(
                {"$or": [{"_id": lock_id(queue, tid), "claim": token} for tid in lost]})
        for document in won:  # as the update left them
            document.update(held, attempts=document["attempts"] + 1)
            document.pop("once", None)
        return [Delivery(item_from_document(document, claim.now),
                         MongoDBReceipt(document["_id"], token)) for document in won]

    async def _candidates(self, queue: str, now: datetime,
                          limit: int) -> tuple[list[dict[str, Any]], list[str]]:
        """Read due items in FIFO order, tids in flight left out; return up to `limit`
        items without a tid and tids, in that order (a tid's first is its earliest)."""
        query = claimable(queue, now)
        busy = sorted({row["tid"] async for row in self.locks.find(
            {"queue": queue, "lease": {"$gt": now}}, {"tid": 1})})
        if busy:
            query["tid"] = {"$nin": busy}
        untied: list[dict[str, Any]] = []
        tids: dict[str, None] = {}  # in order of first appearance
        async for document in (self.items.find(query).sort(FIFO).limit(limit * SCAN)
                               .hint(CLAIM_INDEX)):
            tid = document.get("tid")
            if tid is None:
                untied.append(document)
            else:
                tids.setdefault(tid)
            if len(untied) + len(tids) == limit:
                break
        return untied, list(tids)

    async def _lock(self, queue: str, tids: list[str], now: datetime, lease: datetime,
                    token: str) -> list[str]:
        """Take the locks of `tids` that are free or whose lease ended; return those taken.

        One unordered `bulk_write` of upserts: a live lock's upsert collides on `_id`
        (error 11000) and changes nothing, the others are taken.
        """
        if not tids:
            return []
        writes = [UpdateOne({"_id": lock_id(queue, tid), "lease": {"$lte": now}},
                            {"$set": {"queue": queue, "tid": tid, "claim": token,
                                      "lease": lease}}, upsert=True) for tid in tids]
        try:
            await self.locks.bulk_write(writes, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            held = {error["index"] for error in errors}
            return [tid for index, tid in enumerate(tids) if index not in held]
        return tids

    async def _heads(self, queue: str, tids: list[str], now: datetime) -> list[dict[str, Any]]:
        """Return the earliest claimable item of each of `tids` (read once their locks
        are held: nobody else can take them, so what is read stays true)."""
        if not tids:
            return []
        heads: dict[str, dict[str, Any]] = {}
        async for document in (self.items.find({**claimable(queue, now),
                                                "tid": {"$in": tids}})
                               .sort(FIFO).hint(TID_INDEX)):
            heads.setdefault(document["tid"], document)
        return list(heads.values())

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

