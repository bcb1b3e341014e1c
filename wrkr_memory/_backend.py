"""The in-memory backend: wrkr's embedded default, for tests, examples and one process.

URL:
    ``memory://``        a fresh store of its own.
    ``memory://NAME``    the store called NAME, shared by every backend built from that
                         URL in this process. Nothing outlives the process.
    Option: ``clock=`` (a `ManualClock`, say), as for the constructor.

Capabilities: every one but TRANSACTIONAL (there is no transaction to join):
DELAY, WILDCARDS, QUERY, CANCEL, ONCE_EVERY, ARCHIVE, FAILED, SCHEDULES, LINEAGE, ...

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

Consumers never poll: every change to a queue wakes them, a `ManualClock` wakes them
when it moves, and otherwise they sleep until the next due time or lease end.
"""

from __future__ import annotations

from typing import Any, Self
from urllib.parse import urlsplit

from wrkr.backend import Clock, InvalidConfig, StoreBackend, UnknownBackend
from wrkr_memory._store import MemoryReceipt, MemoryStore

_NAMED_STORES: dict[str, MemoryStore] = {}


class MemoryBackend(StoreBackend[MemoryReceipt]):
    """Keeps subscriptions and items in a `MemoryStore`, in this process.

    Args:
        store: the storage to use; a fresh one when omitted. Backends sharing a
            store share everything, as separate processes on one server would.
        clock: what "now" is; `ManualClock` lets a test move time by hand. Given with
            a shared store, it becomes that store's clock.
    """

    capabilities = MemoryStore.capabilities

    def __init__(self, store: MemoryStore | None = None, *, clock: Clock | None = None) -> None:
        store = store if store is not None else MemoryStore()
        if clock is not None:
            store.clock = clock
        super().__init__(store)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build a backend for ``memory://`` (a fresh store) or ``memory://NAME`` (shared).

        Raises:
            UnknownBackend: not a ``memory:`` URL.
            InvalidConfig: a query string, or an option other than ``clock``.
        """
        parts = urlsplit(url)
        if parts.scheme != "memory":
            raise UnknownBackend(f"MemoryBackend cannot use {url!r}: expected 'memory://'")
        if parts.query or parts.fragment:
            raise InvalidConfig(f"MemoryBackend cannot use {url!r}: "
                                "expected 'memory://' or 'memory://NAME'")
        unknown = sorted(set(options) - {"clock"})
        if unknown:
            raise InvalidConfig(f"MemoryBackend got unknown option(s) {unknown} for {url!r}; "
                                "the only option is 'clock'")
        name = (parts.netloc + parts.path).strip("/")
        store = _NAMED_STORES.setdefault(name, MemoryStore()) if name else MemoryStore()
        return cls(store, clock=options.get("clock"))
