"""Sliding windows of starts (rated queues, limiters), one document per window.

    _id      the window's key ("queue:<name>", "limiter:<name>")
    starts   the starts of the last period: [{at: µs since the epoch, n, id}], oldest first
    version  bumped by every write: what the next write compares

Times are integer microseconds, not BSON dates, whose milliseconds would let a start
leave its window up to 1 ms early. Taking starts is a compare-and-set without
transactions: read the document, count the starts still inside (now - period, now],
and write the new list back only if `version` is still the one read; a writer that
lost the race reads again (each round, one writer wins). A start is stamped with the
store's clock as read in the round that wins (a writer that lost rounds is not
backdated to its first read), never earlier than the latest start recorded, so no
start leaves the window before one granted ahead of it.

A rated claim reserves its room first, claims at most that many items, then gives back
what it did not use: the window never counts fewer starts than handlers began, and a
competitor refused meanwhile only waits a little longer than it had to.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError, PyMongoError

from wrkr.backend import Clock, Window

__all__ = ["MongoDBWindows"]

ROUNDS = 100  # compare-and-set attempts; each lost round means another writer progressed
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


class MongoDBWindows:
    """The windows collection.

    Args:
        windows: the collection of window documents.
        clock: the store's clock, read for each round's stamp.
    """

    def __init__(self, windows: Any, clock: Clock) -> None:
        self.windows, self.clock = windows, clock

    async def take(self, window: Window, wanted: int, now: datetime) -> tuple[int, str]:
        """Record up to `wanted` starts at the clock's time (not before `now`), as allowed.

        Returns how many were recorded and the id of their entry (for `give_back`).
        """
        entry_id = uuid.uuid4().hex
        period = window.period // _MICROSECOND
        for _ in range(ROUNDS):
            found = await self.windows.find_one({"_id": window.key})
            at = _micros(max(now, self.clock.now()))
            live = [] if found is None else [s for s in found["starts"] if s["at"] > at - period]
            taken = min(wanted, window.limit - sum(s["n"] for s in live))
            if taken <= 0:
                return 0, entry_id
            stamp = max([at, *(s["at"] for s in live)])
            if await self._write(window.key, found, [*live, {"at": stamp, "n": taken,
                                                             "id": entry_id}]):
                return taken, entry_id
        raise PyMongoError(f"window {window.key!r} kept changing while taking starts")

    async def give_back(self, window: Window, entry_id: str, count: int) -> None:
        """Uncount `count` of the starts recorded under `entry_id` (they did not begin)."""
        for _ in range(ROUNDS):
            found = await self.windows.find_one({"_id": window.key})
            if found is None or not any(s.get("id") == entry_id for s in found["starts"]):
                return  # already gone from the window
            starts = [dict(s, n=s["n"] - count) if s.get("id") == entry_id else s
                      for s in found["starts"]]
            if await self._write(window.key, found, [s for s in starts if s["n"] > 0]):
                return
        raise PyMongoError(f"window {window.key!r} kept changing while giving starts back")

    async def next_slot(self, window: Window, now: datetime) -> datetime | None:
        """Return when `window` next allows a start; None if it does at `now`."""
        found = await self.windows.find_one({"_id": window.key})
        period = window.period // _MICROSECOND
        at = _micros(now)
        live = [] if found is None else [s for s in found["starts"] if s["at"] > at - period]
        total = sum(s["n"] for s in live)
        if total < window.limit:
            return None
        for start in sorted(live, key=lambda s: s["at"]):  # the oldest leave first
            total -= start["n"]
            if total < window.limit:
                return _EPOCH + (int(start["at"]) + period) * _MICROSECOND
        raise AssertionError("unreachable: the counts add up to the total")

    async def _write(self, key: str, found: dict[str, Any] | None,
                     starts: list[dict[str, Any]]) -> bool:
        """Write `starts` if the document is still as read; tell whether it was."""
        if found is None:
            try:
                await self.windows.insert_one({"_id": key, "starts": starts, "version": 1})
            except DuplicateKeyError:
                return False
            return True
        done = await self.windows.update_one({"_id": key, "version": found["version"]},
                                             {"$set": {"starts": starts},
                                              "$inc": {"version": 1}})
        return bool(done.matched_count)
