"""`StoreBackend`: a `Backend` assembled from a `Store` and the core's delivery loop.

Everything a database-backed backend would otherwise write itself lives here once:
what this process holds (so closing gives it back), settlements batched into one
call, leases renewed in one call, wake-ups of this process's consumers, the rule that
`cancel` ignores state and limit. A store-backed backend is a subclass that builds its
store and declares its capabilities::

    class SQLiteBackend(StoreBackend[SQLiteReceipt]):
        capabilities = SQLiteStore.capabilities

        def __init__(self, path: str) -> None:
            super().__init__(SQLiteStore(path))
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from wrkr._delivery import StoreStream
from wrkr._errors import BackendUnavailable, InvalidEvent, LeaseLost
from wrkr._flow_driver import FlowDriver
from wrkr._flow_record import FlowRecord
from wrkr._rates import QueueOptions, Window
from wrkr._schedules import Firing, ScheduleRecord
from wrkr._settling import SettlementBatcher, SettlingBackend
from wrkr._store import Settle, Settlement, Store
from wrkr._types import FINISHED_STATES, Delivery, Item, ItemFilter, Message, State

__all__ = ["StoreBackend"]

logger = logging.getLogger("wrkr")
R = TypeVar("R")
# a member lookup on the class costs 90 ns
_ACK, _FAIL, _RELEASE, _ABANDON = Settle.ACK, Settle.FAIL, Settle.RELEASE, Settle.ABANDON


class StoreBackend(SettlingBackend[R], Generic[R]):
    """Delivers a `Store`'s items through the core's loop; see the module docstring.

    Args:
        store: where subscriptions and items live. Its clock is the backend's clock.
    """

    def __init__(self, store: Store[R]) -> None:
        self.store = store
        self.clock = store.clock
        self.manual_clock = hasattr(store.clock, "watch")  # moves by hand: wake on moves
        self.is_connected = False
        self._ever_connected = False
        self._held: dict[int, tuple[Delivery[R], StoreStream[R] | None]] = {}
        self._streams: set[StoreStream[R]] = set()
        self._bells: dict[str, set[asyncio.Event]] = {}
        self._unwatch: list[Callable[[], None]] = []
        self._settler = None if store.in_process else SettlementBatcher(store.settle)
        self._options: dict[str, QueueOptions] = {}  # as stored, per configured queue
        self._exclusive: set[str] = set()  # their acks and fails free a tid: wake streams
        self._flows = FlowDriver(store)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r})"

    # -- lifecycle ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect the store and start hearing its wake-ups (and the clock's moves)."""
        await self.store.connect()
        self.is_connected = self._ever_connected = True
        self._unwatch = [self.store.watch(self.ring)]
        watch = getattr(self.clock, "watch", None)
        if watch is not None:
            wake_all = self._ring_all
            watch(wake_all)
            self._unwatch.append(lambda: self.clock.unwatch(wake_all))  # type: ignore[attr-defined]

    async def disconnect(self) -> None:
        """Give back what this process holds (as if its leases had expired), then close."""
        self.is_connected = False  # streams claim no more
        for unwatch in self._unwatch:
            unwatch()
        self._unwatch = []
        self._ring_all()  # waiting streams see the close and end
        # Claims under way finish first, so that what they win is given back too.
        await asyncio.gather(*(stream.finish_claims() for stream in list(self._streams)))
        buffered = [delivery for stream in self._streams for delivery in stream.take_buffer()]
        held = [delivery for delivery, _ in self._held.values()]
        self._held.clear()
        if self._settler is not None:
            await self._settler.drain()
        try:
            await self._give_back(buffered, Settle.RELEASE)
            await self._give_back(held, Settle.ABANDON)
        except BackendUnavailable as exc:
            logger.warning("closing %r: could not give back %d item(s), they come back when "
                           "their leases end: %s", self, len(buffered) + len(held), exc)
        await self.store.disconnect()

    # -- wake-ups ----------------------------------------------------------------------

    def bell(self, queue: str) -> asyncio.Event:
        """Return a new event set whenever `queue` may have work (a stream's doorbell)."""
        bell = asyncio.Event()
        self._bells.setdefault(queue, set()).add(bell)
        return bell

    def forget_bell(self, queue: str, bell: asyncio.Event) -> None:
        """Stop ringing a bell returned by `bell`."""
        bells = self._bells.get(queue)
        if bells is not None:
            bells.discard(bell)
            if not bells:
                del self._bells[queue]

    def ring(self, queue: str | None) -> None:
        """Wake this process's consumers of `queue` (of every queue for None)."""
        if queue is None:
            self._ring_all()
            return
        for bell in self._bells.get(queue, ()):
            bell.set()

    def _ring_all(self) -> None:
        for bells in self._bells.values():
            for bell in bells:
                bell.set()

    # -- held deliveries (used by the streams) ----------------------------------------------

    def hand_out(self, delivery: Delivery[R], stream: StoreStream[R] | None) -> None:
        """Note that `delivery` is now with a worker, until it is settled."""
        self._held[id(delivery)] = (delivery, stream)

    def add_stream(self, stream: StoreStream[R]) -> None:
        """Note a running stream (closing gives back what it claimed)."""
        self._streams.add(stream)

    def remove_stream(self, stream: StoreStream[R]) -> None:
        """Forget a stream that ended."""
        self._streams.discard(stream)

    async def give_back(self, deliveries: Sequence[Delivery[R]]) -> None:
        """Release claimed deliveries no worker got (a closing stream's buffer)."""
        await self._give_back(deliveries, Settle.RELEASE)

    async def _give_back(self, deliveries: Sequence[Delivery[R]], how: Settle) -> None:
        if deliveries:
            await self.store.settle([Settlement(delivery, how) for delivery in deliveries])
            for queue in {delivery.item.queue for delivery in deliveries}:
                self.ring(queue)

    # -- subscriptions -----------------------------------------------------------------

    async def subscribe(self, queue: str, pattern: str) -> None:
        """Route `pattern` to `queue`; see `Backend.subscribe`."""
        await self._open_store().subscribe(queue, pattern)

    async def unsubscribe(self, queue: str, pattern: str) -> None:
        """Stop routing `pattern` to `queue`; see `Backend.unsubscribe`."""
        await self._open_store().unsubscribe(queue, pattern)

    async def queues_for(self, name: str) -> list[str]:
        """Return the queues `name` reaches; see `Backend.queues_for`."""
        return await self._open_store().queues_for(name)

    async def subscriptions(self) -> list[tuple[str, str]]:
        """Return every (queue, pattern); see `Backend.subscriptions`."""
        return await self._open_store().subscriptions()

    # -- coordination ------------------------------------------------------------------

    async def configure(self, queue: str, options: QueueOptions) -> QueueOptions:
        """Store `options` with `queue` once; see `Backend.configure`.

        What is stored is what this process's streams of `queue` claim by.
        """
        stored = await self._open_store().configure(queue, options)
        self._options[queue] = stored
        if stored.exclusive:
            self._exclusive.add(queue)
        return stored

    def options(self, queue: str) -> QueueOptions:
        """Return the options `queue` was configured with here (the defaults if never)."""
        return self._options.get(queue) or QueueOptions()

    async def acquire_slot(self, window: Window) -> datetime | None:
        """Take one start in `window` if it allows; see `Backend.acquire_slot`."""
        store, now = self._open_store(), self.now()
        if await store.take_slots(window, 1, now):
            return None
        return await store.next_slot(window, now) or now  # freed meanwhile: try again now

    # -- publishing and consuming ---------------------------------------------------------

    async def enqueue(self, messages: Sequence[Message], *, connection: Any = None) -> list[str]:
        """Store a batch, all or nothing; see `Backend.enqueue`."""
        if not self.is_connected:  # (`_open_store`, inline: this runs once per publish)
            raise self._not_started(self._ever_connected)
        return await self.store.put(messages, connection=connection)

    def deliveries(
        self, queue: str, *, worker: str, lease: timedelta, prefetch: int
    ) -> AsyncGenerator[Delivery[R], None]:
        """Yield `queue`'s items as they fall due; see `Backend.deliveries`."""
        self._open_store()
        return StoreStream(self, queue, worker, lease, max(1, prefetch)).run()

    async def renew(self, deliveries: Sequence[Delivery[Any]], lease: timedelta) -> list[bool]:
        """Extend the leases in one call; see `Backend.renew`."""
        if not deliveries:
            return []
        held = await self._open_store().renew(deliveries, self.now() + lease)
        for delivery, still in zip(deliveries, held, strict=True):
            if not still:
                self._held.pop(id(delivery), None)
        return held

    async def _settle(self, settlement: Settlement[R]) -> None:
        if not self.is_connected:  # (`_open_store`, inline: this runs once per item)
            raise self._not_started(self._ever_connected)
        store = self.store
        delivery = settlement.delivery
        entry = self._held.pop(id(delivery), None)
        if entry is not None and entry[1] is not None and self._settler is not None:
            entry[1].settling()  # claim ahead (in-process stores claim inline instead)
        how = settlement.how
        if delivery.item.flow is not None and how is not _RELEASE and how is not _ABANDON:
            held = await self._flows.settle(settlement)  # with the flow's bookkeeping
        elif self._settler is not None:
            held = await self._settler.settle(settlement)
        else:
            held = store.settle_nowait(settlement)
        if ((how is not _ACK and how is not _FAIL)  # (Enum hashing is slow)
                or (self._exclusive and delivery.item.queue in self._exclusive)):
            self.ring(delivery.item.queue)
        if not held:
            raise LeaseLost(f"item {delivery.item.id} of queue {delivery.item.queue!r} is no "
                            "longer held by this delivery: its lease ended and it may have "
                            "been claimed again, or it was settled already")

    # -- inspection and control ------------------------------------------------------------

    async def items(self, where: ItemFilter) -> list[Item]:
        """Return the matching items; see `Backend.items`."""
        return await self._open_store().items(where)

    async def get(self, item_id: str) -> Item:
        """Return one item by id; see `Backend.get`."""
        return await self._open_store().get(item_id)

    async def cancel(self, where: ItemFilter) -> int:
        """Delete the pending matches, whatever `where.state` and `where.limit` say."""
        return await self._open_store().cancel(ItemFilter(where.queue, where.name, where.tid))

    async def retry(self, item_id: str) -> None:
        """Move a failed item back to ready now; see `Backend.retry`."""
        self.ring(await self._open_store().retry(item_id))

    async def counts(self) -> dict[str, dict[State, int]]:
        """Return the counts per queue and state; see `Backend.counts`."""
        return await self._open_store().counts()

    async def purge(self, queue: str | None, state: State, older_than: datetime | None) -> int:
        """Delete finished items; see `Backend.purge`.

        Raises:
            InvalidEvent: `state` is neither done nor failed (checked here, once for every store).
        """
        if state not in FINISHED_STATES:
            raise InvalidEvent(f"invalid state {str(state)!r} for purge(): expected 'failed' or "
                               "'done' (cancel() deletes pending items)")
        return await self._open_store().purge(queue, state, older_than)

    # -- recurring schedules -------------------------------------------------------------------

    async def schedules(self) -> list[ScheduleRecord]:
        """Return every stored schedule; see `Store.schedules`."""
        return await self._open_store().schedules()

    async def save_schedule(self, record: ScheduleRecord) -> bool:
        """Store or update a schedule; see `Store.save_schedule`."""
        return await self._open_store().save_schedule(record)

    async def remove_schedule(self, name: str) -> bool:
        """Delete a schedule; see `Store.remove_schedule`."""
        return await self._open_store().remove_schedule(name)

    async def fire_schedule(self, firing: Firing) -> list[str] | None:
        """Carry out a firing once, or nothing; see `Store.fire_schedule`."""
        return await self._open_store().fire_schedule(firing)

    # -- workflows ----------------------------------------------------------------------------

    async def create_flow(self, record: FlowRecord) -> None:
        """Store a flow and start it; see `Backend.create_flow`."""
        self._open_store()
        await self._flows.create(record)

    async def flow_record(self, flow_id: str) -> FlowRecord:
        """Return a stored flow; see `Backend.flow_record`."""
        self._open_store()
        return await self._flows.read(flow_id)

    async def cancel_flow(self, flow_id: str) -> FlowRecord:
        """Cancel a running flow; see `Backend.cancel_flow`."""
        self._open_store()
        return await self._flows.cancel(flow_id)

    # -- internals ---------------------------------------------------------------------------

    def _open_store(self) -> Store[R]:
        if not self.is_connected:
            raise self._not_started(self._ever_connected)
        return self.store
