"""The `Store` contract: storage primitives for backends that keep items in a database.

A store stores and moves; it decides nothing. The core's delivery loop (`_delivery`)
runs on these primitives for every store alike: prefetch, batched claims, lease
renewal, give-back on close, wake-or-poll with one backoff, reconnects after an
outage. `StoreBackend` (`_stored`) assembles a store and that loop into the `Backend`
an app talks to. Each primitive is one round trip where the database allows.

Every method that reaches the server raises `BackendUnavailable` (never the driver's
own exceptions) when it cannot, and then nothing was changed. Every time a store
writes comes from its `clock` (passed in by the core or read by the store), so a
`ManualClock` moves every store through virtual time.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, TypeVar

from wrkr._errors import NotSupported
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
    from wrkr._flow_store import FlowTransaction

__all__ = ["Claim", "Settle", "Settlement", "Store", "Wake"]

R = TypeVar("R")
T = TypeVar("T")

Wake = Callable[[str | None], None]
"""What a store calls when a queue may have new work: `wake(queue)`, or `wake(None)` for all."""


class Claim(NamedTuple):
    """What one claim asks for: up to `limit` due items of `queue` for `worker`.

    A claimed item is leased until `until`. With `exclusive`, an item whose tid has
    another item `processing` (lease not ended) is skipped, and so is an item whose tid
    has an earlier-due pending one: one per tid, in due order; items without a tid are
    not restricted. With `window`, the claim takes at most what the window allows at
    `now` and records what it took there, atomically across processes (see
    `take_slots`).
    """

    queue: str
    worker: str
    now: datetime
    until: datetime
    limit: int
    exclusive: bool = False
    window: Window | None = None


class Settle(StrEnum):
    """How a delivery is settled."""

    ACK = "ack"  # done: delete it, or with `keep` mark it done until `expires`
    NACK = "nack"  # back to its queue, due at `due`, `error` appended, attempt counted
    FAIL = "fail"  # parked as failed, `error` appended
    RELEASE = "release"  # back to its queue at once, its attempt not counted (a stop)
    ABANDON = "abandon"  # back at once as if the lease had expired, attempt counted (a close)


class Settlement(NamedTuple, Generic[R]):
    """One delivery's settlement, as the core decided it (a tuple: one per item, made fast)."""

    delivery: Delivery[R]
    how: Settle
    due: datetime | None = None
    error: ErrorRecord | None = None
    keep: bool = False
    expires: datetime | None = None
    result: bytes | None = None  # an ack's handler result, JSON (a flow's job: FLOWS)


class Store(abc.ABC, Generic[R]):
    """Keeps subscriptions and items in a database; `R` is the type of its receipts.

    Attributes:
        capabilities: what the store offers beyond the basics (the backend declares them).
        clock: what "now" is; every due time and lease end is by this clock.
        poll_interval: seconds an idle consumer sleeps at most while the store's wake-ups
            are live (a safety net for a lost one).
        poll_min, poll_max: without live wake-ups, idle consumers poll every `poll_min`
            seconds after work, backing off to `poll_max`.
        in_process: the store's methods never wait on I/O (a store in memory). The core
            then claims and settles through `claim_nowait` and `settle_nowait`, inline:
            no claim runs as a task of its own, settlements are not grouped (grouping
            saves round trips, and there are none), and nothing awaits.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    clock: Clock = SystemClock()
    poll_interval: float = 5.0
    poll_min: float = 0.02
    poll_max: float = 1.0
    in_process: ClassVar[bool] = False

    # -- lifecycle ---------------------------------------------------------------------

    @abc.abstractmethod
    async def connect(self) -> None:
        """Reach the server and create what is missing (tables, indexes).

        Connecting to storage that a previous run created keeps its subscriptions and
        items. A store may be connected again after `disconnect()`.
        """

    @abc.abstractmethod
    async def disconnect(self) -> None:
        """Release connections (the core has already given back what it held)."""

    def watch(self, wake: Wake) -> Callable[[], None]:
        """Call `wake(queue)` whenever `queue` may have work; return what stops the calls.

        The store calls `notify(queue)` when it learns of work: for its own `put`,
        `settle` and `retry` at least, and for other processes' changes where it has a
        signal (LISTEN/NOTIFY, a change stream; then `wakes_live` is True).
        """
        watchers = self.__dict__.setdefault("_watchers", [])
        watchers.append(wake)
        return lambda: watchers.remove(wake) if wake in watchers else None

    def notify(self, queue: str | None) -> None:
        """Wake the watchers of `queue` (every queue for None)."""
        for wake in self.__dict__.get("_watchers", ()):
            wake(queue)

    @property
    def wakes_live(self) -> bool:
        """Tell whether `watch` reports other processes' changes right now.

        True: idle consumers sleep until the next due time (at most `poll_interval`).
        False: they poll adaptively between `poll_min` and `poll_max`.
        """
        return False

    def idle(self, queue: str, waiting: bool) -> None:
        """Hear that a consumer of `queue` starts (True) or stops (False) sleeping.

        A store whose wake-up signal costs the server something (a change stream) can
        keep it open only while consumers sleep. The default ignores it.
        """

    # -- subscriptions -------------------------------------------------------------------

    @abc.abstractmethod
    async def subscribe(self, queue: str, pattern: str) -> None:
        """Make events matching `pattern` reach `queue` from now on; durable, idempotent.

        Publishers in this process see it at once; a store that caches subscriptions
        says in its docstring how soon other processes do.
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

    # -- items ---------------------------------------------------------------------------

    @abc.abstractmethod
    async def put(self, messages: Sequence[Message], *, connection: Any = None) -> list[str]:
        """Store one item per (message, subscribed queue), all or nothing.

        Returns the new item ids in message order (queues in name order within one
        message). Each item keeps the message's `parent`, `root` and `trace`. A message
        that reaches no queue creates nothing; a `dedupe` message creates nothing for a
        queue already holding a pending item with its name and tid, atomically among
        `dedupe` publishers.

        Args:
            messages: the batch, validated and encoded by the core.
            connection: the caller's open transaction (TRANSACTIONAL stores only).

        Raises:
            BackendUnavailable: nothing was stored -- unless the message says the
                outcome is unknown (the connection was lost during the commit).
        """

    @abc.abstractmethod
    async def claim(self, claim: Claim) -> list[Delivery[R]]:
        """Claim up to `claim.limit` due items of the queue, oldest due first.

        Due means `due <= claim.now`, or `processing` with its lease ended by then (a
        dead worker's item; its attempt counted). Each claimed item is `processing`,
        records the worker, counts one more attempt and is leased until `claim.until`;
        items another worker is claiming at the same moment are skipped, not waited
        for. Deliveries come in (due, publishing order). Returns [] when nothing is due.
        """

    @abc.abstractmethod
    async def renew(self, deliveries: Sequence[Delivery[R]], until: datetime) -> list[bool]:
        """Extend the leases of `deliveries` to `until`, in one call where possible.

        Returns, per delivery, whether it still held its item: False when it was
        settled, claimed again, or its lease had ended by the store's clock (even if
        nobody claimed it since: the worker must not go on as if it had held it).
        """

    @abc.abstractmethod
    async def settle(self, settlements: Sequence[Settlement[R]]) -> list[bool]:
        """Carry out settlements (see `Settle`), in one call where possible.

        Each is fenced by its delivery's lease: a delivery that no longer holds its
        item changes nothing and gets False; the others get True. A nack, release,
        abandon or retry makes the item claimable at its due time.
        """

    @abc.abstractmethod
    async def next_due(self, queue: str, now: datetime) -> datetime | None:
        """Return when an item of `queue` may next become claimable after `now`.

        The earliest future due time or lease end; None when the queue holds neither.
        Idle consumers sleep until then (or until woken).
        """

    # -- coordination (EXCLUSIVE, RATE) --------------------------------------------------

    async def configure(self, queue: str, options: QueueOptions) -> QueueOptions:
        """Store `options` with `queue` unless some are stored already; return the stored.

        Atomic among processes: the first to configure a queue decides, the others get
        what it stored (the core compares). A store without EXCLUSIVE and RATE stores
        nothing: only the default options reach it.
        """
        return options

    async def take_slots(self, window: Window, wanted: int, now: datetime) -> int:
        """Record up to `wanted` starts in `window` at `now`, as many as it allows; how many.

        The window allows `window.limit` starts in (now - period, now]; concurrent calls
        from any process never together exceed it (RATE).
        """
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.RATE}'")

    async def next_slot(self, window: Window, now: datetime) -> datetime | None:
        """Return when `window` next allows a start: None if it does at `now` (RATE)."""
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.RATE}'")

    async def next_change(self, queue: str, now: datetime) -> datetime | None:
        """Return the earliest due time strictly after `now`, or lease end, of `queue`.

        What an exclusive queue's idle consumer sleeps until: its due items may all wait
        for their tids, so only a future due time or a lease ending (a dead worker's tid
        coming free) can change that without a wake-up. The default is `next_due`.
        """
        return await self.next_due(queue, now)

    def claim_nowait(self, claim: Claim) -> list[Delivery[R]]:
        """`claim`, without awaiting (`in_process` stores only).

        The core passes one `Claim` for every claim of a stream: the store reads "now"
        from its own clock (the very clock the core reads) and leases each item for
        `claim.until - claim.now`. A datetime and its conversions per claim were a tenth
        of the memory backend's cost per item.
        """
        raise NotImplementedError(f"{type(self).__name__} is not an in-process store")

    def settle_nowait(self, settlement: Settlement[R]) -> bool:
        """`settle` one delivery, without awaiting (`in_process` stores only).

        One, not a batch: in process, grouping saves nothing.
        """
        raise NotImplementedError(f"{type(self).__name__} is not an in-process store")

    # -- inspection and control (optional capabilities) ----------------------------------

    async def items(self, where: ItemFilter) -> list[Item]:
        """Return the matching items, oldest due first, `where.offset` skipped (QUERY).

        With `where.root` (LINEAGE), only the items whose root is that id: a message put
        with a `root` is stored with it, one without is its own root (its `root` is its
        id). `parent`, `root` and `trace` are stored as the message has them.
        """
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.QUERY}'")

    async def get(self, item_id: str) -> Item:
        """Return one item by id (QUERY).

        Raises:
            ItemNotFound: no item has that id.
        """
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.QUERY}'")

    async def cancel(self, where: ItemFilter) -> int:
        """Delete the pending items matching queue, name and tid; return how many (CANCEL)."""
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.CANCEL}'")

    async def retry(self, item_id: str) -> str:
        """Move a failed item back to ready now, attempts reset; return its queue (FAILED).

        Raises:
            ItemNotFound: no failed item has that id (the message says what it is).
        """
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.FAILED}'")

    async def counts(self) -> dict[str, dict[State, int]]:
        """Return, per queue holding items, how many are in each state (QUERY)."""
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.QUERY}'")

    async def purge(self, queue: str | None, state: State, older_than: datetime | None) -> int:
        """Delete `state` items (done or failed) finished before `older_than`; how many."""
        raise NotSupported(f"{type(self).__name__} does not support purge")

    # -- recurring schedules (optional capability SCHEDULES) -----------------------------

    async def schedules(self) -> list[ScheduleRecord]:
        """Return every stored schedule, sorted by name (SCHEDULES)."""
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.SCHEDULES}'")

    async def save_schedule(self, record: ScheduleRecord) -> bool:
        """Store `record`, or update the stored schedule of its name; durable (SCHEDULES).

        An update replaces the definition (cron, every, tz, tid, payload, catch_up); it
        replaces `next` only when the timing (cron, every, tz) changed, so a restart that
        saves the same schedule never delays or repeats a firing; `last` is kept.
        Returns False when the stored definition was already this one (nothing changed).
        """
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.SCHEDULES}'")

    async def remove_schedule(self, name: str) -> bool:
        """Delete the schedule called `name`; tell whether there was one (SCHEDULES)."""
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.SCHEDULES}'")

    async def fire_schedule(self, firing: Firing) -> list[str] | None:
        """Carry out `firing` atomically if its schedule is still due at `firing.due`.

        Then, in one step: the schedule's `next` becomes `firing.next`, its `last`
        becomes `firing.fired` (unless None), and `firing.messages` are stored as `put`
        stores them; the new item ids are returned. Otherwise (another app fired it,
        or it was updated or removed meanwhile) nothing changes and None is returned:
        of any number of apps firing one schedule at once, exactly one publishes.
        """
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.SCHEDULES}'")

    # -- workflows (optional capability FLOWS) -------------------------------------------

    async def flow_transaction(
        self, flow_id: str, work: Callable[[FlowTransaction[R]], Awaitable[T]]
    ) -> T:
        """Run `work` on a `FlowTransaction` holding `flow_id`'s lock; commit; return its
        result (FLOWS).

        Transactions on one flow, from any process, run one after another; one in which
        `work` raises changes nothing. A store may run `work` again after a transient
        conflict (what the failed try did is discarded): `work` reads only the transaction.
        """
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.FLOWS}'")

    async def flow_document(self, flow_id: str) -> bytes | None:
        """Return the flow's stored document, or None if there is none (FLOWS)."""
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.FLOWS}'")
