"""The `Backend` contract: what a `Wrkr` app talks to.

Two assemblies implement it: `StoreBackend` (a `Store` and the core's delivery loop)
and `BrokerBackend` (a `Broker`). Every promise in a method docstring below is checked
by a named test in `backend_conformance_tests`.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Self

from wrkr._errors import NotStarted, NotSupported
from wrkr._rates import QueueOptions, Window
from wrkr._schedules import Firing, ScheduleRecord
from wrkr._types import (
    Capability,
    Clock,
    Delivery,
    ErrorRecord,
    Item,
    ItemFilter,
    Message,
    State,
    SystemClock,
)

if TYPE_CHECKING:
    from wrkr._flow_record import FlowRecord

__all__ = ["Backend"]


class Backend(abc.ABC):
    """Stores subscriptions and items, and hands items to workers under leases.

    A backend instance may be shared by several `Wrkr` apps in one process:
    `open()` and `close()` count their users and call `connect()` on the first
    open and `disconnect()` on the last close.

    Methods for optional capabilities raise `NotSupported` unless overridden; the
    core checks `capabilities` before calling them. Every method that reaches the
    server raises `BackendUnavailable` (never the driver's own exceptions) when it
    cannot, and then nothing was changed.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    clock: Clock = SystemClock()
    _users: int = 0
    _opening: asyncio.Lock | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build a backend from a URL such as ``memory://`` or ``amqp://host/``.

        Raises:
            NotSupported: the backend cannot be configured by URL.
        """
        raise NotSupported(f"{cls.__name__} cannot be built from a URL")

    def now(self) -> datetime:
        """Return the time the backend schedules by (the core uses it too)."""
        return self.clock.now()

    @property
    def is_open(self) -> bool:
        """Tell whether some app holds the backend open."""
        return self._users > 0

    async def open(self) -> None:
        """Connect on the first call; later calls only count another user.

        Safe under concurrency: two apps opening at once connect once.
        """
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._users == 0:
                await self.connect()
            self._users += 1

    async def close(self) -> None:
        """Disconnect on the last user's call; extra calls do nothing."""
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0:
                await self.disconnect()

    def _not_started(self, ever_connected: bool) -> NotStarted:
        """Return the error for a use while closed: before it was opened, or after."""
        when = "after it was closed" if ever_connected else "before it was opened"
        return NotStarted(f"{type(self).__name__} used {when}: start the app (or `await "
                          "backend.open()`) first")

    # -- lifecycle -------------------------------------------------------------

    @abc.abstractmethod
    async def connect(self) -> None:
        """Reach the server and create what is missing (exchanges, tables, indexes).

        Idempotent with respect to storage: connecting to storage that a previous
        run created keeps its subscriptions and items.
        """

    @abc.abstractmethod
    async def disconnect(self) -> None:
        """Release connections. Unsettled deliveries become claimable again, as if
        their leases had expired (their attempts count)."""

    # -- subscriptions -----------------------------------------------------------

    @abc.abstractmethod
    async def subscribe(self, queue: str, pattern: str) -> None:
        """Make events whose name matches `pattern` reach `queue` from now on.

        Durable: it outlives this process. Idempotent: subscribing twice is one
        subscription. Publishers in this process see it at once; a backend that
        caches subscriptions says in its docstring how soon other processes do.
        """

    @abc.abstractmethod
    async def unsubscribe(self, queue: str, pattern: str) -> None:
        """Stop routing `pattern` to `queue`; items already queued stay. Idempotent."""

    @abc.abstractmethod
    async def queues_for(self, name: str) -> list[str]:
        """Return the sorted, distinct queues an event called `name` would reach now."""

    @abc.abstractmethod
    async def subscriptions(self) -> list[tuple[str, str]]:
        """Return every subscription as (queue, pattern) pairs, sorted."""

    # -- coordination (EXCLUSIVE, RATE) ------------------------------------------------

    async def configure(self, queue: str, options: QueueOptions) -> QueueOptions:
        """Store `options` with `queue` unless some are stored; return the stored ones.

        Durable and atomic among processes: the first to configure a queue decides, so
        every consumer of the queue obeys the same options. The core checks the
        capabilities first: a backend without EXCLUSIVE and RATE only ever gets the
        defaults, and by default stores nothing.
        """
        return options

    async def acquire_slot(self, window: Window) -> datetime | None:
        """Take one start in `window` now if it allows one (None); else say when it may.

        Counted in the backend, so every process sharing it shares the window (RATE).
        """
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.RATE}'")

    # -- publishing ----------------------------------------------------------------

    @abc.abstractmethod
    async def enqueue(
        self, messages: Sequence[Message], *, connection: Any = None
    ) -> list[str]:
        """Store one item per (message, matching queue), all or nothing.

        Returns the new item ids in message order. A message that reaches no
        queue creates nothing. A `dedupe` message creates nothing for a queue that
        already holds a pending item with its name and tid, atomically: concurrent
        `dedupe` publishers never create two. Every copy has an id of its own: the
        one returned for it, which its delivery, `get` and `retry` use. Backends whose
        fan-out happens in a broker may route a delayed message when it falls due, to
        the queues subscribed then.

        Args:
            messages: the batch, validated and encoded by the core.
            connection: the caller's open transaction (TRANSACTIONAL backends only).

        Raises:
            BackendUnavailable: the batch was not stored (no part of it was) --
                unless the message says the outcome is unknown: the connection was
                lost while the server was committing, so the batch may be stored
                whole, not at all, or (per RabbitMQ's own documentation, if the
                broker itself failed) in part. Publishing again may then duplicate.
        """

    # -- consuming ---------------------------------------------------------------------

    @abc.abstractmethod
    def deliveries(
        self, queue: str, *, worker: str, lease: timedelta, prefetch: int
    ) -> AsyncGenerator[Delivery[Any], None]:
        """Yield the items of `queue` as they become due, each claimed for `worker`.

        Order: by due time, then publishing order (FIFO among items due together).
        A claimed item is `processing`, records `worker`, counts one more attempt and
        is held for `lease`; if it is neither acked, nacked, failed nor released by
        then, it becomes claimable again (TIMED_LEASES; a backend without it holds its
        claims on a broker channel, for as long as that channel lives, whatever the
        lease). Never yields an item before it is due,
        nor one another worker holds. At most `prefetch` items are claimed and not
        yet yielded. Waits (without busy polling) while nothing is due. Closing the
        iterator releases what it claimed but did not yield. When the server is
        lost, it may ride the outage out itself or raise `BackendUnavailable`; the
        core then opens a new iterator after a pause (0.5 s, doubling up to 5 s).
        """

    @abc.abstractmethod
    async def renew(self, deliveries: Sequence[Delivery[Any]], lease: timedelta) -> list[bool]:
        """Hold `deliveries` for `lease` more from now; tell, per delivery, if it still held.

        A renewed delivery keeps its item from every other worker past its first lease.
        A delivery whose lease ended (and whose item another worker may have claimed)
        gets False, and settling it raises `LeaseLost`. Without TIMED_LEASES the lease
        is a broker channel: this changes nothing, and answers True while the channel
        is open, False once it closed.
        """

    @abc.abstractmethod
    async def ack(
        self, delivery: Delivery[Any], *, keep: bool = False, expires: datetime | None = None,
        result: bytes | None = None,
    ) -> None:
        """Finish the item: delete it, or with `keep` mark it `done` until `expires`.

        `result` is the handler's return value as JSON: a flow's job records it (FLOWS);
        other items ignore it.

        Raises:
            LeaseLost: this delivery no longer holds the item (its lease expired, or it
                was settled already).
        """

    @abc.abstractmethod
    async def nack(self, delivery: Delivery[Any], *, due: datetime, error: ErrorRecord) -> None:
        """Return the item to its own queue (no other), ready at `due`, `error` recorded.

        Raises:
            LeaseLost: this delivery no longer holds the item (its lease expired, or it
                was settled already).
        """

    @abc.abstractmethod
    async def fail(self, delivery: Delivery[Any], *, error: ErrorRecord) -> None:
        """Park the item as `failed`, `error` appended to its history.

        Raises:
            LeaseLost: this delivery no longer holds the item (its lease expired, or it
                was settled already).
        """

    @abc.abstractmethod
    async def release(self, delivery: Delivery[Any]) -> None:
        """Give the item back, ready at once, its attempt not counted (a graceful stop).

        The item keeps its due time, hence its place in line, where the backend can
        (a broker requeues it at the back).

        Raises:
            LeaseLost: this delivery no longer holds the item (its lease expired, or it
                was settled already).
        """

    async def drop_connections(self) -> None:
        """Cut this backend's connections at once, giving nothing back, as a crash would.

        What the conformance suite's crash tests call, so that the shipped kit run
        against a URL proves recovery: held items must come back by their leases (a
        store's lease times, a broker's channel). The default does nothing, which is
        right where leases end by time alone. A backend reconnects on its next use.
        """
        return  # a deliberate no-op, overridden by channel-leased backends

    # -- inspection and control (optional capabilities) ----------------------------

    async def items(self, where: ItemFilter) -> list[Item]:
        """Return the items that match, oldest due first (QUERY; FAILED for failed ones).

        `where.root` (LINEAGE): only the items of that tree, its root included.
        """
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.QUERY}'")

    async def get(self, item_id: str) -> Item:
        """Return one item by id (QUERY).

        Raises:
            ItemNotFound: no item has that id (acked and deleted, or never existed).
        """
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.QUERY}'")

    async def cancel(self, where: ItemFilter) -> int:
        """Delete the pending (scheduled or ready) items that match; return how many (CANCEL).

        `where.limit` and `where.state` do not apply: every pending match goes.
        """
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.CANCEL}'")

    async def retry(self, item_id: str) -> None:
        """Move a failed item back to ready now, attempts reset, errors kept (FAILED).

        Raises:
            ItemNotFound: no failed item has that id.
        """
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.FAILED}'")

    async def counts(self) -> dict[str, dict[State, int]]:
        """Return, per queue holding items, how many are in each state (zeros left out)."""
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.QUERY}'")

    async def purge(self, queue: str | None, state: State, older_than: datetime | None) -> int:
        """Delete `state` items (DONE or FAILED) of `queue` (any if None) finished before
        `older_than` (any time if None); return how many."""
        raise NotSupported(f"{type(self).__name__} does not support purge")

    # -- recurring schedules (optional capability SCHEDULES) ---------------------------

    async def schedules(self) -> list[ScheduleRecord]:
        """Return every stored schedule, sorted by name (SCHEDULES; see `Store`)."""
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.SCHEDULES}'")

    async def save_schedule(self, record: ScheduleRecord) -> bool:
        """Store or update a schedule; False if unchanged (see `Store.save_schedule`)."""
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.SCHEDULES}'")

    async def remove_schedule(self, name: str) -> bool:
        """Delete a schedule; tell whether there was one (SCHEDULES)."""
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.SCHEDULES}'")

    async def fire_schedule(self, firing: Firing) -> list[str] | None:
        """Carry out a firing once, or nothing (see `Store.fire_schedule`)."""
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.SCHEDULES}'")

    # -- workflows (optional capability FLOWS) -----------------------------------------

    async def create_flow(self, record: FlowRecord) -> None:
        """Store a new flow and publish its first step's jobs, atomically (FLOWS)."""
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.FLOWS}'")

    async def flow_record(self, flow_id: str) -> FlowRecord:
        """Return a flow as stored (FLOWS).

        Raises:
            ItemNotFound: no flow has that id.
        """
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.FLOWS}'")

    async def cancel_flow(self, flow_id: str) -> FlowRecord:
        """End a running flow as cancelled, its pending items removed; return it (FLOWS).

        Raises:
            ItemNotFound: no flow has that id.
        """
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.FLOWS}'")
