"""The data that crosses the boundary between the core and a backend.

Frozen, slotted dataclasses: a `Message` going in, an `Item` as stored, a `Delivery`
coming out with an opaque receipt the core hands back and never inspects.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

__all__ = [
    "PENDING_STATES",
    "Capability",
    "Clock",
    "Delivery",
    "ErrorRecord",
    "Item",
    "ItemFilter",
    "Message",
    "State",
    "SystemClock",
    "new_item_id",
]

R = TypeVar("R")

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
    EXCLUSIVE = "exclusive"  # subscribe(exclusive=True): one item per tid processing at a time
    RATE = "rate"  # subscribe(rate=...) and app.limiter(): sliding-window limits in the store
    SCHEDULES = "schedules"  # recurring schedules, each firing published once (app.schedule)
    FLOWS = "flows"  # workflows: steps of parallel jobs with results (app.start_flow)
    LINEAGE = "lineage"  # items(ItemFilter(root=...)): the tree of items a chain of handlers made
    TIMED_LEASES = "timed_leases"  # an unrenewed claim ends with its lease, not with a channel


class State(StrEnum):
    """Where an item is in its life."""

    SCHEDULED = "scheduled"  # waiting, due in the future
    READY = "ready"  # due, waiting for a worker
    PROCESSING = "processing"  # claimed by a worker under a lease
    DONE = "done"  # acked and archived (only with archive "keep")
    FAILED = "failed"  # parked after `Fail` or the last attempt


PENDING_STATES = frozenset({State.SCHEDULED, State.READY})
"""States `cancel` and `once_every` act on: not yet handed to a worker."""

FINISHED_STATES = frozenset({State.DONE, State.FAILED})
"""States `purge` acts on: an item's life is over."""


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


new_item_id: Callable[[], str] = _ITEM_IDS.next
"""Return a fresh, unique item id (32 hex characters).

The bound method itself, not a function calling it: stores call it once per item."""


def copy_id(message_id: str, queue: str) -> str:
    """Return the item id of message `message_id`'s copy in `queue` (32 hex characters).

    A broker fans a message out to its queues itself, so the publisher cannot hand each
    copy an id; it and every consumer derive the copy's id by this rule instead, and
    agree without telling each other: the first 32 hex digits of the SHA-256 of the
    UTF-8 string ``"<message id>/<queue>"``.
    """
    return hashlib.sha256(f"{message_id}/{queue}".encode()).hexdigest()[:32]


COPY_IDS = "copy_ids"
"""The broker metadata field saying that each queue's copy is named by a rule."""

COPY_RULE = "sha256"
"""The rule that field names: `copy_id`."""


def copy_metadata(meta: Mapping[str, Any], queue: str) -> dict[str, Any] | None:
    """Return a broker message's metadata as its copy in `queue` carries it.

    The copy's own `copy_id` becomes its ``id`` and the field naming the rule goes, so a
    copy sent on to one queue keeps its id. None: a message from before copy ids
    (wire format 1.0), whose copies keep the id its publisher returned.
    """
    if COPY_IDS not in meta:
        return None
    copied = {**meta, "id": copy_id(str(meta["id"]), queue)}
    del copied[COPY_IDS]
    return copied


class Clock(Protocol):
    """A source of the current time; the memory backend accepts a controllable one."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real wall clock."""

    now: Callable[[], datetime] = functools.partial(datetime.now, UTC)
    """Return the current time, timezone-aware UTC (a partial: no Python frame per call,
    and the core reads the clock once per claim and settlement)."""


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """One failed attempt: when, which attempt, and what was raised."""

    at: datetime
    attempt: int
    type: str
    message: str
    traceback: str | None = None  # the last frames, as `traceback.format_exception` writes

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the time as ISO-8601; no traceback key if none)."""
        data: dict[str, Any] = {"at": self.at.isoformat(), "attempt": self.attempt,
                                "type": self.type, "message": self.message}
        if self.traceback is not None:
            data["traceback"] = self.traceback
        return data

    @classmethod
    def history(cls, stored: Any,
                read: Callable[[Any], ErrorRecord] | None = None) -> tuple[ErrorRecord, ...]:
        """Rebuild an item's stored error history, never failing on a record it cannot read.

        A row or message written by something other than wrkr must not make every claim
        of its queue fail (one bad row would stop the queue): a record that `read`
        (default `from_dict`) cannot rebuild is kept as one saying so.
        """
        entries = stored if isinstance(stored, list | tuple) else [stored]
        records = []
        for entry in entries:
            try:
                records.append((read or cls.from_dict)(entry))
            except (TypeError, KeyError, ValueError, AttributeError):
                records.append(cls(datetime.fromtimestamp(0, UTC), 0, "UnreadableError",
                                   f"unreadable error record: {repr(entry)[:200]}"))
        return tuple(records)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorRecord:
        """Rebuild a record written by `to_dict` (or by a version without tracebacks)."""
        trace = data.get("traceback")
        return cls(datetime.fromisoformat(data["at"]), int(data["attempt"]),
                   str(data["type"]), str(data["message"]),
                   None if trace is None else str(trace))


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
        parent: the id of the item whose handler published it (None outside a handler).
        root: the root of that item's tree (None outside a handler: each stored copy is
            then a root, its root its own id).
        trace: the publisher's W3C ``traceparent`` (OpenTelemetry), or None.
    """

    name: str
    tid: str | None
    payload: bytes
    due: datetime
    created: datetime
    dedupe: bool = False
    parent: str | None = None
    root: str | None = None
    trace: str | None = None


@dataclass(frozen=True, slots=True)
class Item:
    """One queue's copy of an event, as stored.

    `attempts` counts deliveries so far, the one under way included; `errors`
    holds one record per failed attempt, oldest first. `parent` is the id of the item
    whose handler published it (None for a root); `root` the first item of that chain
    (a root's own id); `trace` the publisher's W3C ``traceparent``, if any.
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
    flow: str | None = None  # the id of the flow whose job made it (FLOWS), else None
    parent: str | None = None
    root: str | None = None
    trace: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery(Generic[R]):
    """An item claimed by one worker; `receipt` is the backend's own, opaque to the core.

    A backend types its deliveries by its receipt: `Delivery[PostgresReceipt]`.
    """

    item: Item
    receipt: R = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class ItemFilter:
    """Which items `items()` and `cancel()` act on; None matches anything.

    `items()` skips the first `offset` matches, then returns at most `limit`. `root`
    (LINEAGE) matches the items of one tree, its root included.
    """

    queue: str | None = None
    name: str | None = None
    tid: str | None = None
    state: State | None = None
    limit: int | None = None
    offset: int = 0
    root: str | None = None

    def matches(self, item: Item) -> bool:
        """Tell whether `item` passes every field that is set (limit aside)."""
        return ((self.queue is None or item.queue == self.queue)
                and (self.name is None or item.name == self.name)
                and (self.tid is None or item.tid == self.tid)
                and (self.state is None or item.state == self.state)
                and (self.root is None or item.root == self.root))
