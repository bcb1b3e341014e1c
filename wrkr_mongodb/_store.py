"""`MongoDBStore`: the MongoDB backend's `Store`, over PyMongo's async API.

Each primitive is one round trip where the driver allows it: a claim of one item is a
`find_one_and_update`, a batch a find and an `update_many` (`_claims`); renewing a batch
of leases is one `update_many`, settling a batch one `bulk_write` (`_settlements`); the
next due time is one aggregation. While some consumer sleeps, a change stream (replica
sets) wakes this process's consumers on other processes' new or returned items.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

from pymongo.errors import DuplicateKeyError

from wrkr.backend import (
    Capability,
    Claim,
    Clock,
    Delivery,
    Firing,
    FlowTransaction,
    Item,
    ItemFilter,
    Message,
    NotStarted,
    QueueOptions,
    Rate,
    ScheduleRecord,
    Settle,
    Settlement,
    State,
    Store,
    Window,
)
from wrkr_mongodb._claims import MongoDBClaimer, MongoDBReceipt
from wrkr_mongodb._connection import MongoDBAddress
from wrkr_mongodb._documents import ITEM_INDEXES, subscription_id
from wrkr_mongodb._errors import MongoDBErrors
from wrkr_mongodb._exclusive import MongoDBTidLocks
from wrkr_mongodb._flows import MongoDBFlows
from wrkr_mongodb._inspection import MongoDBInspector
from wrkr_mongodb._publishing import MongoDBPublisher
from wrkr_mongodb._routes import MongoDBRoutes
from wrkr_mongodb._schedules import MongoDBSchedules
from wrkr_mongodb._settlements import MongoDBSettler
from wrkr_mongodb._transactions import supports_transactions
from wrkr_mongodb._wakeups import MongoDBChangeStream, woken_queue
from wrkr_mongodb._windows import MongoDBWindows

_FINAL = (Settle.ACK, Settle.FAIL)  # settlements that return nothing to a queue
T = TypeVar("T")
_MICROSECOND = timedelta(microseconds=1)


class MongoDBConnection:
    """What one connection to the server holds: the client and the collections' helpers."""

    def __init__(self, client: Any, database: str, prefix: str, routes_ttl: float,
                 clock: Clock) -> None:
        self.client = client
        db = client[database]
        self.items, self.subscriptions = db[f"{prefix}items"], db[f"{prefix}subscriptions"]
        self.routes = MongoDBRoutes(self.subscriptions, routes_ttl)
        self.claimer, self.settler = MongoDBClaimer(self.items), MongoDBSettler(self.items)
        self.inspector = MongoDBInspector(self.items)
        self.publisher = MongoDBPublisher(self.items, self.routes)
        self.schedule_book = MongoDBSchedules(db[f"{prefix}schedules"], self.publisher)
        self.flows = MongoDBFlows(db[f"{prefix}flows"], self.items, self.routes, clock)
        # Coordination: queue options, tid locks (exclusive), sliding windows (rate)
        self.queues = db[f"{prefix}queues"]
        self.tid_locks = MongoDBTidLocks(self.items, db[f"{prefix}tids"], self.claimer)
        self.windows = MongoDBWindows(db[f"{prefix}windows"], clock)


class MongoDBStore(Store[MongoDBReceipt]):
    """Keeps subscriptions and items in two collections of one database.

    Args:
        address: where to connect (checked already).
        client: an existing `AsyncMongoClient` (or the in-process mock) to use instead
            of building one; the store does not close it.
        prefix: prepended to the collection names.
        subscriptions_ttl: seconds a routing table is trusted (0: read for every publish;
            more saves that query, and others' changes show that much later).
        poll_min, poll_max: seconds between claims when polling (see `Store`).
        idle_max: longest sleep with a live change stream (a safety net).
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.DELAY, Capability.WILDCARDS, Capability.QUERY, Capability.CANCEL,
        Capability.ONCE_EVERY, Capability.ARCHIVE, Capability.FAILED,
        Capability.SCHEDULES, Capability.FLOWS, Capability.EXCLUSIVE, Capability.RATE,
        Capability.LINEAGE, Capability.TIMED_LEASES,
    })

    def __init__(self, address: MongoDBAddress, *, client: Any = None, prefix: str = "wrkr_",
                 subscriptions_ttl: float = 0.0, poll_min: float = 0.02,
                 poll_max: float = 1.0, idle_max: float = 30.0) -> None:
        self.address = address
        self.errors = MongoDBErrors(address.where, address.url)
        self.prefix, self.subscriptions_ttl = prefix, subscriptions_ttl
        self.poll_min, self.poll_max, self.poll_interval = poll_min, poll_max, idle_max
        self._given_client = client
        self._open: MongoDBConnection | None = None
        self._stream: MongoDBChangeStream | None = None
        self._live = False
        self._idle = 0
        self._exclusive: set[str] = set()  # queues whose settlements free a tid lock

    def __repr__(self) -> str:
        return f"MongoDBStore({self.errors.where!r})"

    # -- lifecycle ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Reach the server and create missing indexes (a new client after a disconnect)."""
        client = self._given_client or self.address.client()
        opened = MongoDBConnection(client, self.address.database, self.prefix,
                                   self.subscriptions_ttl, self.clock)
        try:
            with self.errors.unavailable("creating indexes"):
                for keys, options in ITEM_INDEXES:
                    await opened.items.create_index(keys, **options)
                if await supports_transactions(client):
                    opened.publisher.client = opened.flows.client = client
        except BaseException:
            await self._close_client(client)
            raise
        self._open = opened
        self._stream = MongoDBChangeStream(opened.items, self._changed, self._streaming)
        if self._idle:
            self._stream.demand(True)

    async def disconnect(self) -> None:
        """Stop the change stream and close the client this store built."""
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.stop()
        opened, self._open = self._open, None
        if opened is not None:
            await self._close_client(opened.client)

    async def _close_client(self, client: Any) -> None:
        if client is not self._given_client:
            with contextlib.suppress(Exception):  # closing what may be lost already
                await client.close()

    def _connection(self) -> MongoDBConnection:
        if self._open is None:
            raise NotStarted(f"{self!r} is not connected: open the backend first")
        return self._open

    # -- wake-ups ----------------------------------------------------------------------

    @property
    def wakes_live(self) -> bool:
        """Tell whether the change stream is open now."""
        return self._live

    def idle(self, queue: str, waiting: bool) -> None:
        """Keep the change stream open while some consumer sleeps."""
        self._idle += 1 if waiting else -1
        if self._stream is not None and self._idle == (1 if waiting else 0):
            self._stream.demand(waiting)

    def _changed(self, change: dict[str, Any]) -> None:
        self.notify(woken_queue(change))

    def _streaming(self, live: bool) -> None:
        self._live = live
        self.notify(None)  # changes may have been missed while it was down

    # -- subscriptions -----------------------------------------------------------------

    async def subscribe(self, queue: str, pattern: str) -> None:
        """Store the subscription (one document per pair: subscribing twice is once)."""
        opened = self._connection()
        document = {"_id": subscription_id(queue, pattern), "queue": queue, "pattern": pattern,
                    "created": self.clock.now()}
        with self.errors.unavailable(f"subscribing {queue!r} to {pattern!r}"):
            await opened.subscriptions.update_one(
                {"_id": document["_id"]}, {"$setOnInsert": document}, upsert=True)
        opened.routes.invalidate()

    async def unsubscribe(self, queue: str, pattern: str) -> None:
        """Delete the subscription; items already queued stay."""
        opened = self._connection()
        with self.errors.unavailable(f"unsubscribing {queue!r} from {pattern!r}"):
            await opened.subscriptions.delete_one({"_id": subscription_id(queue, pattern)})
        opened.routes.invalidate()

    async def queues_for(self, name: str) -> list[str]:
        """Return the queues `name` reaches, from the cached routing table."""
        with self.errors.unavailable("reading subscriptions"):
            return (await self._connection().routes.fresh()).lookup(name)

    async def subscriptions(self) -> list[tuple[str, str]]:
        """Return every (queue, pattern), read from the collection."""
        cursor = self._connection().subscriptions.find({}, {"_id": 0, "queue": 1, "pattern": 1})
        with self.errors.unavailable("reading subscriptions"):
            return sorted([(str(row["queue"]), str(row["pattern"])) async for row in cursor])

    # -- items ---------------------------------------------------------------------------

    async def put(self, messages: Sequence[Message], *, connection: Any = None) -> list[str]:
        """Store one item per (message, matching queue); `once_every` ones atomically."""
        publisher = self._connection().publisher
        with self.errors.unavailable(f"publishing {len(messages)} event(s)"):
            documents = await publisher.enqueue(messages, self.clock.now())
        for queue in {document["queue"] for document in documents}:
            self.notify(queue)
        return [document["_id"] for document in documents]

    async def claim(self, claim: Claim) -> list[Delivery[MongoDBReceipt]]:
        """Claim due items; see `Store.claim` and `_claims`."""
        opened = self._connection()
        with self.errors.unavailable(f"claiming from queue {claim.queue!r}"):
            if claim.window is None:
                return await self._claim(opened, claim)
            room, entry = await opened.windows.take(claim.window, claim.limit, claim.now)
            if not room:
                return []
            claimed = await self._claim(opened, claim._replace(limit=room))
            if len(claimed) < room:  # reserved, not started: the window forgets them
                await opened.windows.give_back(claim.window, entry, room - len(claimed))
            return claimed

    async def _claim(self, opened: MongoDBConnection,
                     claim: Claim) -> list[Delivery[MongoDBReceipt]]:
        if claim.exclusive:
            return await opened.tid_locks.claim(claim)
        return await opened.claimer.claim(claim)

    async def renew(self, deliveries: Sequence[Delivery[MongoDBReceipt]],
                    until: datetime) -> list[bool]:
        """Extend leases in one `update_many`; see `Store.renew`."""
        with self.errors.unavailable(f"renewing {len(deliveries)} lease(s)"):
            exclusive = self._in_exclusive(deliveries)
            if exclusive:  # the locks first: a tid must never be free while its item is held
                await self._connection().tid_locks.renew(exclusive, until, self.clock.now())
            return await self._connection().claimer.renew(
                [delivery.receipt for delivery in deliveries], until, self.clock.now())

    async def settle(self, settlements: Sequence[Settlement[MongoDBReceipt]]) -> list[bool]:
        """Carry out settlements in one `bulk_write`; see `Store.settle`."""
        if not settlements:
            return []
        with self.errors.unavailable(f"settling {len(settlements)} item(s)"):
            held = await self._connection().settler.settle(settlements, self.clock.now())
            exclusive = self._in_exclusive([s.delivery for s in settlements])
            if exclusive:  # after the items' writes: the next of a tid may start now
                await self._connection().tid_locks.release(exclusive)
        for queue in {s.delivery.item.queue for s, ok in zip(settlements, held, strict=True)
                      if ok and s.how not in _FINAL}:
            self.notify(queue)
        return held

    async def next_due(self, queue: str, now: datetime) -> datetime | None:
        """Return the next due time or lease end of `queue`; see `Store.next_due`."""
        with self.errors.unavailable(f"waiting on queue {queue!r}"):
            return await self._connection().claimer.next_due(queue, now)

    def _in_exclusive(self, deliveries: Sequence[Delivery[MongoDBReceipt]],
                      ) -> list[Delivery[MongoDBReceipt]]:
        if not self._exclusive:
            return []
        return [d for d in deliveries if d.item.queue in self._exclusive]

    # -- coordination --------------------------------------------------------------------

    async def configure(self, queue: str, options: QueueOptions) -> QueueOptions:
        """Store `options` with `queue` unless it has some; see `Store.configure`.

        One document per queue: the first upsert inserts it, every later one (or a
        concurrent one, which collides on `_id`) leaves it and reads what is stored.
        """
        rate = options.rate
        document = {"_id": queue, "exclusive": options.exclusive,
                    "rate_limit": None if rate is None else rate.limit,
                    "rate_period_us": None if rate is None else rate.period // _MICROSECOND}
        queues = self._connection().queues
        with self.errors.unavailable(f"configuring queue {queue!r}"):
            with contextlib.suppress(DuplicateKeyError):
                await queues.update_one({"_id": queue}, {"$setOnInsert": document}, upsert=True)
            found = await queues.find_one({"_id": queue})
        limit = found["rate_limit"]
        stored = QueueOptions(bool(found["exclusive"]), None if limit is None else
                              Rate(limit, found["rate_period_us"] * _MICROSECOND))
        if stored.exclusive and not self._exclusive:
            # Made by the first exclusive queue: without one, no item pays for them
            with self.errors.unavailable("creating the indexes of exclusive queues"):
                await self._connection().tid_locks.create_indexes()
        if stored.exclusive:
            self._exclusive.add(queue)
        return stored

    async def take_slots(self, window: Window, wanted: int, now: datetime) -> int:
        """Record up to `wanted` starts by compare-and-set; see `Store.take_slots`."""
        with self.errors.unavailable(f"taking starts of {window.key!r}"):
            taken, _ = await self._connection().windows.take(window, wanted, now)
        return taken

    async def next_slot(self, window: Window, now: datetime) -> datetime | None:
        """Return when `window` next has room; see `Store.next_slot`."""
        with self.errors.unavailable(f"reading the window {window.key!r}"):
            return await self._connection().windows.next_slot(window, now)

    # -- inspection and control ------------------------------------------------------------

    async def items(self, where: ItemFilter) -> list[Item]:
        """Return the items that match, oldest due first (expired archives hidden)."""
        with self.errors.unavailable("listing items"):
            return await self._connection().inspector.find(where, self.clock.now())

    async def get(self, item_id: str) -> Item:
        """Return one item by id; `ItemNotFound` if deleted, expired or never stored."""
        with self.errors.unavailable(f"reading item {item_id!r}"):
            return await self._connection().inspector.get(item_id, self.clock.now())

    async def cancel(self, where: ItemFilter) -> int:
        """Delete the pending (scheduled or ready) items that match; return how many."""
        with self.errors.unavailable("cancelling items"):
            return await self._connection().inspector.cancel(where, self.clock.now())

    async def retry(self, item_id: str) -> str:
        """Move a failed item back to ready now, attempts reset, errors kept."""
        with self.errors.unavailable(f"retrying item {item_id!r}"):
            queue = await self._connection().inspector.retry(item_id, self.clock.now())
        self.notify(queue)
        return queue

    async def counts(self) -> dict[str, dict[State, int]]:
        """Return, per queue, how many items are in each state."""
        with self.errors.unavailable("counting items"):
            return await self._connection().inspector.counts(self.clock.now())

    async def purge(self, queue: str | None, state: State, older_than: datetime | None) -> int:
        """Delete finished `state` items of `queue` finished before `older_than`."""
        with self.errors.unavailable(f"purging {state} items"):
            return await self._connection().inspector.purge(queue, state, older_than)

    # -- recurring schedules ---------------------------------------------------------------

    async def schedules(self) -> list[ScheduleRecord]:
        """Return every schedule, by name; see `Store.schedules`."""
        with self.errors.unavailable("reading schedules"):
            return await self._connection().schedule_book.all()

    async def save_schedule(self, record: ScheduleRecord) -> bool:
        """Insert or update a schedule; see `Store.save_schedule`."""
        with self.errors.unavailable(f"saving schedule {record.name!r}"):
            return await self._connection().schedule_book.save(record, self.clock.now())

    async def remove_schedule(self, name: str) -> bool:
        """Delete a schedule; see `Store.remove_schedule`."""
        with self.errors.unavailable(f"removing schedule {name!r}"):
            return await self._connection().schedule_book.remove(name)

    async def fire_schedule(self, firing: Firing) -> list[str] | None:
        """Carry out a firing once or not at all; see `Store.fire_schedule`."""
        with self.errors.unavailable(f"firing schedule {firing.schedule!r}"):
            ids = await self._connection().schedule_book.fire(firing, self.clock.now())
        if ids:
            self.notify(None)
        return ids

    # -- workflows -----------------------------------------------------------------------

    async def flow_transaction(
        self, flow_id: str, work: Callable[[FlowTransaction[MongoDBReceipt]], Awaitable[T]]
    ) -> T:
        """Run `work` as one change to the flow; see `Store.flow_transaction` and `_flows`."""
        with self.errors.unavailable(f"changing flow {flow_id!r}"):
            result, queues = await self._connection().flows.run(flow_id, work)
        for queue in queues:
            self.notify(queue)
        return result

    async def flow_document(self, flow_id: str) -> bytes | None:
        """Return the flow's document; see `Store.flow_document`."""
        with self.errors.unavailable(f"reading flow {flow_id!r}"):
            return await self._connection().flows.document(flow_id)
