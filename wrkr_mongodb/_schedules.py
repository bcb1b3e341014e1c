"""Recurring schedules in MongoDB: one document per schedule, its name as `_id`.

    _id       the schedule's name (the `_id` index makes names unique)
    cron, every_us (the interval in microseconds), tz, tid, payload, catch_up
    next, last, version (bumped by every update: what a concurrent update compares)

A firing is a compare-and-set on one document, `{_id: name, next: due}` -> next moved
on, which is atomic on any server: of the apps firing at once, one matches. On a replica
set the items are inserted in the same transaction, so the firing is whole or not at
all. A standalone server has no transactions: there the items are inserted right after,
and if that fails the schedule is put back (best effort); a server lost between the two
writes loses that one firing, never duplicates it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError, PyMongoError

from wrkr.backend import Firing, Message, ScheduleRecord
from wrkr_mongodb._documents import MongoDBSequence, as_utc, new_item_document
from wrkr_mongodb._publishing import MongoDBPublisher
from wrkr_mongodb._transactions import in_transaction

__all__ = ["MongoDBSchedules"]

_MICROSECOND = timedelta(microseconds=1)
_SAVE_ATTEMPTS = 5  # a save lost to a concurrent one reads again; each round one wins


def _definition(record: ScheduleRecord) -> dict[str, Any]:
    every = None if record.every is None else record.every // _MICROSECOND
    return {"cron": record.cron, "every_us": every, "tz": record.tz, "tid": record.tid,
            "payload": record.payload, "catch_up": record.catch_up}


def _record(document: dict[str, Any]) -> ScheduleRecord:
    every = document["every_us"]
    last = document.get("last")
    return ScheduleRecord(
        document["_id"], document["cron"], None if every is None else every * _MICROSECOND,
        document["tz"], document["tid"], bytes(document["payload"]), document["catch_up"],
        as_utc(document["next"]), None if last is None else as_utc(last))


class MongoDBSchedules:
    """The schedules collection, and firings that publish through the items' publisher.

    Args:
        schedules: the schedules collection.
        publisher: the items' publisher (its routes and sequence are shared).
    """

    def __init__(self, schedules: Any, publisher: MongoDBPublisher) -> None:
        self.schedules = schedules
        self.publisher = publisher
        self._sequence = MongoDBSequence()

    async def all(self) -> list[ScheduleRecord]:
        """Return every schedule, by name."""
        return [_record(document) async for document in self.schedules.find({}).sort("_id")]

    async def save(self, record: ScheduleRecord, now: datetime) -> bool:
        """Insert or update (compare-and-set on `version`); see `Store.save_schedule`."""
        for _ in range(_SAVE_ATTEMPTS):
            found = await self.schedules.find_one({"_id": record.name})
            if found is None:
                if await self._insert(record, now):
                    return True
                continue
            stored = _record(found)
            if stored.same_definition(record):
                return False
            change = _definition(record) | {"updated": now, "version": found["version"] + 1}
            if not stored.same_timing(record):
                change["next"] = record.next
            done = await self.schedules.update_one(
                {"_id": record.name, "version": found["version"]}, {"$set": change})
            if done.matched_count:
                return True
        raise PyMongoError(f"schedule {record.name!r} kept changing while being saved")

    async def _insert(self, record: ScheduleRecord, now: datetime) -> bool:
        document = {"_id": record.name, **_definition(record), "next": record.next,
                    "last": None, "updated": now, "version": 1}
        try:
            await self.schedules.insert_one(document)
        except DuplicateKeyError:
            return False  # another process inserted it first: compare with theirs
        return True

    async def remove(self, name: str) -> bool:
        """Delete a schedule; tell whether there was one."""
        return bool((await self.schedules.delete_one({"_id": name})).deleted_count)

    async def fire(self, firing: Firing, now: datetime) -> list[str] | None:
        """Carry out `firing` once or not at all; see `Store.fire_schedule`."""
        documents = await self._documents(firing.messages, now)
        client = self.publisher.client
        if client is not None:
            return await in_transaction(
                client, lambda session: self._fire_in(firing, documents, now, session))
        return await self._fire_standalone(firing, documents, now)

    async def _fire_in(self, firing: Firing, documents: list[dict[str, Any]], now: datetime,
                       session: Any) -> list[str] | None:
        if not await self._take(firing, now, session):
            return None
        if documents:
            await self.publisher.items.insert_many(documents, session=session)
        return [document["_id"] for document in documents]

    async def _fire_standalone(self, firing: Firing, documents: list[dict[str, Any]],
                               now: datetime) -> list[str] | None:
        found = await self.schedules.find_one({"_id": firing.schedule, "next": firing.due})
        if found is None or not await self._take(firing, now):
            return None
        try:
            if documents:
                await self.publisher.items.insert_many(documents)
        except PyMongoError:
            await self.schedules.update_one(  # put the firing back for the next try
                {"_id": firing.schedule, "next": firing.next},
                {"$set": {"next": firing.due, "last": found.get("last")}})
            raise
        return [document["_id"] for document in documents]

    async def _take(self, firing: Firing, now: datetime, session: Any = None) -> bool:
        change: dict[str, Any] = {"next": firing.next, "updated": now}
        if firing.fired is not None:
            change["last"] = firing.fired
        done = await self.schedules.update_one(
            {"_id": firing.schedule, "next": firing.due}, {"$set": change}, session=session)
        return bool(done.matched_count)

    async def _documents(self, messages: tuple[Message, ...],
                         now: datetime) -> list[dict[str, Any]]:
        routes = await self.publisher.routes.fresh()
        return [new_item_document(message, queue, self._sequence.take(), now)
                for message in messages for queue in routes.lookup(message.name)]

