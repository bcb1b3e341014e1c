"""The state of one in-memory wrkr: subscriptions, queues, items; no clock, no waiting.

Every method is synchronous and takes the time it acts at (`now`, int microseconds)
from the backend. Under asyncio nothing else runs inside a method, which is what
makes enqueue all-or-nothing and `once_every` atomic without a lock.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Sequence
from operator import attrgetter
from typing import Any

from wrkr.backend import (
    Delivery,
    ErrorRecord,
    Item,
    ItemFilter,
    ItemNotFound,
    LeaseLost,
    Message,
    State,
    new_item_id,
)
from wrkr_memory._clock import to_micros
from wrkr_memory._queue import MemoryEntry, MemoryQueue, pack_key
from wrkr_memory._routes import MemoryRoutes

_ID_DIGITS = 32
_PENDING = (None, State.SCHEDULED, State.READY)
_HELD = (None, State.PROCESSING, State.DONE, State.FAILED)

Receipt = tuple[MemoryEntry, int]
"""A delivery's receipt: the entry and the claim token it was delivered under."""


class MemoryStore:
    """Everything one in-memory wrkr holds; it outlives the backends that use it.

    Several `MemoryBackend` instances on one store see the same subscriptions and
    items, which is how tests model a restarted app or a second process.
    """

    def __init__(self) -> None:
        self.routes = MemoryRoutes()
        self._queues: dict[str, MemoryQueue] = {}
        # Items out of the pending heaps (processing, done, failed), by id.
        self._held: dict[int, MemoryEntry] = {}
        # Kept done items with an expiry: (expires, key, entry), soonest first.
        self._archive: list[tuple[int, int, MemoryEntry]] = []
        self._seq = itertools.count(1)
        self._tokens = itertools.count(1)

    def queue(self, name: str) -> MemoryQueue:
        """Return the queue called `name`, created empty on first use."""
        found = self._queues.get(name)
        if found is None:
            found = self._queues[name] = MemoryQueue(name)
        return found

    def wake_all(self) -> None:
        """Wake every waiting consumer (the clock moved, or a backend closed)."""
        for queue in self._queues.values():
            queue.wake()

    # -- publishing ------------------------------------------------------------------

    def enqueue(self, messages: Sequence[Message]) -> list[str]:
        """Store one item per (message, subscribed queue); see `Backend.enqueue`."""
        planned = [(message, to_micros(message.due), self.routes.queues_for(message.name))
                   for message in messages]  # everything that can raise, before any change
        ids: list[str] = []
        created_at: tuple[Any, int] = (None, 0)
        for message, due, queues in planned:
            if not queues:
                continue
            if created_at[0] is not message.created:  # a batch shares one created time
                created_at = (message.created, to_micros(message.created))
            # A right-sized copy: orjson (>= 3.12) returns bytes that keep a buffer of
            # 4 KB or more behind a 200-byte payload, for as long as the bytes live.
            payload = bytes(memoryview(message.payload))
            for name in queues:
                queue = self.queue(name)
                if message.dedupe and queue.holds_pending(message.name, message.tid):
                    continue
                item_id = new_item_id()
                key = pack_key(due, next(self._seq), created_at[1], int(item_id, 16))
                queue.push(MemoryEntry(key, name, message.name, message.tid, payload))
                ids.append(item_id)
        return ids

    # -- consuming -------------------------------------------------------------------

    def claim(self, name: str, worker: str, until: int, limit: int, now: int) -> list[Delivery]:
        """Claim up to `limit` due items of queue `name` for `worker`, leased `until`."""
        queue = self.queue(name)
        if queue.processing:
            self._reclaim(queue, now)
        if self._archive:
            self._purge(now)
        claimed: list[Delivery] = []
        while len(claimed) < limit and (entry := queue.pop_due(now)) is not None:
            claimed.append(self._lease(queue, entry, worker, until, now))
        if claimed and queue.waiters:
            queue.wake()  # other waiters must learn of the new lease ends
        return claimed

    def holds(self, receipt: Receipt) -> bool:
        """Tell whether the delivery behind `receipt` still holds its item."""
        entry, token = receipt
        claim = entry.claim
        return claim is not None and claim.state is State.PROCESSING and claim.token == token

    def renew(self, receipt: Receipt, until: int) -> bool:
        """Extend a lease to `until` if the receipt still holds it; tell whether it did."""
        if not self.holds(receipt):
            return False
        receipt[0].claimed().lease_until = until
        return True

    def ack(self, receipt: Receipt, *, keep: bool, expires: int | None, now: int) -> None:
        """Delete the item, or keep it as done until `expires` (None: for good)."""
        entry = self._release_hold(receipt)
        entry.claimed().state = State.DONE
        if not keep:
            del self._held[entry.id]
            return
        entry.claimed().finished = now
        if expires is not None:
            heapq.heappush(self._archive, (expires, entry.key, entry))

    def nack(self, receipt: Receipt, *, due: int, error: ErrorRecord) -> None:
        """Put the item back in its queue, due at `due`, with `error` recorded."""
        entry = self._release_hold(receipt)
        entry.claimed().errors += (error,)
        entry.move_to(due, next(self._seq))
        self._requeue(entry)

    def fail(self, receipt: Receipt, *, error: ErrorRecord) -> None:
        """Park the item as failed, with `error` recorded."""
        entry = self._release_hold(receipt)
        entry.claimed().errors += (error,)
        entry.claimed().state = State.FAILED

    def release(self, receipt: Receipt) -> None:
        """Give the item back at its old place in line, the attempt not counted."""
        entry = self._release_hold(receipt)
        entry.claimed().attempts -= 1
        self._requeue(entry)

    def abandon(self, receipts: Sequence[Receipt]) -> None:
        """Return still-held items to their queues as if their leases had expired."""
        for receipt in receipts:
            if self.holds(receipt):
                self._requeue(self._release_hold(receipt))

    def next_change(self, name: str) -> int | None:
        """Return when something in queue `name` may next become claimable."""
        return self.queue(name).next_change()

    # -- inspection and control ----------------------------------------------------------

    def items(self, where: ItemFilter, now: int) -> list[Item]:
        """Return the matching items, by due time then publishing order."""
        self._refresh(now)
        chosen = [entry for entry in self._candidates(where) if entry.matches(where, now)]
        chosen.sort(key=attrgetter("key"))
        return [entry.snapshot(now) for entry in chosen[:where.limit]]

    def get(self, item_id: str, now: int) -> Item:
        """Return the item with id `item_id` (O(n) when it is pending)."""
        self._refresh(now)
        return self._find(item_id).snapshot(now)

    def cancel(self, where: ItemFilter, now: int) -> int:
        """Delete the matching pending items; return how many."""
        self._refresh(now)
        if where.state not in _PENDING:
            return 0
        return sum(len(queue.take_pending(lambda entry: entry.matches(where, now)))
                   for queue in self._queues_for(where))

    def retry(self, item_id: str, now: int) -> None:
        """Move a failed item back to ready now, attempts reset, errors kept."""
        entry = self._find(item_id)
        if entry.state is not State.FAILED:
            raise ItemNotFound(f"item {item_id!r} is {entry.state_at(now)}, not failed")
        del self._held[entry.id]
        entry.claimed().attempts = 0
        entry.move_to(now, next(self._seq))
        self._requeue(entry)

    def counts(self, now: int) -> dict[str, dict[State, int]]:
        """Return, per queue with items, how many are in each state."""
        self._refresh(now)
        counts: dict[str, dict[State, int]] = {}
        for entry in self._candidates(ItemFilter()):
            per_queue = counts.setdefault(entry.queue, {})
            state = entry.state_at(now)
            per_queue[state] = per_queue.get(state, 0) + 1
        return counts

    # -- internals -----------------------------------------------------------------------

    def _lease(
        self, queue: MemoryQueue, entry: MemoryEntry, worker: str, until: int, now: int
    ) -> Delivery:
        """Hand a just-popped entry to `worker` until `until`, under a new token."""
        claim = entry.claimed()
        claim.attempts += 1
        claim.worker, claim.lease_until, claim.token = worker, until, next(self._tokens)
        claim.state = State.PROCESSING
        queue.processing.add(entry)
        self._held[entry.id] = entry
        return Delivery(entry.snapshot(now), (entry, claim.token))

    def _release_hold(self, receipt: Receipt) -> MemoryEntry:
        entry = receipt[0]
        if not self.holds(receipt):
            raise LeaseLost(f"item {entry.id:032x} is no longer held by this delivery: its "
                            "lease expired and it went back to its queue, or it was settled")
        self._queues[entry.queue].processing.discard(entry)
        return entry

    def _requeue(self, entry: MemoryEntry) -> None:
        self._held.pop(entry.id, None)
        entry.claimed().worker = None
        self.queue(entry.queue).push(entry)

    def _reclaim(self, queue: MemoryQueue, now: int) -> None:
        for entry in queue.expired(now):
            queue.processing.discard(entry)
            self._requeue(entry)

    def _purge(self, now: int) -> None:
        while self._archive and self._archive[0][0] <= now:
            _, _, entry = heapq.heappop(self._archive)
            if self._held.get(entry.id) is entry and entry.state is State.DONE:
                del self._held[entry.id]

    def _refresh(self, now: int) -> None:
        for queue in self._queues.values():
            self._reclaim(queue, now)
        self._purge(now)

    def _queues_for(self, where: ItemFilter) -> list[MemoryQueue]:
        if where.queue is None:
            return list(self._queues.values())
        found = self._queues.get(where.queue)
        return [] if found is None else [found]

    def _candidates(self, where: ItemFilter) -> Iterator[MemoryEntry]:
        if where.state in _PENDING:
            for queue in self._queues_for(where):
                yield from queue.pending
        if where.state in _HELD:
            yield from self._held.values()

    def _find(self, item_id: str) -> MemoryEntry:
        try:
            number = int(item_id, 16) if len(item_id) == _ID_DIGITS else -1
        except ValueError:
            number = -1
        found = self._held.get(number)
        if found is None:
            found = next((entry for queue in self._queues.values()
                          for entry in queue.pending if entry.id == number), None)
        if found is None:
            raise ItemNotFound(f"no item has id {item_id!r}")
        return found
