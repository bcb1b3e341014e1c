"""The shape of wrkr's MongoDB documents, their indexes, and the item <-> document mapping.

Items live in one collection, one document per (event, queue):

    _id       the item id (32 hex characters)
    queue, name, tid, payload (BSON binary, as encoded by the core)
    due       when the item becomes claimable; stored rounded *up* to the millisecond so
              that BSON's millisecond precision can never make an item claimable early
    seq       the publisher's microsecond sequence: FIFO among items due together
    state     "queued" (scheduled, ready or processing), "done" or "failed"
    lease     until when a worker holds the item; `NOT_LEASED` (a past date) when none
    claim     the token of the claim that last took the item: with `_id`, what fences a
              delivery's renew and settlement (`MongoDBReceipt`)
    settled   which settlement last changed the item (a batch reads back what it did)
    worker, attempts, errors (one record per failed attempt), created, finished
    expires   only on archived items: the TTL index purges them after this time
    once      only on pending `once_every` items: the unique partial index makes the
              (queue, name, tid) dedupe atomic across publishers
    flow      only on a flow's items: the flow's id (see `_flows`)
    root      the first item of the chain of handlers that published it (its own `_id` for
              a root; absent on items stored before lineage, which are roots)
    parent    only on items a handler published: the id of the item it was handling
    trace     only on traced items: the publisher's W3C traceparent

Whether a queued item is scheduled, ready or processing follows from `due` and
`lease` at the time of asking, so claiming needs no state change but the lease.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING

from wrkr.backend import ErrorRecord, Item, ItemFilter, Message, State, new_item_id

QUEUED = "queued"
NOT_LEASED = datetime(1970, 1, 1, tzinfo=UTC)
"""What `lease` holds when nobody holds the item: a date every `now` is past."""

CLAIM_INDEX = "wrkr_claim"
IndexSpec = tuple[list[tuple[str, int]], dict[str, Any]]

ITEM_INDEXES: list[IndexSpec] = [
    # The claim: equality on queue and state, range on due, then FIFO by seq.
    ([("queue", ASCENDING), ("state", ASCENDING), ("due", ASCENDING), ("seq", ASCENDING)],
     {"name": CLAIM_INDEX}),
    ([("queue", ASCENDING), ("name", ASCENDING), ("tid", ASCENDING)],
     {"name": "wrkr_once_every", "unique": True,
      "partialFilterExpression": {"once": {"$exists": True}}}),
    ([("name", ASCENDING), ("tid", ASCENDING)], {"name": "wrkr_name_tid"}),
    ([("root", ASCENDING)], {"name": "wrkr_root"}),  # lineage(): one tree's items
    # Only archived items carry `expires`: the rest stay out of the TTL index.
    ([("expires", ASCENDING)], {"name": "wrkr_retention", "expireAfterSeconds": 0,
                                "partialFilterExpression": {"expires": {"$exists": True}}}),
]
"""(keys, options) of each index; created one by one, as `create_indexes` of the
in-process mock drops `partialFilterExpression`."""


def subscription_id(queue: str, pattern: str) -> str:
    """Return the `_id` of a subscription: one document per (queue, pattern), by design."""
    return f"{queue} {pattern}"  # neither may contain a space


def ceil_ms(moment: datetime) -> datetime:
    """Round up to BSON's millisecond precision (a due time may only move later)."""
    extra = moment.microsecond % 1000
    return moment if extra == 0 else moment + timedelta(microseconds=1000 - extra)


def floor_ms(moment: datetime) -> datetime:
    """Round down to BSON's millisecond precision (what the server will store)."""
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def stored_due(due: datetime, now: datetime) -> datetime:
    """Return `due` at millisecond precision, never earlier than it was unless already past.

    A future due time is rounded up, so that truncation cannot deliver it early; one
    already past is rounded down, so that the item reads as ready at once.
    """
    return floor_ms(due) if due <= now else ceil_ms(due)


def as_utc(moment: datetime) -> datetime:
    """Return `moment` in `datetime.UTC` (the driver gives its own fixed-offset zone).

    A naive datetime comes from a client built without ``tz_aware=True``; BSON dates
    are UTC, so it is read as UTC rather than as local time.
    """
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class MongoDBSequence:
    """Strictly increasing microsecond stamps: FIFO without a counter document to update."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def take(self) -> int:
        """Return a stamp greater than every one returned before by this process."""
        with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1000)
            return self._last


def new_item_document(message: Message, queue: str, seq: int,
                      now: datetime) -> dict[str, Any]:
    """Return the document of `message`'s copy for `queue`, ready to insert at `now`."""
    document: dict[str, Any] = {
        "_id": new_item_id(), "queue": queue, "name": message.name, "tid": message.tid,
        "payload": message.payload, "due": stored_due(message.due, now), "seq": seq,
        "state": QUEUED, "lease": NOT_LEASED, "worker": None,
        "attempts": 0, "errors": [], "created": message.created,
    }
    if message.dedupe:
        document["once"] = True
    document["root"] = message.root or document["_id"]
    if message.parent is not None:
        document["parent"] = message.parent
    if message.trace is not None:
        document["trace"] = message.trace
    return document


def error_document(error: ErrorRecord) -> dict[str, Any]:
    """Return `error` as stored: its time as a BSON date, not a string."""
    stored: dict[str, Any] = {"at": error.at, "attempt": error.attempt, "type": error.type,
                              "message": error.message}
    if error.traceback is not None:
        stored["traceback"] = error.traceback
    return stored


def item_from_document(document: dict[str, Any], now: datetime) -> Item:
    """Rebuild the `Item` a document stands for, its state as of `now`."""
    finished = document.get("finished")
    return Item(
        id=document["_id"], queue=document["queue"], name=document["name"],
        tid=document.get("tid"), payload=bytes(document["payload"]),
        due=as_utc(document["due"]), created=as_utc(document["created"]),
        state=state_of(document, now), attempts=int(document.get("attempts", 0)),
        errors=ErrorRecord.history(document.get("errors", []), _error_from_document),
        worker=document.get("worker"),
        finished=as_utc(finished) if finished is not None else None,
        flow=document.get("flow"),
        parent=document.get("parent"), root=document.get("root") or document["_id"],
        trace=document.get("trace"),
    )


def _error_from_document(e: dict[str, Any]) -> ErrorRecord:
    return ErrorRecord(as_utc(e["at"]), int(e["attempt"]), str(e["type"]), str(e["message"]),
                       e.get("traceback"))


def state_of(document: dict[str, Any], now: datetime) -> State:
    """Tell what state a document is in at `now`."""
    if document["state"] != QUEUED:
        return State(document["state"])
    if as_utc(document["lease"]) > now:
        return State.PROCESSING
    return State.SCHEDULED if as_utc(document["due"]) > now else State.READY


def claimable(queue: str, now: datetime) -> dict[str, Any]:
    """Return the filter of `queue`'s items a worker may claim at `now`."""
    return {"queue": queue, "state": QUEUED, "due": {"$lte": now}, "lease": {"$lte": now}}


def state_filter(state: State, now: datetime) -> dict[str, Any]:
    """Return the filter of the documents in `state` at `now`."""
    if state is State.SCHEDULED:
        return {"state": QUEUED, "due": {"$gt": now}, "lease": {"$lte": now}}
    if state is State.READY:
        return {"state": QUEUED, "due": {"$lte": now}, "lease": {"$lte": now}}
    if state is State.PROCESSING:
        return {"state": QUEUED, "lease": {"$gt": now}}
    return {"state": str(state)}


def pending_filter(now: datetime) -> dict[str, Any]:
    """Return the filter of scheduled or ready documents (queued and not held) at `now`."""
    return {"state": QUEUED, "lease": {"$lte": now}}


def item_filter(where: ItemFilter, now: datetime) -> dict[str, Any]:
    """Translate `where` to a document filter that also hides expired archived items."""
    query: dict[str, Any] = {key: value for key, value in
                             (("queue", where.queue), ("name", where.name), ("tid", where.tid))
                             if value is not None}
    if where.state is not None:
        query.update(state_filter(where.state, now))
    if where.root is not None:  # an item stored before lineage has no root: it is one
        query["$or"] = [{"root": where.root},
                        {"_id": where.root, "root": {"$exists": False}}]
    # The server sweeps TTL indexes about once a minute: hide what already expired.
    query["$nor"] = [{"expires": {"$lte": now}}]
    return query


def lease_end(now: datetime, until: datetime) -> datetime:
    """Return the lease's end, rounded up to the millisecond, at least 1 ms after `now`."""
    return max(ceil_ms(until), floor_ms(now) + timedelta(milliseconds=1))
