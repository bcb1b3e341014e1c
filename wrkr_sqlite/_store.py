"""`SQLiteStore`: the SQLite backend's `Store`, one transaction per primitive.

Every statement lives in ``sql/queries.sql``; each primitive runs whole on the store's
connection thread (`_db.SQLiteThread`), writes inside BEGIN IMMEDIATE. This process's
own publishes, nacks and retries wake its consumers at once (`notify`); other
processes' changes are found by the core's adaptive polling (`wakes_live` is False).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any, ClassVar, TypeVar

import orjson

from wrkr.backend import (
    CLOSE_WAIT,
    BackendUnavailable,
    Capability,
    Claim,
    Clock,
    Delivery,
    Firing,
    FlowTransaction,
    Item,
    ItemFilter,
    ItemNotFound,
    Message,
    NotStarted,
    QueueOptions,
    ScheduleRecord,
    Settle,
    Settlement,
    State,
    Store,
    SystemClock,
    Window,
    ended,
    from_micros,
    to_micros,
)
from wrkr_sqlite import _coordination, _flows, _schedules
from wrkr_sqlite._config import SQLiteSettings
from wrkr_sqlite._db import SQLiteThread, immediate, unavailable
from wrkr_sqlite._publish import check_same_file, insert, route, wake_at_commit
from wrkr_sqlite._rows import (
    SQLiteReceipt,
    error_json,
    to_delivery,
    to_item,
)
from wrkr_sqlite._sql import load_queries, migrate, use_wal

logger = logging.getLogger("wrkr.sqlite")
T = TypeVar("T")
Row = tuple[Any, ...]
_NEVER = 9223372036854775807  # next_due's "nothing": the largest SQLite integer
_WAKING = (Settle.NACK, Settle.RELEASE, Settle.ABANDON)


class SQLiteStore(Store[SQLiteReceipt]):
    """Keeps subscriptions and items in the ``wrkr_*`` tables of one SQLite file.

    Args:
        settings: the parsed URL and options (see `_config`).
        clock: what "now" is; every time written is passed in from it.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)

    def __init__(self, settings: SQLiteSettings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock if clock is not None else SystemClock()
        self.poll_min, self.poll_max = settings.poll_min, settings.poll_max
        self.queries = load_queries()
        self._db: SQLiteThread | None = None
        self._janitor: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.settings.url!r})"

    # -- lifecycle ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the file (created if missing) in WAL mode, migrate it, start the cleanup."""
        db = SQLiteThread(self.settings.path, self.settings.busy_timeout, self._setup)
        await db.open()
        self._db = db
        self._closing = asyncio.Event()
        self._janitor = asyncio.create_task(self._clean_forever(), name="wrkr-sqlite-janitor")

    def _setup(self, conn: sqlite3.Connection) -> None:
        mode = use_wal(conn, self.settings.busy_timeout)
        if mode != "wal":
            logger.warning("wrkr.sqlite: %s cannot use WAL (journal_mode is %s): readers and "
                           "the writer then block each other", self.settings.path, mode)
        conn.execute(f"PRAGMA synchronous = {'NORMAL' if self.settings.fast_settle else 'FULL'}")
        migrate(conn)

    async def disconnect(self) -> None:
        """Stop the cleanup and close the connection."""
        self._closing.set()
        janitor, self._janitor = self._janitor, None
        if janitor is not None and not await ended(janitor, CLOSE_WAIT):
            logger.warning("wrkr.sqlite: closing: the retention cleanup did not end in %gs; "
                           "cancelled it", CLOSE_WAIT)
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    # -- subscriptions -------------------------------------------------------------------

    async def subscribe(self, queue: str, pattern: str) -> None:
        """Route `pattern` to `queue`; see `Store.subscribe`."""
        await self._write("subscribe", {"queue": queue, "pattern": pattern,
                                        "now": to_micros(self.clock.now())})

    async def unsubscribe(self, queue: str, pattern: str) -> None:
        """Stop routing `pattern` to `queue`; see `Store.unsubscribe`."""
        await self._write("unsubscribe", {"queue": queue, "pattern": pattern})

    async def queues_for(self, name: str) -> list[str]:
        """Return the sorted queues `name` reaches; see `Store.queues_for`."""
        return (await self._run(lambda conn: route(conn, {name})))[name]

    async def subscriptions(self) -> list[tuple[str, str]]:
        """Return every (queue, pattern), sorted; see `Store.subscriptions`."""
        return [(queue, pattern) for queue, pattern in await self._read("subscriptions", {})]

    # -- items ---------------------------------------------------------------------------

    async def put(self, messages: Sequence[Message], *, connection: Any = None) -> list[str]:
        """Store a batch in one transaction; see `Store.put`.

        Published items are on disk before this returns (``synchronous = FULL`` for
        the transaction), whatever ``fast_settle`` says.

        Args:
            messages: the batch.
            connection: a `sqlite3.Connection` to the same file: the items are inserted
                in its current transaction (sqlite3 opens one before the first insert
                if none is open) and exist, and wake consumers, when it commits. The
                insert runs on the caller's thread, so it briefly blocks the loop.
        """
        if connection is not None:
            return self._put_on(connection, messages)
        if not messages:
            self._open()
            return []
        rows = await self._run(partial(self._put, messages, self.clock.now()))
        for queue in {queue for _, queue in rows}:
            self.notify(queue)
        return [item_id for item_id, _ in rows]

    def _put(self, messages: Sequence[Message], now: datetime,
             conn: sqlite3.Connection) -> list[tuple[str, str]]:
        if self.settings.fast_settle:
            conn.execute("PRAGMA synchronous = FULL")
        try:
            with immediate(conn):
                return insert(conn, self.queries, messages, now)
        finally:
            if self.settings.fast_settle:
                conn.execute("PRAGMA synchronous = NORMAL")

    def _put_on(self, connection: Any, messages: Sequence[Message]) -> list[str]:
        self._open()
        conn = check_same_file(connection, self.settings.path)
        try:
            rows = insert(conn, self.queries, messages, self.clock.now())
        except sqlite3.Error as exc:
            unavailable(exc, self.settings.path, self.settings.busy_timeout)
        queues = {queue for _, queue in rows}

        def wake() -> None:
            for queue in queues:
                self.notify(queue)

        wake_at_commit(conn, wake)
        return [item_id for item_id, _ in rows]

    async def claim(self, claim: Claim) -> list[Delivery[SQLiteReceipt]]:
        """Claim a batch in one BEGIN IMMEDIATE transaction; see `Store.claim`.

        The batch shares one new lease token, which fences its settlements.
        """
        params = {"queue": claim.queue, "now": to_micros(claim.now), "limit": claim.limit,
                  "worker": claim.worker, "lease": random.getrandbits(62),
                  "until": to_micros(claim.until)}
        if claim.exclusive or claim.window is not None:
            rows = await self._in_transaction(partial(
                _coordination.claim_rows, queries=self.queries, params=params,
                exclusive=claim.exclusive, window=claim.window, clock_now=self._now))
        else:
            rows = await self._write_rows("claim", params)
        return sorted(map(to_delivery, rows), key=lambda d: (d.item.due, d.receipt.seq))

    async def renew(self, deliveries: Sequence[Delivery[SQLiteReceipt]],
                    until: datetime) -> list[bool]:
        """Extend the leases in one transaction, fenced by their tokens; see `Store.renew`."""
        statement, stamp, now = self.queries["renew"], to_micros(until), to_micros(
            self.clock.now())

        def renew(conn: sqlite3.Connection) -> list[bool]:
            with immediate(conn):
                return [bool(conn.execute(statement, {"seq": d.receipt.seq,
                                                      "lease": d.receipt.lease,
                                                      "until": stamp, "now": now}).rowcount)
                        for d in deliveries]

        return await self._run(renew)

    async def settle(self, settlements: Sequence[Settlement[SQLiteReceipt]]) -> list[bool]:
        """Carry out a batch in one transaction, fenced by lease tokens; see `Store.settle`.

        A receipt settled twice in one batch is carried out once: the later ones get False.
        """
        now = to_micros(self.clock.now())
        held, queues = await self._run(partial(self._settle, settlements, now))
        for queue in queues:
            self.notify(queue)
        return held

    def _settle(self, settlements: Sequence[Settlement[SQLiteReceipt]], now: int,
                conn: sqlite3.Connection) -> tuple[list[bool], set[str]]:
        """Carry out the batch: its plain acks one DELETE per lease token, the rest one by one.

        Each receipt is one row, touched by its first settlement only, so the order in
        which the rows are changed does not matter.
        """
        seen: set[SQLiteReceipt] = set()
        held: list[bool] = []
        queues: set[str] = set()
        acks: dict[int, list[int]] = {}  # lease -> indexes into `held` of its plain acks
        with immediate(conn):
            for settlement in settlements:
                receipt = settlement.delivery.receipt
                if receipt in seen:
                    held.append(False)
                    continue
                seen.add(receipt)
                if settlement.how is Settle.ACK and not settlement.keep:
                    acks.setdefault(receipt.lease, []).append(len(held))
                    held.append(False)  # until its DELETE returns its seq
                    continue
                queue = self.settle_one(conn, settlement, now)
                held.append(queue is not None)
                if queue and settlement.how in _WAKING:
                    queues.add(queue)
            for lease, places in acks.items():
                self._ack_many(conn, lease, [settlements[place].delivery.receipt.seq
                                             for place in places], places, held)
        return held, queues

    def _ack_many(self, conn: sqlite3.Connection, lease: int, seqs: list[int],
                  places: list[int], held: list[bool]) -> None:
        """Delete the acked rows of one lease token; mark in `held` those that were held."""
        gone = {row[0] for row in conn.execute(self.queries["ack_many"], {
            "seqs": orjson.dumps(seqs).decode(), "lease": lease})}
        for seq, place in zip(seqs, places, strict=True):
            held[place] = seq in gone

    def settle_one(self, conn: sqlite3.Connection, settlement: Settlement[SQLiteReceipt],
                    now: int) -> str | None:
        """Carry out one settlement; return its item's queue, or None if not held."""
        seq, lease = settlement.delivery.receipt
        if settlement.how is Settle.ACK and not settlement.keep:
            gone = conn.execute(self.queries["ack"], {"seq": seq, "lease": lease}).rowcount
            return settlement.delivery.item.queue if gone else None
        params = {"seq": seq, "lease": lease, "how": settlement.how.value, "now": now,
                  "due": None if settlement.due is None else to_micros(settlement.due),
                  "error": None if settlement.error is None else error_json(settlement.error),
                  "expires": None if settlement.expires is None else to_micros(
                      settlement.expires)}
        row = conn.execute(self.queries["settle"], params).fetchone()
        return None if row is None else str(row[0])

    async def next_due(self, queue: str, now: datetime) -> datetime | None:
        """Return the earliest due time or lease end of `queue`; see `Store.next_due`."""
        [(micros,)] = await self._read("next_due", {"queue": queue})
        return None if micros == _NEVER else from_micros(micros)

    # -- coordination ----------------------------------------------------------------------

    async def configure(self, queue: str, options: QueueOptions) -> QueueOptions:
        """Store `options` with `queue` unless it has some; see `Store.configure`."""
        return await self._in_transaction(partial(
            _coordination.configure, queries=self.queries, queue=queue, options=options))

    async def next_change(self, queue: str, now: datetime) -> datetime | None:
        """Return the next future due time or lease end; see `Store.next_change`."""
        [(micros,)] = await self._read("next_change", {"queue": queue, "now": to_micros(now)})
        return None if micros == _NEVER else from_micros(micros)

    async def take_slots(self, window: Window, wanted: int, now: datetime) -> int:
        """Record up to `wanted` starts, stamped once the lock is held; see `Store.take_slots`."""
        return await self._in_transaction(lambda conn: _coordination.take_slots(
            conn, self.queries, window, wanted, max(to_micros(now), self._now())))

    async def next_slot(self, window: Window, now: datetime) -> datetime | None:
        """Return when `window` next has room; see `Store.next_slot`."""
        at = await self._run(partial(_coordination.next_slot, queries=self.queries,
                                     window=window, now=to_micros(now)))
        return None if at is None else from_micros(at)

    # -- inspection and control ----------------------------------------------------------

    async def items(self, where: ItemFilter) -> list[Item]:
        """Return the matching items, oldest due first; see `Store.items`."""
        params = self._filter_params(where) | {
            "limit": -1 if where.limit is None else where.limit, "offset": where.offset}
        query = "items" if where.root is None else "tree"  # `root = ...`: its index
        return [to_item(row) for row in await self._read(query, params)]

    async def get(self, item_id: str) -> Item:
        """Return one item by id; see `Store.get`."""
        rows = await self._read("get", {"id": item_id, "now": self._now()})
        if not rows:
            raise ItemNotFound(f"no item has id {item_id!r}")
        return to_item(rows[0])

    async def cancel(self, where: ItemFilter) -> int:
        """Delete the pending matches; return how many (see `Store.cancel`)."""
        params = {"queue": where.queue, "name": where.name, "tid": where.tid}
        return await self._write("cancel", params)

    async def retry(self, item_id: str) -> str:
        """Move a failed item back to ready now; return its queue (see `Store.retry`)."""
        params = {"id": item_id, "now": self._now()}
        rows = await self._write_rows("retry", params)
        if rows:
            self.notify(rows[0][0])
            return str(rows[0][0])
        state = await self._read("state_of", params)
        found = f"is {state[0][0]}, not failed" if state else "does not exist"
        raise ItemNotFound(f"item {item_id!r} {found}")

    async def counts(self) -> dict[str, dict[State, int]]:
        """Return, per queue, how many items are in each state; see `Store.counts`."""
        counts: dict[str, dict[State, int]] = {}
        for queue, state, count in await self._read("counts", {"now": self._now()}):
            counts.setdefault(queue, {})[State(state)] = count
        return counts

    async def purge(self, queue: str | None, state: State, older_than: datetime | None) -> int:
        """Delete done or failed items finished before `older_than`; see `Store.purge`."""
        params = {"queue": queue, "state": state.value,
                  "older_than": None if older_than is None else to_micros(older_than)}
        return await self._write("purge", params)

    def _filter_params(self, where: ItemFilter) -> dict[str, Any]:
        state = None if where.state is None else where.state.value
        return {"queue": where.queue, "name": where.name, "tid": where.tid, "state": state,
                "root": where.root, "now": self._now()}

    # -- recurring schedules -------------------------------------------------------------

    async def schedules(self) -> list[ScheduleRecord]:
        """Return every schedule, by name; see `Store.schedules`."""
        return [_schedules.to_record(row) for row in await self._read("schedules", {})]

    async def save_schedule(self, record: ScheduleRecord) -> bool:
        """Insert or update in one statement; see `Store.save_schedule`."""
        now = self.clock.now()
        return await self._in_transaction(
            lambda conn: _schedules.save(conn, self.queries, record, now))

    async def remove_schedule(self, name: str) -> bool:
        """Delete a schedule; see `Store.remove_schedule`."""
        return bool(await self._write("remove_schedule", {"name": name}))

    async def fire_schedule(self, firing: Firing) -> list[str] | None:
        """Move the schedule on and publish in one transaction; see `Store.fire_schedule`.

        Committed with ``synchronous = FULL``, as a publish is: a firing that returned
        survives a power cut.
        """
        now = self.clock.now()
        rows = await self._in_transaction(
            lambda conn: _schedules.fire(conn, self.queries, firing, now), durable=True)
        if rows is None:
            return None
        for queue in {queue for _, queue in rows}:
            self.notify(queue)
        return [item_id for item_id, _ in rows]

    # -- workflows -----------------------------------------------------------------------

    async def flow_transaction(
        self, flow_id: str, work: Callable[[FlowTransaction[SQLiteReceipt]], Awaitable[T]]
    ) -> T:
        """Run `work` whole in one BEGIN IMMEDIATE transaction on the connection's thread;
        see `Store.flow_transaction` and `_flows`.

        Committed with ``synchronous = FULL``, as a publish is: it may start a step.
        """
        context = contextvars.copy_context()
        result, woken = await self._in_transaction(
            partial(_flows.change, self, flow_id, work, context), durable=True)
        for queue in woken:
            self.notify(queue)
        return result

    async def flow_document(self, flow_id: str) -> bytes | None:
        """Return the flow's document; see `Store.flow_document`."""
        rows = await self._read("flow_get", {"id": flow_id})
        return bytes(rows[0][0]) if rows else None

    # -- internals -----------------------------------------------------------------------

    def _now(self) -> int:
        return to_micros(self.clock.now())

    def _open(self) -> SQLiteThread:
        if self._db is None:
            raise NotStarted("SQLiteBackend is not open: start the app (or `await "
                             "backend.open()`) first")
        return self._db

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._open().run(work)

    async def _in_transaction(self, work: Callable[[sqlite3.Connection], T], *,
                              durable: bool = False) -> T:
        """Run `work` in one BEGIN IMMEDIATE transaction on the connection's thread.

        `durable`: commit with ``synchronous = FULL`` even under ``fast_settle``.
        """
        flip = durable and self.settings.fast_settle

        def run(conn: sqlite3.Connection) -> T:
            if flip:
                conn.execute("PRAGMA synchronous = FULL")
            try:
                with immediate(conn):
                    return work(conn)
            finally:
                if flip:
                    conn.execute("PRAGMA synchronous = NORMAL")

        return await self._run(run)

    async def _read(self, name: str, params: dict[str, Any]) -> list[Row]:
        statement = self.queries[name]
        return await self._run(lambda conn: conn.execute(statement, params).fetchall())

    async def _write(self, name: str, params: dict[str, Any]) -> int:
        """Run one statement in its own BEGIN IMMEDIATE transaction; return its rowcount."""
        statement = self.queries[name]

        def write(conn: sqlite3.Connection) -> int:
            with immediate(conn):
                return conn.execute(statement, params).rowcount

        return await self._run(write)

    async def _write_rows(self, name: str, params: dict[str, Any]) -> list[Row]:
        """Run one statement in its own BEGIN IMMEDIATE transaction; return its rows."""
        statement = self.queries[name]

        def write(conn: sqlite3.Connection) -> list[Row]:
            with immediate(conn):
                return conn.execute(statement, params).fetchall()

        return await self._run(write)

    async def _clean_forever(self) -> None:
        """Delete kept done items past their retention, now and every cleanup interval."""
        while not self._closing.is_set():
            try:
                await self._write("expire", {"now": self._now()})
            except BackendUnavailable as exc:  # a cleanup failure must not stop the next one
                logger.warning("wrkr.sqlite: retention cleanup failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.cleanup_interval):
                    await self._closing.wait()
