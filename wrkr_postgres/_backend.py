"""The PostgreSQL backend: background work in the database the application already runs.

URL:
    ``postgresql://user:password@host:5432/database?schema=wrkr`` (or ``postgres://``).
    wrkr's own query options, also accepted as keyword arguments (keywords win):
    ``schema`` (default ``wrkr``) every table, index, function and view lives there;
    ``pool_size`` (10) connections per pool; ``poll_interval`` (5 s) the safety-net
    poll; ``cleanup_interval`` (60 s) how often kept done items past their retention
    are purged; ``fast_settle`` (true) commit claims and acks asynchronously (see
    `_db`). Every other query option goes to libpq (``sslmode``, ``connect_timeout``).
    Passwords never appear in logs or errors.

Capabilities: every one: DELAY, WILDCARDS, QUERY, CANCEL, ONCE_EVERY, ARCHIVE, FAILED,
and TRANSACTIONAL: ``enqueue(messages, connection=conn)`` (``publish(..., connection=)``)
runs inside the caller's open psycopg ``AsyncConnection`` and its transaction, so the
event exists exactly when the application's change commits (an outbox).

Storage (``sql/0001_init.sql``; migrations applied at connect, recorded in
``<schema>.migrations``):
    subscriptions   (queue, pattern, regex); wildcards matched by a POSIX regex in
                    the publishing statement itself, so routing is always current
    items           one row per queue copy: payload bytes as given, due / created
                    ``timestamptz``, state pending | processing | done | failed,
                    attempts, errors (jsonb), worker, lease token and end, finished
    item_status     a view for applications: the state as wrkr reports it
Claims are ``FOR UPDATE SKIP LOCKED`` batches; a lease token fences late settlements
(`LeaseLost`); an expired lease is claimable again. NOTIFY on the channel
``wrkr_<schema>`` (payload: the queue) wakes consumers at commit.

Times: the backend's clock (``self.now()``, the client's) is passed into every
statement, for due times and lease ends alike, so one clock decides everything; keep
the workers' clocks in sync (NTP) as with any lease-based queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime, timedelta
from typing import Any, Self

import psycopg

from wrkr._errors import NotStarted
from wrkr.backend import (
    Backend,
    Capability,
    Clock,
    Delivery,
    ErrorRecord,
    Item,
    ItemFilter,
    ItemNotFound,
    LeaseLost,
    Message,
    State,
    SystemClock,
)
from wrkr_postgres._acks import PostgresAck, PostgresAckBatcher
from wrkr_postgres._claims import PostgresClaimer
from wrkr_postgres._config import PostgresSettings, settings_from_url
from wrkr_postgres._db import PostgresPool, wrapped
from wrkr_postgres._listener import PostgresListener
from wrkr_postgres._names import channel_for, pattern_regex
from wrkr_postgres._rows import PostgresReceipt, error_json, parse_item_id, to_item
from wrkr_postgres._sql import load_queries, migrate

logger = logging.getLogger("wrkr.postgres")
_CONNECT_TIMEOUT = 10.0
_PENDING = (None, State.SCHEDULED, State.READY)


class PostgresBackend(Backend):
    """Keeps subscriptions and items in PostgreSQL tables of one schema.

    Args:
        url: ``postgresql://user@host:port/database`` with optional wrkr options.
        clock: what "now" is (tests); the system clock by default.
        **options: ``schema``, ``pool_size``, ``poll_interval``, ``cleanup_interval``,
            ``fast_settle`` (see the module docstring).
    """

    capabilities = frozenset(Capability)

    def __init__(self, url: str = "postgresql://127.0.0.1:5432/postgres", *,
                 clock: Clock | None = None, **options: Any) -> None:
        self.settings: PostgresSettings = settings_from_url(url, options)
        self.clock = clock if clock is not None else SystemClock()
        self.channel = channel_for(self.settings.schema)
        url = self.settings.conninfo
        self.pool = PostgresPool(url, self.settings.pool_size)
        self.settle_pool = PostgresPool(url, self.settings.pool_size,
                                        fast_commit=self.settings.fast_settle)
        self.listener = PostgresListener(url, self.channel)
        self.queries: dict[str, str] = {}
        self.held: set[PostgresReceipt] = set()  # claimed here, not yet settled
        # batches all handed out, by lease token: their first settlement claims the next
        self.handed_out: dict[uuid.UUID, PostgresClaimer] = {}
        self.connected = False
        self._acks = PostgresAckBatcher(self._flush_acks)
        self._janitor: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build a backend from a ``postgresql://`` URL; see the module docstring."""
        return cls(url, **options)

    # -- lifecycle -----------------------------------------------------------------

    async def connect(self) -> None:
        """Open the pools, apply missing migrations, start LISTEN and the cleanup."""
        with wrapped(self.settings.conninfo):  # one plain connection: fails fast if down
            conn = await psycopg.AsyncConnection.connect(self.settings.conninfo, autocommit=True)
            async with conn:
                await migrate(conn, self.settings.schema)
        await self.pool.open(_CONNECT_TIMEOUT)
        try:
            await self.settle_pool.open(_CONNECT_TIMEOUT)
        except BaseException:
            await self.pool.close()
            await self.settle_pool.close()
            raise
        self.queries = load_queries(self.settings.schema)
        await self.listener.start(_CONNECT_TIMEOUT)
        self.connected = True
        self._closing = asyncio.Event()
        self._janitor = asyncio.create_task(self._clean_forever(), name="wrkr-postgres-janitor")

    async def disconnect(self) -> None:
        """Give back what this backend holds (as if its leases expired), then close."""
        self.connected = False
        self.listener.wake_all()  # waiting consumers see the close and end
        self._closing.set()
        if self._janitor is not None:
            await asyncio.gather(self._janitor, return_exceptions=True)
        await self._acks.drain()
        with contextlib.suppress(Exception):
            await self.give_back(list(self.held), uncount=False)
        self.held.clear()
        self.queries = {}
        await self.listener.stop()
        await self.pool.close()
        await self.settle_pool.close()

    # -- subscriptions ---------------------------------------------------------------

    async def subscribe(self, queue: str, pattern: str) -> None:
        """Route events matching `pattern` to `queue`; see `Backend.subscribe`."""
        params = {"queue": queue, "pattern": pattern, "regex": pattern_regex(pattern)}
        await self._fetch("subscribe", params)

    async def unsubscribe(self, queue: str, pattern: str) -> None:
        """Stop routing `pattern` to `queue`; see `Backend.unsubscribe`."""
        await self._fetch("unsubscribe", {"queue": queue, "pattern": pattern})

    async def queues_for(self, name: str) -> list[str]:
        """Return the sorted queues `name` reaches; see `Backend.queues_for`."""
        return sorted(row[0] for row in await self._fetch("queues_for", {"name": name}))

    # -- publishing ------------------------------------------------------------------

    async def enqueue(self, messages: Sequence[Message], *, connection: Any = None) -> list[str]:
        """Store the items of a batch in one statement; see `Backend.enqueue`.

        Args:
            messages: the batch.
            connection: a psycopg ``AsyncConnection``: the items are inserted in its
                current transaction and exist (and wake consumers) when it commits.
        """
        if not messages:
            self._require_open()
            return []
        params = self._enqueue_params(messages)
        if connection is None:
            rows = await self._fetch("enqueue", params)
        else:
            rows = await self._fetch_on(connection, "enqueue", params)
        return [row[0].hex for row in rows]

    def _enqueue_params(self, messages: Sequence[Message]) -> dict[str, Any]:
        return {"names": [m.name for m in messages], "tids": [m.tid for m in messages],
                "payloads": [m.payload for m in messages], "dues": [m.due for m in messages],
                "createds": [m.created for m in messages],
                "dedupes": [m.dedupe for m in messages], "now": self.now(),
                "channel": self.channel}

    async def _fetch_on(self, connection: Any, name: str,
                        params: dict[str, Any]) -> list[tuple[Any, ...]]:
        if not isinstance(connection, psycopg.AsyncConnection):
            raise TypeError("PostgresBackend joins a psycopg.AsyncConnection's transaction; "
                            f"got {type(connection).__name__}")
        with wrapped(self.settings.conninfo):
            cur = await connection.execute(self._query(name), params)
            return await cur.fetchall()

    # -- consuming -------------------------------------------------------------------

    def deliveries(self, queue: str, *, worker: str, lease: timedelta,
                   prefetch: int) -> AsyncGenerator[Delivery, None]:
        """Yield the items of `queue` as they fall due; see `Backend.deliveries`."""
        self._require_open()
        return PostgresClaimer(self, queue, worker, lease, prefetch).run()

    async def ack(self, delivery: Delivery, *, keep: bool = False,
                  expires: datetime | None = None) -> None:
        """Delete the item, or keep it as done until `expires`; see `Backend.ack`."""
        self._require_open()
        self._settling(delivery)
        receipt: PostgresReceipt = delivery.receipt
        held = await self._acks.ack(PostgresAck(receipt, keep, expires))
        self._settled(delivery, held)

    async def _flush_acks(self, acks: Sequence[PostgresAck]) -> set[int]:
        params = {"seqs": [a.receipt.seq for a in acks], "leases": [a.receipt.lease for a in acks],
                  "keeps": [a.keep for a in acks], "expires": [a.expires for a in acks],
                  "now": self.now()}
        return {row[0] for row in await self._fetch("ack", params, settle=True)}

    async def nack(self, delivery: Delivery, *, due: datetime, error: ErrorRecord) -> None:
        """Return the item to its queue, due at `due`; see `Backend.nack`."""
        params = {"due": due, "error": error_json(error), "channel": self.channel}
        await self._settle("nack", delivery, params)

    async def fail(self, delivery: Delivery, *, error: ErrorRecord) -> None:
        """Park the item as failed, `error` appended; see `Backend.fail`."""
        await self._settle("fail", delivery, {"error": error_json(error)})

    async def release(self, delivery: Delivery) -> None:
        """Give the item back ready, its attempt not counted; see `Backend.release`."""
        self._require_open()
        self._settling(delivery)
        settled = await self.give_back([delivery.receipt], uncount=True)
        self._settled(delivery, bool(settled))

    async def give_back(self, receipts: Sequence[PostgresReceipt], *, uncount: bool) -> set[int]:
        """Return held items to their queues; with `uncount` their attempt does not count."""
        if not receipts:
            return set()
        params = {"seqs": [r.seq for r in receipts], "leases": [r.lease for r in receipts],
                  "uncount": uncount, "now": self.now(), "channel": self.channel}
        rows = await self._fetch("give_back", params, settle=True)
        self.held.difference_update(receipts)
        return {row[0] for row in rows}

    async def _settle(self, name: str, delivery: Delivery, params: dict[str, Any]) -> None:
        self._require_open()
        self._settling(delivery)
        receipt: PostgresReceipt = delivery.receipt
        params |= {"seq": receipt.seq, "lease": receipt.lease, "now": self.now()}
        self._settled(delivery, bool(await self._fetch(name, params, settle=True)))

    def _settling(self, delivery: Delivery) -> None:
        claimer = self.handed_out.pop(delivery.receipt.lease, None)
        if claimer is not None:
            claimer.settling()

    def _settled(self, delivery: Delivery, held: bool) -> None:
        self.held.discard(delivery.receipt)
        if not held:
            raise LeaseLost(f"item {delivery.item.id} is no longer held by this delivery: "
                            "its lease expired and it was claimed again, or it was settled")

    # -- inspection and control ----------------------------------------------------------

    async def items(self, where: ItemFilter) -> list[Item]:
        """Return the matching items, oldest due first; see `Backend.items`."""
        rows = await self._fetch("items", self._filter_params(where) | {"limit": where.limit})
        return [to_item(row) for row in rows]

    async def get(self, item_id: str) -> Item:
        """Return one item by id; see `Backend.get`."""
        key = parse_item_id(item_id)
        rows = [] if key is None else await self._fetch("get", {"id": key, "now": self.now()})
        if not rows:
            self._require_open()
            raise ItemNotFound(f"no item has id {item_id!r}")
        return to_item(rows[0])

    async def cancel(self, where: ItemFilter) -> int:
        """Delete the matching pending items, return how many; see `Backend.cancel`."""
        self._require_open()
        if where.state not in _PENDING:
            return 0
        async with self.pool.connection() as conn:
            cur = await conn.execute(self._query("cancel"), self._filter_params(where))
            return cur.rowcount

    async def retry(self, item_id: str) -> None:
        """Move a failed item back to ready now; see `Backend.retry`."""
        key = parse_item_id(item_id)
        params = {"id": key, "now": self.now(), "channel": self.channel}
        if key is None or not await self._fetch("retry", params):
            state = None if key is None else await self._fetch("state_of", params)
            found = f"is {state[0][0]}, not failed" if state else "does not exist"
            raise ItemNotFound(f"item {item_id!r} {found}")

    async def counts(self) -> dict[str, dict[State, int]]:
        """Return, per queue, how many items are in each state; see `Backend.counts`."""
        counts: dict[str, dict[State, int]] = {}
        for queue, state, count in await self._fetch("counts", {"now": self.now()}):
            counts.setdefault(queue, {})[State(state)] = count
        return counts

    def _filter_params(self, where: ItemFilter) -> dict[str, Any]:
        state = None if where.state is None else str(where.state)
        return {"queue": where.queue, "name": where.name, "tid": where.tid, "state": state,
                "now": self.now()}

    # -- internals -------------------------------------------------------------------

    def _require_open(self) -> None:
        if not self.connected:
            raise NotStarted("PostgresBackend is not open: start the app (or `await "
                             "backend.open()`) first")

    def _query(self, name: str) -> str:
        if not self.queries:  # set at connect, cleared when disconnect is done
            self._require_open()
        return self.queries[name]

    async def _fetch(self, name: str, params: dict[str, Any], *,
                     settle: bool = False) -> list[tuple[Any, ...]]:
        query = self._query(name)
        return await (self.settle_pool if settle else self.pool).fetch(query, params)

    async def _clean_forever(self) -> None:
        """Purge kept done items past their retention, now and every cleanup interval."""
        while not self._closing.is_set():
            try:
                await self._fetch("purge", {"now": self.now()})
            except Exception as exc:  # a cleanup failure must not stop the next one
                logger.warning("wrkr.postgres: retention cleanup failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.cleanup_interval):
                    await self._closing.wait()
