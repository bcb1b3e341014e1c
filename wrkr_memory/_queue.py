"""One queue of the memory backend: its stored items, its pending heap, its leases.

Memory per item matters (a million scheduled items with 200-byte payloads must fit
in well under 500 MB), so an entry is a slotted object of seven references (`tree`
is None for a root published untraced: the usual item pays one pointer for lineage). Its
fixed-width fields share one int, `key`, which is also its place in the heap;
most significant first:

    due (µs since the epoch, signed) | seq (40 bits) | created (60 bits) | id (128 bits)

Ordering keys orders items by due time, then publishing sequence (unique, so the
low fields never decide). The fields only delivered items need live in a separate
`MemoryClaim`.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque
from collections.abc import Callable, Iterator

from wrkr.backend import ErrorRecord, Item, ItemFilter, State, fast_builder, from_micros

_ID_BITS = 128
_CREATED_BITS = 60
_SEQ_BITS = 40
_CREATED_OFFSET = 1 << (_CREATED_BITS - 1)  # so that times before 1970 fit unsigned
_DUE_SHIFT = _SEQ_BITS + _CREATED_BITS + _ID_BITS
ID_MASK = (1 << _ID_BITS) - 1  # an entry's id: the low bits of its key
_CREATED_MASK = (1 << _CREATED_BITS) - 1
_READY = State.READY


def pack_key(due: int, seq: int, created: int, item_id: int) -> int:
    """Return the key holding an entry's due time, sequence, creation time and id."""
    key = (due << _SEQ_BITS) | seq
    key = (key << _CREATED_BITS) | (created + _CREATED_OFFSET)
    return (key << _ID_BITS) | item_id


class MemoryClaim:
    """What an item gathers once delivered: state, attempts, errors, worker, lease.

    `token` changes on every claim, so a receipt naming an older token is stale.
    """

    __slots__ = ("attempts", "errors", "finished", "lease_until", "state", "token", "worker")

    def __init__(self) -> None:
        self.state = State.READY
        self.attempts = 0
        self.errors: tuple[ErrorRecord, ...] = ()
        self.worker: str | None = None
        self.lease_until = 0
        self.token = 0
        self.finished: int | None = None


_NEVER_CLAIMED = MemoryClaim()
_ROOT = (None, None, None)
_new_item = fast_builder(Item)  # an `Item` per delivery: a frozen init costs twice as much


Tree = tuple[str | None, str | None, str | None]
"""An entry's (parent, root, trace); root None means the entry is its own root."""


class MemoryEntry:
    """One stored item; a pending one is READY as stored (SCHEDULED is derived)."""

    __slots__ = ("claim", "key", "name", "payload", "queue", "tid", "tree")
    flow: str | None = None  # a flow's item is a `MemoryFlowEntry`: others pay no slot

    def __init__(self, key: int, queue: str, name: str, tid: str | None, payload: bytes,
                 tree: Tree | None = None) -> None:
        self.key = key
        self.queue = queue
        self.name = name
        self.tid = tid
        self.payload = payload
        self.claim: MemoryClaim | None = None
        self.tree = tree

    def __lt__(self, other: MemoryEntry) -> bool:
        return self.key < other.key

    @property
    def due(self) -> int:
        """Return when the item is due, in microseconds."""
        return self.key >> _DUE_SHIFT

    @property
    def created(self) -> int:
        """Return when the item's event was published, in microseconds."""
        return ((self.key >> _ID_BITS) & _CREATED_MASK) - _CREATED_OFFSET

    @property
    def id(self) -> int:
        """Return the item id as an int (its 32 hex digits, read in base 16)."""
        return self.key & ID_MASK

    @property
    def state(self) -> State:
        """Return the stored state: READY for pending items, whatever their due time."""
        return (self.claim or _NEVER_CLAIMED).state

    def move_to(self, due: int, seq: int) -> None:
        """Give the entry a new due time and place in line (a nack or a retry)."""
        self.key = pack_key(due, seq, self.created, self.id)

    def state_at(self, now: int) -> State:
        """Return the state as reported at `now`: pending items split by due time."""
        state = self.state
        if state is State.READY and self.due > now:
            return State.SCHEDULED
        return state

    def matches(self, where: ItemFilter, now: int) -> bool:
        """Tell whether the entry passes every field of `where` (limit aside)."""
        return ((where.queue is None or self.queue == where.queue)
                and (where.name is None or self.name == where.name)
                and (where.tid is None or self.tid == where.tid)
                and (where.state is None or self.state_at(now) == where.state)
                and (where.root is None or self.root == where.root))

    @property
    def root(self) -> str:
        """Return the id of the entry's tree's root (its own for a root)."""
        tree = self.tree
        return (tree[1] if tree is not None else None) or f"{self.id:032x}"

    def claimed(self) -> MemoryClaim:
        """Return the claim record, creating it on the first delivery."""
        if self.claim is None:
            self.claim = MemoryClaim()
        return self.claim

    def snapshot(self, now: int) -> Item:
        """Return the entry as the contract's frozen `Item`."""
        claim = self.claim or _NEVER_CLAIMED
        key = self.key  # the fields' properties, inline: this runs once per delivery
        due_us = key >> _DUE_SHIFT
        created_us = ((key >> _ID_BITS) & _CREATED_MASK) - _CREATED_OFFSET
        due = from_micros(due_us)
        created = due if created_us == due_us else from_micros(created_us)  # published due now
        item_id = f"{key & ID_MASK:032x}"
        parent, root, trace = self.tree or _ROOT
        state = claim.state
        if state is _READY and due_us > now:
            state = State.SCHEDULED
        return _new_item(  # by position, in `Item`'s field order: keywords cost more
            item_id, self.queue, self.name, self.tid, self.payload, due, created, state,
            claim.attempts, claim.errors, claim.worker,
            None if claim.finished is None else from_micros(claim.finished),
            self.flow, parent, root or item_id, trace)


class MemoryFlowEntry(MemoryEntry):
    """A stored item made by a flow's job: an entry that knows its flow's id."""

    __slots__ = ("flow",)

    def __init__(self, key: int, queue: str, name: str, tid: str | None, payload: bytes,
                 flow: str, tree: Tree | None = None) -> None:
        super().__init__(key, queue, name, tid, payload, tree)
        self.flow = flow


class MemoryQueue:
    """A queue's pending entries and its leased ones; `wake(name)` is called on every push.

    Pending entries live in two sorted structures that are merged on the way out: a
    FIFO lane taking every entry whose key is above the lane's last (the common case:
    items published due now, in publishing order), and a heap for the rest (scheduled
    out of order). The lane costs no comparisons at all, where a heap of 20k entries
    costs ~15 Python-level `__lt__` calls per push and pop.
    """

    def __init__(self, name: str, wake: Callable[[str | None], None]) -> None:
        self.name = name
        self._wake = wake
        self.lane: deque[MemoryEntry] = deque()  # ascending keys
        self.heap: list[MemoryEntry] = []
        self.processing: set[MemoryEntry] = set()
        self.busy: set[str] | None = None  # tids processing, kept for exclusive queues only
        # (name, tid) -> pending count; built on the first `once_every` message only,
        # so that queues never deduplicated pay nothing for it.
        self._pending_names: Counter[tuple[str, str | None]] | None = None

    def push(self, entry: MemoryEntry) -> None:
        """Add `entry` to the pending entries (at its key); `wake()` tells the consumers."""
        if entry.claim is not None:
            entry.claim.state = State.READY
        lane = self.lane
        if not lane or lane[-1].key < entry.key:
            lane.append(entry)
        else:
            heapq.heappush(self.heap, entry)
        if self._pending_names is not None:
            self._count_pending(entry, 1)

    def wake(self) -> None:
        """Tell this queue's consumers it may have work (once per batch of pushes)."""
        self._wake(self.name)

    def hold_tids(self) -> None:
        """Start keeping `busy`, the tids with an item processing (an exclusive queue)."""
        if self.busy is None:
            self.busy = {entry.tid for entry in self.processing if entry.tid is not None}

    def let_go(self, entry: MemoryEntry) -> None:
        """Forget a leased entry (settled, or its lease ended): its tid is free again."""
        self.processing.discard(entry)
        if self.busy is not None:
            self.busy.discard(entry.tid)

    def put_back(self, entries: list[MemoryEntry]) -> None:
        """Return popped entries to the pending ones unchanged, waking nobody (skipped)."""
        for entry in entries:
            heapq.heappush(self.heap, entry)
            if self._pending_names is not None:
                self._count_pending(entry, 1)

    def pop_due(self, now: int) -> MemoryEntry | None:
        """Remove and return the first pending entry if it is due at `now`."""
        lane, heap = self.lane, self.heap  # `first()` and `due`, inline: once per claim
        if lane and (not heap or lane[0].key < heap[0].key):
            if lane[0].key >> _DUE_SHIFT > now:
                return None
            entry = lane.popleft()
        elif heap:
            if heap[0].key >> _DUE_SHIFT > now:
                return None
            entry = heapq.heappop(heap)
        else:
            return None
        if self._pending_names is not None:
            self._count_pending(entry, -1)
        return entry

    def first(self) -> MemoryEntry | None:
        """Return the pending entry that comes out next (lowest key), or None."""
        lane, heap = self.lane, self.heap
        if lane and (not heap or lane[0].key < heap[0].key):
            return lane[0]
        return heap[0] if heap else None

    @property
    def pending(self) -> Iterator[MemoryEntry]:
        """Iterate over the pending entries, in no particular order."""
        return itertools.chain(self.lane, self.heap)

    def holds_pending(self, name: str, tid: str | None) -> bool:
        """Tell whether a pending entry has this name and tid."""
        if self._pending_names is None:
            self._pending_names = Counter((entry.name, entry.tid) for entry in self.pending)
        return self._pending_names[name, tid] > 0

    def _count_pending(self, entry: MemoryEntry, delta: int) -> None:
        names = self._pending_names
        if names is not None:
            key = (entry.name, entry.tid)
            names[key] += delta
            if names[key] <= 0:
                del names[key]

    def take_pending(self, doomed: Callable[[MemoryEntry], bool]) -> list[MemoryEntry]:
        """Remove and return the pending entries `doomed` picks (O(n): cancel is rare)."""
        taken: list[MemoryEntry] = []
        lane: deque[MemoryEntry] = deque()
        heap: list[MemoryEntry] = []
        for entry in self.lane:
            (taken if doomed(entry) else lane).append(entry)  # stays sorted
        for entry in self.heap:
            (taken if doomed(entry) else heap).append(entry)
        if taken:
            heapq.heapify(heap)
            self.lane, self.heap = lane, heap
            self._pending_names = None
        return taken

    def expired(self, now: int) -> list[MemoryEntry]:
        """Return the leased entries whose lease ended by `now`."""
        return [entry for entry in self.processing if entry.claimed().lease_until <= now]

    def next_change(self, after: int | None = None) -> int | None:
        """Return when something may next become claimable (a due time or lease end).

        With `after`, only due times later than it count (O(n): exclusive queues only).
        """
        times = [entry.claimed().lease_until for entry in self.processing]
        if after is None:
            first = self.first()
            if first is not None:
                times.append(first.due)
        else:
            times.extend(due for entry in self.pending if (due := entry.due) > after)
        return min(times, default=None)
