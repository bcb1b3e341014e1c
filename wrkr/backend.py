"""The contract between wrkr's core and its backends.

Backend authors import from here. The core owns the semantics (retries, backoff,
timeouts, `when` parsing, serialization, handler dispatch); a backend only stores
and moves items. Every promise in a method docstring below is checked by a named
test in `backend_conformance_tests`.

Vocabulary:
    message   an event on its way in (`Message`): name, tid, encoded payload, due time.
    item      one queue's copy of a message (`Item`); fan-out makes one per matching queue.
    delivery  an item claimed by a worker (`Delivery`), with an opaque `receipt` the
              core hands back to `ack` / `nack` / `fail` / `release` and never inspects.
"""

from __future__ import annotations

import abc
import itertools
import os
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Protocol, Self

from wrkr._errors import (
    BackendUnavailable,
    ItemNotFound,
    LeaseLost,
    NotStarted,
    NotSupported,
)
from wrkr._urls import redact, scrub

__all__ = [
    "PENDING_STATES",
    "Backend",
    "BackendUnavailable",
    "Capability",
    "Clock",
    "Delivery",
    "ErrorRecord",
    "Item",
    "ItemFilter",
    "ItemNotFound",
    "LeaseLost",
    "Message",
    "NotStarted",
    "NotSupported",
    "State",
    "SystemClock",
    "new_item_id",
    "redact",
    "scrub",
]


class Capability(StrEnum):
    """What a backend can do beyond publish / subscribe / consume / ack."""

    DELAY = "delay"  # messages due in the future are held until then
    WILDCARDS = "wildcards"  # `*` and `#` in subscription patterns
    QUERY = "query"  # items() and get() by id, queue, name, tid, state
    CANCEL = "cancel"  # cancel() pending items
    ONCE_EVERY = "once_every"  # atomic dedupe of pending items by (queue, name, tid)
    ARCHIVE = "archive"  # keep acked items as `done` until they expire
    FAILED = "failed"  # list failed items (items(state=FAILED, queue=...)) and retry() them
    TRANSACTIONAL = "transactional"  # enqueue inside the caller's own open transaction


class State(StrEnum):
    """Where an item is in its life."""

    SCHEDULED = "scheduled"  # waiting, due in the future
    READY = "ready"  # due, waiting for a worker
    PROCESSING = "processing"  # claimed by a worker under a lease
    DONE = "done"  # acked and archived (only with archive "keep")
    FAILED = "failed"  # parked after `Fail` or the last attempt


PENDING_STATES = frozenset({State.SCHEDULED, State.READY})
"""States `cancel` and `once_every` act on: not yet handed to a worker."""


class _ItemIds:
    """Item ids: 64 random bits drawn per process, then a 64-bit counter.

    As unique across processes as a uuid4 for any realistic number of processes,
    at a fraction of the cost (no `os.urandom` per id). A forked child draws its
    own prefix, so parent and child never hand out the same id.
    """

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        """Draw a new random prefix and restart the counter."""
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count()

    def next(self) -> str:
        """Return the next id: the prefix, then the counter in 16 hex digits."""
        return f"{self.prefix}{next(self.counter):016x}"


_ITEM_IDS = _ItemIds()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ITEM_IDS.reseed)


def new_item_id() -> str:
    """Return a fresh, unique item id (32 hex characters)."""
    return _ITEM_IDS.next()


class Clock(Protocol):
    """A source of the current time; the memory backend accepts a controllable one."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware UTC."""
        return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """One failed attempt: when, which attempt, and what was raised."""

    at: datetime
    attempt: int
    type: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the time as ISO-8601)."""
        return {"at": self.at.isoformat(), "attempt": self.attempt,
                "type": self.type, "message": self.message}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorRecord:
        """Rebuild a record written by `to_dict`."""
        return cls(datetime.fromisoformat(data["at"]), int(data["attempt"]),
                   str(data["type"]), str(data["message"]))


@dataclass(frozen=True, slots=True)
class Message:
    """An event on its way into the backend, already validated and encoded by the core.

    Attributes:
        name: the event name, routing key of the fan-out.
        tid: the target id, or None.
        payload: the JSON-encoded payload (bytes; backends store it as they get it).
        due: when the items become ready (aware UTC; may be in the past).
        created: when the event was published (aware UTC).
        dedupe: `once_every`: skip any queue that already holds a pending
            (scheduled or ready) item with the same name and tid.
    """

    name: str
    tid: str | None
    payload: bytes
    due: datetime
    created: datetime
    dedupe: bool = False


@dataclass(frozen=True, slots=True)
class Item:
    """One queue's copy of an event, as stored.

    `attempts` counts deliveries so far, the one under way included; `errors`
    holds one record per failed attempt, oldest first.
    """

    id: str
    queue: str
    name: str
    tid: str | None
    payload: bytes
    due: datetime
    created: datetime
    state: State
    attempts: int = 0
    errors: tuple[ErrorRecord, ...] = ()
    worker: str | None = None
    finished: datetime | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """An item claimed by one worker; `receipt` is the backend's own, opaque to the core."""

    item: Item
    receipt: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class ItemFilter:
    """Which items `items()` and `cancel()` act on; None matches anything."""

    queue: str | None = None
    name: str | None = None
    tid: str | None = None
    state: State | None = None
    limit: int | None = None

    def matches(self, item: Item) -> bool:
        """Tell whether `item` passes every field that is set (limit aside)."""
        return ((self.queue is None or item.queue == self.queue)
                and (self.name is None or item.name == self.name)
                and (self.tid is None or item.tid == self.tid)
                and (self.state is None or item.state == self.state))


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
        """Connect on the first call; later calls only count another user."""
        if self._users == 0:
            await self.connect()
        self._users += 1

    async def close(self) -> None:
        """Disconnect on the last user's call; extra calls do nothing."""
        if self._users == 0:
            return
        self._users -= 1
        if self._users == 0:
            await self.disconnect()

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

    # -- publishing ----------------------------------------------------------------

    @abc.abstractmethod
    async def enqueue(
        self, messages: Sequence[Message], *, connection: Any = None
    ) -> list[str]:
        """Store one item per (message, matching queue), all or nothing.

        Returns the new item ids in message order. A message that reaches no
        queue creates nothing. A `dedupe` message creates nothing for a queue that
        already holds a pending item with its name and tid, atomically: concurrent
        `dedupe` publishers never create two. Backends whose fan-out happens in a broker
        may return one id per message, shared by its copies, and may route a
        delayed message when it falls due, to the queues subscribed then.

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
    ) -> AsyncGenerator[Delivery, None]:
        """Yield the items of `queue` as they become due, each claimed for `worker`.

        Order: by due time, then publishing order (FIFO among items due together).
        A claimed item is `processing`, records `worker`, counts one more attempt and
        is held for `lease`; if it is neither acked, nacked, failed nor released by
        then, it becomes claimable again (a backend whose claims live on a broker
        channel holds them as long as that channel instead). Never yields an item before it is due,
        nor one another worker holds. At most `prefetch` items are claimed and not
        yet yielded. Waits (without busy polling) while nothing is due. Closing the
        iterator releases what it claimed but did not yield. When the server is
        lost, it may ride the outage out itself or raise `BackendUnavailable`; the
        core then opens a new iterator after a pause (0.5 s, doubling up to 5 s).
        """

    @abc.abstractmethod
    async def ack(
        self, delivery: Delivery, *, keep: bool = False, expires: datetime | None = None
    ) -> None:
        """Finish the item: delete it, or with `keep` mark it `done` until `expires`.

        Raises:
            LeaseLost: this delivery no longer holds the item (its lease expired, or it
                was settled already).
        """

    @abc.abstractmethod
    async def nack(self, delivery: Delivery, *, due: datetime, error: ErrorRecord) -> None:
        """Return the item to its own queue (no other), ready at `due`, `error` recorded.

        Raises:
            LeaseLost: this delivery no longer holds the item (its lease expired, or it
                was settled already).
        """

    @abc.abstractmethod
    async def fail(self, delivery: Delivery, *, error: ErrorRecord) -> None:
        """Park the item as `failed`, `error` appended to its history.

        Raises:
            LeaseLost: this delivery no longer holds the item (its lease expired, or it
                was settled already).
        """

    @abc.abstractmethod
    async def release(self, delivery: Delivery) -> None:
        """Give the item back, ready at once, its attempt not counted (a graceful stop).

        The item keeps its due time, hence its place in line, where the backend can
        (a broker requeues it at the back).

        Raises:
            LeaseLost: this delivery no longer holds the item (its lease expired, or it
                was settled already).
        """

    # -- inspection and control (optional capabilities) ----------------------------

    async def items(self, where: ItemFilter) -> list[Item]:
        """Return the items that match, oldest due first (QUERY; FAILED for failed ones)."""
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
