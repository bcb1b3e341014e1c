"""MongoDBBackend: wrkr on MongoDB, through PyMongo's own async API.

URL:
    ``mongodb://[user:password@]host[:port][,host2...]/[database][?options]`` or
    ``mongodb+srv://...``; the database defaults to ``wrkr``. Options in the query string
    go to the driver (``replicaSet``, ``tls``, ``serverSelectionTimeoutMS``...; wrkr
    defaults the last to 5 s). Keyword options of `MongoDBBackend` pass through
    `Wrkr.from_url(url, **options)`. Motor is past its end of life and not used.

Capabilities:
    delay, wildcards, query, cancel, once_every, archive, failed (not transactional).

Storage (collections ``<prefix>items`` and ``<prefix>subscriptions``, prefix ``wrkr_``):
    subscriptions   one document per (queue, pattern); publishers route through an
                    in-memory table, reloaded at once after a subscribe / unsubscribe
                    through this backend and at most `subscriptions_ttl` seconds after
                    one made elsewhere (so publishing costs no query per event).
    items           one document per (event, queue); see `_documents` for the fields and
                    indexes. A claim is one `find_one_and_update` (a batch: a find, an
                    `update_many` guarded by the same filter, a read-back) seeking the
                    (queue, state, due, seq) index. The lease end fences ack / nack / fail /
                    release (a new claim always ends later than the one before): a
                    worker whose lease ran out and whose item was claimed again gets
                    `LeaseLost`.

Batches: on a replica set or sharded cluster (asked once at connect), a publish that
creates more than one item inserts them all in one transaction, `once_every` dedupe
included: stored whole or not at all (transient failures retried a few times; a commit
whose outcome stays unknown raises `BackendUnavailable` saying so). A single item is one
atomic insert, no transaction. A standalone server has no transactions: there a batch
that fails midway is undone as far as possible, and a server lost mid-batch can leave
part of it stored. Nothing else uses transactions.

Wake-ups: while some consumer is idle, a change stream (replica sets) wakes it at once
on new or returned items; busy consumers claim without waiting, so the stream closes
after a few seconds without idle consumers. Without change streams, consumers poll
adaptively (fast after work, backing off to `poll_max` while idle). Either way an idle
consumer sleeps no longer than until the next due time or lease end.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self

from wrkr.backend import (
    Backend,
    Capability,
    Delivery,
    ErrorRecord,
    Item,
    ItemFilter,
    LeaseLost,
    Message,
    NotStarted,
    State,
)
from wrkr_mongodb._claims import Claimer, Receipt
from wrkr_mongodb._connection import DEFAULT_URL, ServerAddress
from wrkr_mongodb._consuming import DeliveryLoop, Pacer
from wrkr_mongodb._documents import (
    ITEM_INDEXES,
    NOT_LEASED,
    error_document,
    stored_due,
    subscription_id,
)
from wrkr_mongodb._errors import ErrorTranslator
from wrkr_mongodb._inspection import Inspector
from wrkr_mongodb._publishing import Publisher
from wrkr_mongodb._routing import SubscriptionCache
from wrkr_mongodb._transactions import supports_transactions
from wrkr_mongodb._wakeups import ITEM_CHANGES, ChangeWatcher, Wakeups

logger = logging.getLogger("wrkr.mongodb")


class MongoDBBackend(Backend):
    """Stores wrkr's subscriptions and items in MongoDB (PyMongo's `AsyncMongoClient`).

    Args:
        url: the server's URL (default ``mongodb://localhost:27017/wrkr``).
        client: an existing `AsyncMongoClient` (or a stand-in such as the in-process
            mock) to use instead of building one; the backend does not close it.
        database: the database; default: the URL's, else ``wrkr``.
        prefix: prepended to the collection names.
        subscriptions_ttl: seconds a routing table is trusted (others' changes show then).
        poll_min: seconds between claims when polling, right after work.
        poll_max: seconds between claims when polling, once idle for a while.
        idle_max: longest sleep with a change stream (a safety net, not the wake-up).
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.DELAY, Capability.WILDCARDS, Capability.QUERY, Capability.CANCEL,
        Capability.ONCE_EVERY, Capability.ARCHIVE, Capability.FAILED,
    })

    def __init__(self, url: str | None = None, *, client: Any = None,
                 database: str | None = None, prefix: str = "wrkr_",
                 subscriptions_ttl: float = 1.0, poll_min: float = 0.02,
                 poll_max: float = 1.0, idle_max: float = 30.0) -> None:
        self.address = ServerAddress.parse(url or DEFAULT_URL, database)
        self.errors = ErrorTranslator(self.address.where, self.address.secrets)
        self.prefix = prefix
        self.subscriptions_ttl = subscriptions_ttl
        self.poll_min, self.poll_max, self.idle_max = poll_min, poll_max, idle_max
        self._given_client = client
        self._client: Any = None
        self._wakeups = Wakeups()
        self._watchers: list[ChangeWatcher] = []
        self._items: Any = None
        self._subscriptions: Any = None
        self._routes: SubscriptionCache | None = None
        self._held: set[Receipt] = set()  # claimed by this backend, not yet settled
        self._publisher: Publisher | None = None
        self._inspector: Inspector | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build a backend for ``mongodb://`` and ``mongodb+srv://`` URLs."""
        return cls(url, **options)

    def __repr__(self) -> str:
        return f"MongoDBBackend({self.address.where!r})"

    # -- lifecycle -------------------------------------------------------------

    async def connect(self) -> None:
        """Reach the server, create missing indexes, follow the change streams."""
        self._client = self._given_client or self.address.client()
        database = self._client[self.address.database]
        self._items = database[f"{self.prefix}items"]
        self._subscriptions = database[f"{self.prefix}subscriptions"]
        self._routes = SubscriptionCache(self._subscriptions, self.subscriptions_ttl)
        self._inspector = Inspector(self._items)
        try:
            with self.errors.unavailable("creating indexes"):
                for keys, options in ITEM_INDEXES:
                    await self._items.create_index(keys, **options)
                transactional = await supports_transactions(self._client)
            self._publisher = Publisher(self._items, self._routes,
                                        self._client if transactional else None)
        except BaseException:
            await self.disconnect()  # the failed open is not counted: close what it opened
            raise
        self._watch()

    def _watch(self) -> None:
        watcher = ChangeWatcher(self._items, ITEM_CHANGES, self._wakeups.on_item_change,
                                self._on_item_stream)
        self._wakeups.on_demand = watcher.demand
        self._watchers = [watcher]

    def _on_item_stream(self, live: bool) -> None:
        self._wakeups.streaming = live
        self._wakeups.notify(None)  # events may have been missed while it was down

    async def disconnect(self) -> None:
        """Give back unsettled deliveries, end delivery loops, close the client we built."""
        await self._abandon_held()
        for watcher in self._watchers:
            await watcher.stop()
        self._watchers = []
        if self._client is not None and self._given_client is None:
            with contextlib.suppress(Exception):
                await self._client.close()
        self._client = self._items = self._subscriptions = None
        self._routes, self._publisher, self._inspector = None, None, None
        self._wakeups.notify(None)  # idle delivery loops see the backend closed and end

    async def _abandon_held(self) -> None:
        # As if this process had died, without waiting for the leases to run out.
        held, self._held = list(self._held), set()
        if held:
            with contextlib.suppress(Exception):
                await self._items.update_many(
                    {"$or": [receipt.fence() for receipt in held]},
                    {"$set": {"lease": NOT_LEASED}})

    def _collection(self) -> Any:
        if self._items is None:
            raise NotStarted(f"{self!r} is not open: call open() (or start the app) first")
        return self._items

    # -- subscriptions -----------------------------------------------------------

    async def subscribe(self, queue: str, pattern: str) -> None:
        """Store the subscription (one document per pair: subscribing twice is once)."""
        self._collection()
        document = {"_id": subscription_id(queue, pattern), "queue": queue, "pattern": pattern,
                    "created": self.now()}
        with self.errors.unavailable(f"subscribing {queue!r} to {pattern!r}"):
            await self._subscriptions.update_one(
                {"_id": document["_id"]}, {"$setOnInsert": document}, upsert=True)
        self._routing().invalidate()

    async def unsubscribe(self, queue: str, pattern: str) -> None:
        """Delete the subscription; items already queued stay."""
        self._collection()
        with self.errors.unavailable(f"unsubscribing {queue!r} from {pattern!r}"):
            await self._subscriptions.delete_one({"_id": subscription_id(queue, pattern)})
        self._routing().invalidate()

    async def queues_for(self, name: str) -> list[str]:
        """Return the queues `name` reaches, from the cached routing table."""
        self._collection()
        with self.errors.unavailable("reading subscriptions"):
            return await self._routing().queues_for(name)

    def _routing(self) -> SubscriptionCache:
        if self._routes is None:
            raise NotStarted(f"{self!r} is not open: call open() (or start the app) first")
        return self._routes

    # -- publishing ----------------------------------------------------------------

    async def enqueue(self, messages: Sequence[Message], *, connection: Any = None) -> list[str]:
        """Store one item per (message, matching queue); `once_every` ones atomically."""
        self._collection()
        assert self._publisher is not None
        with self.errors.unavailable(f"publishing {len(messages)} event(s)"):
            documents = await self._publisher.enqueue(messages, self.now())
        for queue in {document["queue"] for document in documents}:
            self._wakeups.notify(queue)
        return [document["_id"] for document in documents]

    # -- consuming ---------------------------------------------------------------------

    def deliveries(
        self, queue: str, *, worker: str, lease: timedelta, prefetch: int
    ) -> AsyncGenerator[Delivery, None]:
        """Yield `queue`'s items as they fall due, claimed for `worker` (batches of `prefetch`)."""
        loop = DeliveryLoop(Claimer(self._collection(), queue, worker, lease), self._wakeups,
                            Pacer(self.poll_min, self.poll_max, self.idle_max), self.errors,
                            self.now, self.release, self._held, lambda: self._items is not None)
        return loop.run(prefetch)

    async def ack(
        self, delivery: Delivery, *, keep: bool = False, expires: datetime | None = None
    ) -> None:
        """Delete the item, or with `keep` mark it done (purged by the TTL index at `expires`)."""
        fence = self._unhold(delivery).fence()
        with self.errors.unavailable(f"acking item {delivery.item.id}"):
            if not keep:
                result = await self._collection().delete_one(fence)
                return _check_settled(delivery, result.deleted_count)
            done: dict[str, Any] = {"state": State.DONE.value, "finished": self.now()}
            if expires is not None:
                done["expires"] = expires
            result = await self._collection().update_one(fence, {"$set": done})
        _check_settled(delivery, result.matched_count)

    async def nack(self, delivery: Delivery, *, due: datetime, error: ErrorRecord) -> None:
        """Make the item claimable again at `due`, `error` appended to its history."""
        await self._settle(delivery, "nacking", {
            "$set": {"due": stored_due(due, self.now()), "lease": NOT_LEASED},
            "$push": {"errors": error_document(error)}})

    async def fail(self, delivery: Delivery, *, error: ErrorRecord) -> None:
        """Park the item as failed, `error` appended to its history."""
        await self._settle(delivery, "failing", {
            "$set": {"state": State.FAILED.value, "finished": self.now()},
            "$push": {"errors": error_document(error)}})

    async def release(self, delivery: Delivery) -> None:
        """Give the item back, claimable at once, this attempt not counted."""
        await self._settle(delivery, "releasing", {
            "$set": {"lease": NOT_LEASED}, "$inc": {"attempts": -1}})

    async def _settle(self, delivery: Delivery, doing: str, update: dict[str, Any]) -> None:
        with self.errors.unavailable(f"{doing} item {delivery.item.id}"):
            result = await self._collection().update_one(self._unhold(delivery).fence(), update)
        _check_settled(delivery, result.matched_count)
        if "lease" in update["$set"]:
            self._wakeups.notify(delivery.item.queue)

    def _unhold(self, delivery: Delivery) -> Receipt:
        receipt = _receipt(delivery)
        self._held.discard(receipt)
        return receipt

    # -- inspection and control ------------------------------------------------------

    def _inspection(self) -> Inspector:
        self._collection()
        assert self._inspector is not None
        return self._inspector

    async def items(self, where: ItemFilter) -> list[Item]:
        """Return the items that match, oldest due first (expired archives hidden)."""
        with self.errors.unavailable("listing items"):
            return await self._inspection().find(where, self.now())

    async def get(self, item_id: str) -> Item:
        """Return one item by id; `ItemNotFound` if deleted, expired or never stored."""
        with self.errors.unavailable(f"reading item {item_id!r}"):
            return await self._inspection().get(item_id, self.now())

    async def cancel(self, where: ItemFilter) -> int:
        """Delete the pending (scheduled or ready) items that match; return how many."""
        with self.errors.unavailable("cancelling items"):
            return await self._inspection().cancel(where, self.now())

    async def retry(self, item_id: str) -> None:
        """Move a failed item back to ready now, attempts reset, errors kept."""
        with self.errors.unavailable(f"retrying item {item_id!r}"):
            queue = await self._inspection().retry(item_id, self.now())
        self._wakeups.notify(queue)

    async def counts(self) -> dict[str, dict[State, int]]:
        """Return, per queue, how many items are in each state."""
        with self.errors.unavailable("counting items"):
            return await self._inspection().counts(self.now())


def _receipt(delivery: Delivery) -> Receipt:
    receipt = delivery.receipt
    if not isinstance(receipt, Receipt):
        raise TypeError(f"not a MongoDB delivery receipt: {type(receipt).__name__}")
    return receipt


def _check_settled(delivery: Delivery, matched: int) -> None:
    if matched == 0:
        raise LeaseLost(f"item {delivery.item.id} on queue {delivery.item.queue!r}: the lease "
                        "ran out and the item was claimed again (or removed)")
