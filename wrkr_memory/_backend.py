"""The in-memory backend: wrkr's embedded default, for tests, examples and one process.

URL:
    ``memory://``        a fresh store of its own.
    ``memory://NAME``    the store called NAME, shared by every backend built from that
                         URL in this process. Nothing outlives the process.
    Option: ``clock=`` (a `ManualClock`, say), as for the constructor.

Capabilities: every one but TRANSACTIONAL (there is no transaction to join):
DELAY, WILDCARDS, QUERY, CANCEL, ONCE_EVERY, ARCHIVE, FAILED.

Storage, in a `MemoryStore` that outlives the backends using it (so a new backend on
the same store is a restarted app, or a second process):
    subscriptions   exact patterns in a dict, wildcards matched in turn, cached per name
    pending items   per queue, ordered by (due time, publishing sequence): a FIFO lane
                    for items arriving in order, a heap for the rest, merged on claim;
                    an item is SCHEDULED until its due time, READY after
    held items      a dict by id of the items processing (leased), done and failed
    archive         kept done items in a heap by expiry, purged lazily on queries and claims
    per item        a slotted entry: the payload bytes as given, the id as an int,
                    times as int microseconds: about 400 bytes with a 200-byte payload

Leases are fenced: every claim draws a new token and a receipt is (entry, token), so
settling a delivery whose item went back to its queue or was claimed again raises
`LeaseLost`. An expired lease is noticed on the next claim or query of the queue.

Consumers never poll: they sleep until the next due time or lease end, or until an
enqueue, nack, release or retry into their queue (or a move of a `ManualClock`)
wakes them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime, timedelta
from typing import Any, Self
from urllib.parse import urlsplit

from wrkr._errors import UnknownBackend
from wrkr.backend import (
    Backend,
    Capability,
    Clock,
    Delivery,
    ErrorRecord,
    Item,
    ItemFilter,
    Message,
    NotStarted,
    State,
    SystemClock,
)
from wrkr_memory._clock import to_micros
from wrkr_memory._store import MemoryStore, Receipt

_NAMED_STORES: dict[str, MemoryStore] = {}
_MICROSECOND = timedelta(microseconds=1)


class MemoryBackend(Backend):
    """Keeps subscriptions and items in a `MemoryStore`, in this process.

    Args:
        store: the storage to use; a fresh one when omitted. Backends sharing a
            store share everything, as separate processes on one server would.
        clock: what "now" is; `ManualClock` lets a test move time by hand.
    """

    capabilities = frozenset(Capability) - {Capability.TRANSACTIONAL}

    def __init__(self, store: MemoryStore | None = None, *, clock: Clock | None = None) -> None:
        self.store = store if store is not None else MemoryStore()
        self.clock = clock if clock is not None else SystemClock()
        self._connected = False
        self._ever_connected = False
        self._receipts: set[Receipt] = set()  # handed out by this backend, not yet settled

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build a backend for ``memory://`` (a fresh store) or ``memory://NAME`` (shared).

        Raises:
            UnknownBackend: the URL is not a ``memory:`` URL.
            TypeError: an option other than ``clock``.
        """
        parts = urlsplit(url)
        if parts.scheme != "memory" or parts.query or parts.fragment:
            raise UnknownBackend(f"MemoryBackend cannot use {url!r}: "
                                 "expected 'memory://' or 'memory://NAME'")
        unknown = sorted(set(options) - {"clock"})
        if unknown:
            raise TypeError(f"MemoryBackend got unknown options {unknown} for {url!r}")
        name = (parts.netloc + parts.path).strip("/")
        store = _NAMED_STORES.setdefault(name, MemoryStore()) if name else MemoryStore()
        return cls(store, clock=options.get("clock"))

    # -- lifecycle -------------------------------------------------------------------

    async def connect(self) -> None:
        """Start serving the store; its subscriptions and items are all still there."""
        self._connected = self._ever_connected = True
        watch = getattr(self.clock, "watch", None)
        if watch is not None:
            watch(self._clock_moved)

    async def disconnect(self) -> None:
        """Stop serving: what this backend had delivered and not settled goes back."""
        self._connected = False
        unwatch = getattr(self.clock, "unwatch", None)
        if unwatch is not None:
            unwatch(self._clock_moved)
        self.store.abandon(list(self._receipts))
        self._receipts.clear()
        self.store.wake_all()  # our own waiting consumers see the close and end

    # -- subscriptions ---------------------------------------------------------------

    async def subscribe(self, queue: str, pattern: str) -> None:
        """Route events matching `pattern` to `queue`; see `Backend.subscribe`."""
        self._open_store().routes.add(queue, pattern)

    async def unsubscribe(self, queue: str, pattern: str) -> None:
        """Stop routing `pattern` to `queue`; see `Backend.unsubscribe`."""
        self._open_store().routes.remove(queue, pattern)

    async def queues_for(self, name: str) -> list[str]:
        """Return the queues `name` reaches; see `Backend.queues_for`."""
        return list(self._open_store().routes.queues_for(name))

    # -- publishing and consuming ------------------------------------------------------

    async def enqueue(self, messages: Sequence[Message], *, connection: Any = None) -> list[str]:
        """Store the items of a batch, all or nothing; see `Backend.enqueue`."""
        return self._open_store().enqueue(messages)

    async def deliveries(
        self, queue: str, *, worker: str, lease: timedelta, prefetch: int
    ) -> AsyncGenerator[Delivery, None]:
        """Yield the items of `queue` as they fall due; see `Backend.deliveries`.

        A prefetched item's lease restarts when it is yielded, so time spent waiting
        for the consumer to ask does not eat into its handler's time.
        """
        store = self._open_store()
        lease_us = lease // _MICROSECOND
        claimed: deque[Delivery] = deque()
        try:
            while self._connected:
                if not claimed:
                    fresh = self._claim(queue, worker, lease_us, max(1, prefetch))
                    if not fresh:
                        await self._wait_for_work(queue)
                        continue
                    claimed.extend(fresh[1:])
                    yield fresh[0]  # claimed this very moment: its lease is whole
                    continue
                delivery = claimed.popleft()
                if store.renew(delivery.receipt, self._now_us() + lease_us):
                    yield delivery
                else:  # its lease ran out while it waited here; someone else may have it
                    self._receipts.discard(delivery.receipt)
        finally:
            self._give_back(claimed)

    async def ack(
        self, delivery: Delivery, *, keep: bool = False, expires: datetime | None = None
    ) -> None:
        """Delete the item, or keep it as done; see `Backend.ack`."""
        store = self._settling(delivery)
        if keep:
            until = None if expires is None else to_micros(expires)
            store.ack(delivery.receipt, keep=True, expires=until, now=self._now_us())
        else:
            store.ack(delivery.receipt, keep=False, expires=None, now=0)  # `now` unused

    async def nack(self, delivery: Delivery, *, due: datetime, error: ErrorRecord) -> None:
        """Return the item to its queue, due at `due`; see `Backend.nack`."""
        self._settling(delivery).nack(delivery.receipt, due=to_micros(due), error=error)

    async def fail(self, delivery: Delivery, *, error: ErrorRecord) -> None:
        """Park the item as failed; see `Backend.fail`."""
        self._settling(delivery).fail(delivery.receipt, error=error)

    async def release(self, delivery: Delivery) -> None:
        """Give the item back, its attempt not counted; see `Backend.release`."""
        self._settling(delivery).release(delivery.receipt)

    # -- inspection and control --------------------------------------------------------

    async def items(self, where: ItemFilter) -> list[Item]:
        """Return the matching items, oldest due first; see `Backend.items`."""
        return self._open_store().items(where, self._now_us())

    async def get(self, item_id: str) -> Item:
        """Return one item by id; see `Backend.get`."""
        return self._open_store().get(item_id, self._now_us())

    async def cancel(self, where: ItemFilter) -> int:
        """Delete the matching pending items; see `Backend.cancel`."""
        return self._open_store().cancel(where, self._now_us())

    async def retry(self, item_id: str) -> None:
        """Move a failed item back to ready now; see `Backend.retry`."""
        self._open_store().retry(item_id, self._now_us())

    async def counts(self) -> dict[str, dict[State, int]]:
        """Return, per queue, how many items are in each state; see `Backend.counts`."""
        return self._open_store().counts(self._now_us())

    # -- internals -------------------------------------------------------------------

    def _open_store(self) -> MemoryStore:
        if not self._connected:
            when = "after it was closed" if self._ever_connected else "before it was opened"
            raise NotStarted(f"MemoryBackend used {when}: start the app (or `await "
                             "backend.open()`) first; a closed backend stays closed")
        return self.store

    def _settling(self, delivery: Delivery) -> MemoryStore:
        """Return the store to settle `delivery` in, forgetting its receipt first.

        Forgetting first is safe: the settlement that follows is synchronous, and
        whether it succeeds or raises `LeaseLost`, the receipt is spent.
        """
        store = self._open_store()
        self._receipts.discard(delivery.receipt)
        return store

    def _now_us(self) -> int:
        if type(self.clock) is SystemClock:  # the same reading, without a datetime
            return time.time_ns() // 1000
        return to_micros(self.clock.now())

    def _clock_moved(self) -> None:
        self.store.wake_all()

    def _claim(self, queue: str, worker: str, lease_us: int, limit: int) -> list[Delivery]:
        now = self._now_us()
        claimed = self.store.claim(queue, worker, now + lease_us, limit, now)
        self._receipts.update(delivery.receipt for delivery in claimed)
        return claimed

    async def _wait_for_work(self, queue: str) -> None:
        """Sleep until the queue's next due time or lease end, or until woken."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self.store.queue(queue).waiters
        waiters.add(waiter)
        try:
            await asyncio.wait([waiter], timeout=self._time_to_next_change(queue))
        finally:
            waiters.discard(waiter)

    def _time_to_next_change(self, queue: str) -> float | None:
        """Return the seconds to sleep, or None to sleep until woken."""
        if hasattr(self.clock, "watch"):
            return None  # a watched clock wakes us when it moves; real time means nothing
        at = self.store.next_change(queue)
        return None if at is None else max(0.0, (at - self._now_us()) / 1e6)

    def _give_back(self, claimed: deque[Delivery]) -> None:
        for delivery in claimed:
            if self.store.holds(delivery.receipt):
                self.store.release(delivery.receipt)
            self._receipts.discard(delivery.receipt)
