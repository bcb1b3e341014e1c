"""MongoDBBackend: wrkr on MongoDB, through PyMongo's own async API.

URL:
    ``mongodb://[user:password@]host[:port][,host2...]/[database][?options]`` or
    ``mongodb+srv://...``; the database defaults to ``wrkr``. Options in the query string
    go to the driver (``replicaSet``, ``tls``, ``serverSelectionTimeoutMS``...; wrkr
    defaults the last to 5 s). Keyword options of `MongoDBBackend` pass through
    `Wrkr.from_url(url, **options)`. A bad host, option or value raises `InvalidConfig`
    at once, naming it (and the valid options), the password masked. Motor is past its
    end of life and not used.

Capabilities:
    delay, wildcards, query, cancel, once_every, archive, failed, schedules, exclusive,
    rate, flows, lineage (not transactional).

Storage (collections ``<prefix>items`` and ``<prefix>subscriptions``, prefix ``wrkr_``):
    subscriptions   one document per (queue, pattern); a publish reads them once for
                    all its messages (one query), so a subscription made anywhere counts
                    in the next publish. `subscriptions_ttl` > 0 trusts a loaded table
                    that long instead (reloaded at once after a subscribe / unsubscribe
                    through this backend): a query saved, others' changes seen later.
    items           one document per (event, queue); see `_documents` for the fields and
                    indexes. A claim is one `find_one_and_update` (a batch: a find and an
                    `update_many`, see `_claims`) seeking the (queue, state, due, seq)
                    index. Each claim draws a token that fences renew / ack / nack /
                    fail / release: a worker whose lease ran out and whose item was
                    claimed again gets `LeaseLost`. Settlements go in batches, one
                    `bulk_write` each.
    queues, tids, windows
                    coordination without transactions (see `_exclusive`, `_windows`):
                    a queue's options, one document per queue; a lock per (queue, tid)
                    in flight, taken by an upsert that collides on `_id` while a live
                    one exists, leased with its item; per rate window, the last
                    period's start times, updated by compare-and-set

Batches: on a replica set or sharded cluster (asked once at connect), a publish that
creates more than one item inserts them all in one transaction, `once_every` dedupe
included: stored whole or not at all (transient failures retried a few times; a commit
whose outcome stays unknown raises `BackendUnavailable` saying so). A single item is one
atomic insert, no transaction. A standalone server has no transactions: there a batch
that fails midway is undone as far as possible, and a server lost mid-batch can leave
part of it stored. Nothing else uses transactions.

Wake-ups: while some consumer is idle, a change stream (replica sets) wakes it at once
on new or returned items; busy consumers claim without waiting, so the stream closes
after a few seconds without idle consumers. Without change streams, consumers poll
adaptively (fast after work, backing off to `poll_max` while idle). Either way an idle
consumer sleeps no longer than until the next due time or lease end. The delivery loop
itself (prefetch, batched settlements, lease renewal, recovery) is the core's.
"""

from __future__ import annotations

from typing import Any, Self

from wrkr.backend import InvalidConfig, StoreBackend
from wrkr_mongodb._claims import MongoDBReceipt
from wrkr_mongodb._connection import DEFAULT_URL, MongoDBAddress
from wrkr_mongodb._store import MongoDBStore

OPTIONS = ("client", "database", "idle_max", "poll_max", "poll_min", "prefix",
           "subscriptions_ttl")


class MongoDBBackend(StoreBackend[MongoDBReceipt]):
    """Stores wrkr's subscriptions and items in MongoDB (PyMongo's `AsyncMongoClient`).

    Args:
        url: the server's URL (default ``mongodb://localhost:27017/wrkr``).
        client: an existing `AsyncMongoClient` (or a stand-in such as the in-process
            mock) to use instead of building one; the backend does not close it.
        database: the database; default: the URL's, else ``wrkr``.
        prefix: prepended to the collection names.
        subscriptions_ttl: seconds a routing table is trusted (0: read for every publish;
            more saves that query, and others' changes show that much later).
        poll_min: seconds between claims when polling, right after work.
        poll_max: seconds between claims when polling, once idle for a while.
        idle_max: longest sleep with a change stream (a safety net, not the wake-up).

    Raises:
        UnknownBackend: not a ``mongodb://`` or ``mongodb+srv://`` URL.
        InvalidConfig: a bad URL, option or value (named in the message).
    """

    capabilities = MongoDBStore.capabilities

    def __init__(self, url: str | None = None, *, client: Any = None,
                 database: str | None = None, prefix: str = "wrkr_",
                 subscriptions_ttl: float = 0.0, poll_min: float = 0.02,
                 poll_max: float = 1.0, idle_max: float = 30.0) -> None:
        address = MongoDBAddress.parse(url or DEFAULT_URL, database)
        _check_seconds(poll_min=poll_min, poll_max=poll_max, idle_max=idle_max)
        _check_seconds(zero_allowed=True, subscriptions_ttl=subscriptions_ttl)
        if poll_min > poll_max:
            raise InvalidConfig(f"MongoDBBackend needs poll_min <= poll_max, got "
                                f"poll_min={poll_min!r} and poll_max={poll_max!r}")
        if not isinstance(prefix, str) or "$" in prefix:
            raise InvalidConfig(f"MongoDBBackend cannot use prefix={prefix!r}: expected "
                                "a string without '$'")
        super().__init__(MongoDBStore(
            address, client=client, prefix=prefix, subscriptions_ttl=subscriptions_ttl,
            poll_min=poll_min, poll_max=poll_max, idle_max=idle_max))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build a backend for ``mongodb://`` and ``mongodb+srv://`` URLs.

        Raises:
            UnknownBackend: another scheme.
            InvalidConfig: an unknown option (the valid ones are listed), or a bad value.
        """
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            address = MongoDBAddress.parse(url)
            raise InvalidConfig(f"MongoDBBackend got unknown option(s) {unknown} for "
                                f"{address!r}; valid options: {', '.join(OPTIONS)}")
        return cls(url, **options)


def _check_seconds(*, zero_allowed: bool = False, **values: float) -> None:
    for name, value in values.items():
        if (isinstance(value, bool) or not isinstance(value, int | float) or value < 0
                or (value == 0 and not zero_allowed)):
            least = "0 or more" if zero_allowed else "above 0"
            raise InvalidConfig(f"MongoDBBackend cannot use {name}={value!r}: expected a "
                                f"number of seconds {least}")
