"""`MemoryStore`: the memory backend's `Store`, holding subscriptions, queues and items.

Every method runs to completion without awaiting anything: under asyncio nothing else
runs inside one, which is what makes a batch all-or-nothing and `once_every` atomic
without a lock. Times are int microseconds inside (see `_clock`).

One store may serve several `MemoryBackend` instances, which then behave as processes
sharing one server: each backend gives back what it held when it closes, and the
store's wake-ups reach the consumers of all of them.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, ClassVar, TypeVar

from wrkr.backend import (
    MICROSECOND,
    Capability,
    Claim,
    Clock,
    Delivery,
    ErrorRecord,
    Firing,
    FlowTransaction,
    Item,
    ItemFilter,
    ItemNotFound,
    Message,
    QueueOptions,
    ScheduleRecord,
    Settle,
    Settlement,
    State,
    Store,
    SystemClock,
    Window,
    from_micros,
    new_item_id,
    to_micros,
)
from wrkr_memory._flows import MemoryFlows, MemoryFlowTransaction
from wrkr_memory._queue import (
    ID_MASK,
    MemoryClaim,
    MemoryEntry,
    MemoryFlowEntry,
    MemoryQueue,
    pack_key,
)
from wrkr_memory._routes import MemoryRoutes
from wrkr_memory._schedules import MemorySchedules
from wrkr_memory._windows import MemoryWindows

_ID_DIGITS = 32
_PENDING = (None, State.SCHEDULED, State.READY)
_HELD = (None, State.PROCESSING, State.DONE, State.FAILED)
# Compared once per settlement: a member lookup on the enum class costs 90 ns
_ACK, _NACK, _FAIL, _ABANDON = Settle.ACK, Settle.NACK, Settle.FAIL, Settle.ABANDON
_PROCESSING = State.PROCESSING

T = TypeVar("T")
MemoryReceipt = tuple[MemoryEntry, int]
"""A delivery's receipt: the entry and the claim token it was delivered under."""


class MemoryStore(Store[MemoryReceipt]):
    """Everything one in-memory wrkr holds; it outlives the backends that use it.

    Several `MemoryBackend` instances on one store see the same subscriptions and
    items, which is how tests model a restarted app or a second process.

    Args:
        clock: what "now" is; `ManualClock` lets a test move time by hand.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability) - {
        Capability.TRANSACTIONAL}
    poll_interval = 3600.0  # every change wakes the consumers; leases ends are timed
    in_process = True  # nothing here waits: the core calls it inline

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock if clock is not None else SystemClock()
        self.routes = MemoryRoutes()
        self._queues: dict[str, MemoryQueue] = {}
        # Items out of the pending heaps (processing, done, failed), by id.
        self._held: dict[int, MemoryEntry] = {}
        # Kept done items with an expiry: (expires, key, entry), soonest first.
        self._archive: list[tuple[int, int, MemoryEntry]] = []
        self._seq = itertools.count(1)
        self._tokens = itertools.count(1)
        self._last_claim: Claim | None = None  # and its lease in µs: see `claim_nowait`
        self._last_lease = 0
        self._options: dict[str, QueueOptions] = {}
        self.windows = MemoryWindows()
        self.schedule_book = MemorySchedules()
        self.flows = MemoryFlows()

    def queue(self, name: str) -> MemoryQueue:
        """Return the queue called `name`, created empty on first use."""
        found = self._queues.get(name)
        if found is None:
            found = self._queues[name] = MemoryQueue(name, self.notify)
        return found

    # -- the Store contract ------------------------------------------------------------

    async def connect(self) -> None:
        """Nothing to reach: the store lives in this process."""

    async def disconnect(self) -> None:
        """Nothing to release; the store keeps everything for the next backend."""

    @property
    def wakes_live(self) -> bool:
        """Every change in the store wakes its consumers at once."""
        return True

    async def subscribe(self, queue: str, pattern: str) -> None:
        """Route `pattern` to `queue`; see `Store.subscribe`."""
        self.routes.add(queue, pattern)

    async def unsubscribe(self, queue: str, pattern: str) -> None:
        """Stop routing `pattern` to `queue`; see `Store.unsubscribe`."""
        self.routes.remove(queue, pattern)

    async def queues_for(self, name: str) -> list[str]:
        """Return the queues `name` reaches; see `Store.queues_for`."""
        return list(self.routes.queues_for(name))

    async def subscriptions(self) -> list[tuple[str, str]]:
        """Return every (queue, pattern); see `Store.subscriptions`."""
        return self.routes.pairs()

    async def put(self, messages: Sequence[Message], *, connection: Any = None) -> list[str]:
        """Store a batch, all or nothing; see `Store.put`."""
        return self.enqueue(messages)

    async def claim(self, claim: Claim) -> list[Delivery[MemoryReceipt]]:
        """Claim due items at `claim.now`; see `Store.claim`."""
        return self._claim_at(claim, to_micros(claim.now), to_micros(claim.until))

    def claim_nowait(self, claim: Claim) -> list[Delivery[MemoryReceipt]]:
        """Claim due items now, without awaiting; see `Store.claim_nowait`."""
        if claim is not self._last_claim:  # a stream passes the same one every time
            self._last_claim = claim
            self._last_lease = (claim.until - claim.now) // MICROSECOND
        if type(self.clock) is SystemClock:  # `_now`, inline: this runs once per claim
            now = time.time_ns() // 1000
        else:
            now = to_micros(self.clock.now())
        if claim.exclusive or claim.window is not None:
            return self._claim_coordinated(claim, now, now + self._last_lease)
        return self.claim_now(claim.queue, claim.worker, now + self._last_lease, claim.limit,
                              now)

    def _claim_at(self, claim: Claim, now: int, until: int) -> list[Delivery[MemoryReceipt]]:
        if claim.exclusive or claim.window is not None:
            return self._claim_coordinated(claim, now, until)
        return self.claim_now(claim.queue, claim.worker, until, claim.limit,
                              now)

    async def configure(self, queue: str, options: QueueOptions) -> QueueOptions:
        """Keep `options` for `queue` unless it has some; see `Store.configure`."""
        stored = self._options.setdefault(queue, options)
        if stored.exclusive:
            self.queue(queue).hold_tids()
        return stored

    async def take_slots(self, window: Window, wanted: int, now: datetime) -> int:
        """Count up to `wanted` starts in `window`; see `Store.take_slots`."""
        at = to_micros(now)
        taken = min(wanted, self.windows.room(window, at))
        self.windows.record(window, taken, at)
        return taken

    async def next_change(self, queue: str, now: datetime) -> datetime | None:
        """Return the next future due time or lease end; see `Store.next_change`."""
        at = self.queue(queue).next_change(to_micros(now))
        return None if at is None else from_micros(at)

    async def next_slot(self, window: Window, now: datetime) -> datetime | None:
        """Return when `window` next has room; see `Store.next_slot`."""
        at = self.windows.next_slot(window, to_micros(now))
        return None if at is None else from_micros(at)

    async def renew(self, deliveries: Sequence[Delivery[MemoryReceipt]],
                    until: datetime) -> list[bool]:
        """Extend leases; see `Store.renew`."""
        until_us, now = to_micros(until), self._now()
        return [self.extend(delivery.receipt, until_us, now) for delivery in deliveries]

    async def settle(self, settlements: Sequence[Settlement[MemoryReceipt]]) -> list[bool]:
        """Carry out settlements; see `Store.settle`."""
        return [self.settle_nowait(settlement) for settlement in settlements]

    async def next_due(self, queue: str, now: datetime) -> datetime | None:
        """Return the next due time or lease end; see `Store.next_due`."""
        at = self.queue(queue).next_change()
        return None if at is None else from_micros(at)

    async def items(self, where: ItemFilter) -> list[Item]:
        """Return the matching items; see `Store.items`."""
        return self.find(where, self._now())

    async def get(self, item_id: str) -> Item:
        """Return one item; see `Store.get`."""
        now = self._now()
        self._refresh(now)
        return self._find(item_id).snapshot(now)

    async def cancel(self, where: ItemFilter) -> int:
        """Delete pending matches; see `Store.cancel`."""
        now = self._now()
        self._refresh(now)
        return sum(len(queue.take_pending(lambda entry: entry.matches(where, now)))
                   for queue in self._queues_for(where))

    async def retry(self, item_id: str) -> str:
        """Move a failed item back to ready; see `Store.retry`."""
        now = self._now()
        entry = self._find(item_id)
        if entry.state is not State.FAILED:
            raise ItemNotFound(f"item {item_id!r} is {entry.state_at(now)}, not failed")
        del self._held[entry.id]
        entry.claimed().attempts = 0
        entry.move_to(now, next(self._seq))
        self._requeue(entry)
        return entry.queue

    async def counts(self) -> dict[str, dict[State, int]]:
        """Return counts per queue and state; see `Store.counts`."""
        return self.count(self._now())

    async def purge(self, queue: str | None, state: State, older_than: datetime | None) -> int:
        """Delete finished items; see `Store.purge`."""
        before = None if older_than is None else to_micros(older_than)
        doomed = [entry for entry in self._held.values()
                  if entry.state is state and (queue is None or entry.queue == queue)
                  and (before is None or (entry.claimed().finished or 0) < before)]
        for entry in doomed:
            del self._held[entry.id]
        return len(doomed)

    # -- recurring schedules -----------------------------------------------------------

    async def schedules(self) -> list[ScheduleRecord]:
        """Return every schedule, by name; see `Store.schedules`."""
        return self.schedule_book.all()

    async def save_schedule(self, record: ScheduleRecord) -> bool:
        """Store or update a schedule; see `Store.save_schedule`."""
        return self.schedule_book.save(record)

    async def remove_schedule(self, name: str) -> bool:
        """Delete a schedule; see `Store.remove_schedule`."""
        return self.schedule_book.remove(name)

    async def fire_schedule(self, firing: Firing) -> list[str] | None:
        """Carry out a firing in one step, or nothing; see `Store.fire_schedule`."""
        if not self.schedule_book.take(firing):
            return None
        return self.enqueue(firing.messages)

    # -- workflows ---------------------------------------------------------------------

    async def flow_transaction(
        self, flow_id: str, work: Callable[[FlowTransaction[MemoryReceipt]], Awaitable[T]]
    ) -> T:
        """Run `work` on the flow; see `Store.flow_transaction`.

        Nothing in it awaits (the transaction's methods never suspend), so under asyncio
        it runs alone: atomic, without a lock.
        """
        return await work(MemoryFlowTransaction(self, flow_id))

    async def flow_document(self, flow_id: str) -> bytes | None:
        """Return a flow's document; see `Store.flow_document`."""
        return self.flows.documents.get(flow_id)

    def cancel_ids(self, item_ids: Sequence[str]) -> set[str]:
        """Delete the pending items among `item_ids`; return their ids."""
        wanted = set(item_ids)
        removed: set[str] = set()
        now = self._now()
        self._refresh(now)
        for queue in self._queues.values():
            for entry in queue.take_pending(lambda entry: f"{entry.id:032x}" in wanted):
                removed.add(f"{entry.id:032x}")
        return removed

    def settle_nowait(self, settlement: Settlement[MemoryReceipt]) -> bool:
        """Carry out one settlement, without awaiting; see `Store.settle`."""
        receipt = settlement.delivery.receipt
        entry, token = receipt
        claim = entry.claim  # `holds`, inline: this runs once per item
        if claim is None or claim.state is not _PROCESSING or claim.token != token:
            return False
        how = settlement.how
        if how is _ACK:
            self._ack(receipt, settlement.keep, settlement.expires)
        elif how is _NACK:
            assert settlement.due is not None
            assert settlement.error is not None
            self._nack(receipt, to_micros(settlement.due), settlement.error)
        elif how is _FAIL:
            assert settlement.error is not None
            self._fail(receipt, settlement.error)
        else:
            self._give_back(receipt, counted=how is _ABANDON)
        return True

    def _now(self) -> int:
        if type(self.clock) is SystemClock:  # the same reading, without a datetime
            return time.time_ns() // 1000
        return to_micros(self.clock.now())

    # -- publishing ------------------------------------------------------------------

    def enqueue(self, messages: Sequence[Message], flow: str | None = None) -> list[str]:
        """Store one item per (message, subscribed queue); see `Backend.enqueue`.

        With `flow`, the items are that flow's (`Item.flow`).
        """
        planned = [(message, to_micros(message.due), self.routes.queues_for(message.name))
                   for message in messages]  # everything that can raise, before any change
        ids: list[str] = []
        touched: set[MemoryQueue] = set()
        created_at: tuple[Any, int] = (None, 0)
        for message, due, queues in planned:
            if not queues:
                continue
            if created_at[0] is not message.created:  # a batch shares one created time
                created_at = (message.created, due if message.created is message.due
                              else to_micros(message.created))  # (due now: the same)
            # A right-sized copy: orjson (>= 3.12) returns bytes that keep a buffer of
            # 4 KB or more behind a 200-byte payload, for as long as the bytes live.
            payload = bytes(memoryview(message.payload))
            tree = None  # a root published untraced, the usual item: nothing to keep
            if message.parent is not None or message.trace is not None:
                tree = (message.parent, message.root, message.trace)
            for name in queues:
                queue = self._queues.get(name) or self.queue(name)
                if message.dedupe and queue.holds_pending(message.name, message.tid):
                    continue
                item_id = new_item_id()
                key = pack_key(due, next(self._seq), created_at[1], int(item_id, 16))
                queue.push(MemoryEntry(key, name, message.name, message.tid, payload, tree)
                           if flow is None else
                           MemoryFlowEntry(key, name, message.name, message.tid, payload, flow,
                                           tree))
                touched.add(queue)
                ids.append(item_id)
        for queue in touched:
            queue.wake()
        return ids

    # -- consuming -------------------------------------------------------------------

    def claim_now(self, name: str, worker: str, until: int, limit: int,
                  now: int) -> list[Delivery[MemoryReceipt]]:
        """Claim up to `limit` due items of queue `name` for `worker`, leased `until`."""
        queue = self._queues.get(name) or self.queue(name)
        if queue.processing:
            self._reclaim(queue, now)
        if self._archive:
            self._purge(now)
        claimed: list[Delivery[MemoryReceipt]] = []
        while len(claimed) < limit and (entry := queue.pop_due(now)) is not None:
            claimed.append(self._lease(queue, entry, worker, until, now))
        return claimed

    def holds(self, receipt: MemoryReceipt) -> bool:
        """Tell whether the delivery behind `receipt` still holds its item."""
        entry, token = receipt
        claim = entry.claim
        return claim is not None and claim.state is State.PROCESSING and claim.token == token

    def extend(self, receipt: MemoryReceipt, until: int, now: int) -> bool:
        """Extend a lease to `until` if it holds and has not ended; tell whether it did."""
        if not self.holds(receipt) or receipt[0].claimed().lease_until <= now:
            return False
        receipt[0].claimed().lease_until = until
        return True

    def _ack(self, receipt: MemoryReceipt, keep: bool, expires: datetime | None) -> None:
        entry = self._release_hold(receipt)
        claim = entry.claim
        assert claim is not None  # a held entry's
        claim.state = State.DONE
        if not keep:
            del self._held[entry.key & ID_MASK]  # `entry.id`, without a property call
            return
        claim.finished = self._now()
        if expires is not None:
            heapq.heappush(self._archive, (to_micros(expires), entry.key, entry))

    def _nack(self, receipt: MemoryReceipt, due: int, error: ErrorRecord) -> None:
        entry = self._release_hold(receipt)
        entry.claimed().errors += (error,)
        entry.move_to(due, next(self._seq))
        self._requeue(entry)

    def _fail(self, receipt: MemoryReceipt, error: ErrorRecord) -> None:
        entry = self._release_hold(receipt)
        entry.claimed().errors += (error,)
        entry.claimed().state = State.FAILED
        entry.claimed().finished = self._now()

    def _give_back(self, receipt: MemoryReceipt, *, counted: bool) -> None:
        """Requeue at the item's old place in line; a release uncounts the attempt."""
        entry = self._release_hold(receipt)
        if not counted:
            entry.claimed().attempts -= 1
        self._requeue(entry)

    def _claim_coordinated(self, claim: Claim, now: int,
                           until: int) -> list[Delivery[MemoryReceipt]]:
        """Claim with a tid filter (one per tid, in due order) and a rate's allowance."""
        limit = claim.limit
        if claim.window is not None:
            limit = min(limit, self.windows.room(claim.window, now))
        queue = self.queue(claim.queue)
        if queue.processing:
            self._reclaim(queue, now)
        busy = queue.busy if claim.exclusive else None
        claimed: list[Delivery[MemoryReceipt]] = []
        skipped: list[MemoryEntry] = []  # their tid is processing: back in line, unchanged
        while len(claimed) < limit and (entry := queue.pop_due(now)) is not None:
            if busy is not None and entry.tid in busy:
                skipped.append(entry)
            else:
                claimed.append(self._lease(queue, entry, claim.worker, until,
                                           now))
        queue.put_back(skipped)
        if claim.window is not None:
            self.windows.record(claim.window, len(claimed), now)
        return claimed

    # -- inspection --------------------------------------------------------------------

    def find(self, where: ItemFilter, now: int) -> list[Item]:
        """Return the matching items, by due time then publishing order."""
        self._refresh(now)
        chosen = [entry for entry in self._candidates(where) if entry.matches(where, now)]
        chosen.sort(key=attrgetter("key"))
        end = None if where.limit is None else where.offset + where.limit
        return [entry.snapshot(now) for entry in chosen[where.offset:end]]

    def count(self, now: int) -> dict[str, dict[State, int]]:
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
    ) -> Delivery[MemoryReceipt]:
        """Hand a just-popped entry to `worker` until `until`, under a new token."""
        claim = entry.claim
        if claim is None:
            claim = entry.claim = MemoryClaim()
        claim.attempts += 1
        claim.worker, claim.lease_until, claim.token = worker, until, next(self._tokens)
        claim.state = _PROCESSING
        queue.processing.add(entry)
        if queue.busy is not None and entry.tid is not None:
            queue.busy.add(entry.tid)
        self._held[entry.key & ID_MASK] = entry
        return Delivery(entry.snapshot(now), (entry, claim.token))

    def _release_hold(self, receipt: MemoryReceipt) -> MemoryEntry:
        entry = receipt[0]
        queue = self._queues[entry.queue]
        queue.processing.discard(entry)  # `queue.let_go`, inline: once per item
        if queue.busy is not None:
            queue.busy.discard(entry.tid)
        if queue.busy is not None and entry.tid is not None:
            self.notify(entry.queue)  # its tid is free: another consumer may take the next
        return entry

    def _requeue(self, entry: MemoryEntry) -> None:
        self._held.pop(entry.id, None)
        entry.claimed().worker = None
        queue = self.queue(entry.queue)
        queue.push(entry)
        queue.wake()

    def _reclaim(self, queue: MemoryQueue, now: int) -> None:
        for entry in queue.expired(now):
            queue.let_go(entry)
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
