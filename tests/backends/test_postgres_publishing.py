"""PostgreSQL publishing: concurrent publishes share commits, each keeps its own outcome.

A publish that arrives while another's statement is in flight waits and goes in the
next statement with every other waiting publish (see `wrkr_postgres._publisher`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
import pytest_asyncio

from backend_conformance_tests import Names
from tests.conftest import PG_URL
from wrkr import BackendUnavailable, NotStarted, Wrkr
from wrkr.backend import Message
from wrkr_postgres import PostgresBackend
from wrkr_postgres._store import PostgresStore

pytestmark = pytest.mark.postgres


@pytest_asyncio.fixture
async def app(pg_schema: str) -> AsyncIterator[Wrkr]:
    """Provide a started app on the test's schema (no consumers), stopped afterwards."""
    started = Wrkr(PostgresBackend(PG_URL, schema=pg_schema))
    await started.start()
    yield started
    await started.stop(timeout=1.0)


def store_of(app: Wrkr) -> PostgresStore:
    """Return the app's PostgreSQL store."""
    backend = app.backend
    assert isinstance(backend, PostgresBackend)
    return backend.store


async def transactions(pg_schema: str) -> int:
    """Return how many transactions wrote the items now stored (their distinct xmin)."""
    async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as conn:
        cur = await conn.execute(f'SELECT count(DISTINCT xmin::text) FROM "{pg_schema}".items')
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


def message(store: PostgresStore, name: str, tid: str) -> Message:
    """Return a message due now."""
    now = store.clock.now()
    return Message(name, tid, b"{}", now, now)


async def ignore(event: object) -> None:
    """A handler (never run: these apps do not listen)."""


async def test_fifty_concurrent_publishers_share_commits_and_each_gets_its_own_ids(
        app: Wrkr, pg_schema: str, names: Names) -> None:
    name = names.event("signup")
    for queue in (names.queue("mail"), names.queue("audit")):
        await app.subscribe(queue, name, ignore)
    ids = await asyncio.gather(*(app.publish({"name": name, "tid": str(n)})
                                 for n in range(50)))
    assert all(len(own) == 2 for own in ids)  # one item per subscribed queue
    for n, own in enumerate(ids):
        assert [(await app.get(item_id)).tid for item_id in own] == [str(n)] * 2
    assert len({item_id for own in ids for item_id in own}) == 100
    assert await transactions(pg_schema) < 50


async def test_a_publish_the_server_rejects_fails_alone_and_wholly_among_concurrent_ones(
        app: Wrkr, names: Names) -> None:
    store, name, queue = store_of(app), names.event("order"), names.queue("orders")
    await app.subscribe(queue, name, ignore)
    bad = [message(store, name, "fine"), message(store, name, "nul\x00byte")]
    outcomes = await asyncio.gather(
        *(store.put([message(store, name, str(n))]) for n in range(5)), store.put(bad),
        *(store.put([message(store, name, str(n))]) for n in range(5, 10)),
        return_exceptions=True)
    assert isinstance(outcomes[5], BackendUnavailable)
    good = [outcome for n, outcome in enumerate(outcomes) if n != 5]
    assert all(isinstance(ids, list) and len(ids) == 1 for ids in good)
    stored = sorted(item.tid or "" for item in await app.items(queue=queue))
    assert stored == sorted(str(n) for n in range(10))  # nothing of the bad batch


async def test_a_publish_on_the_callers_connection_is_never_shared(
        app: Wrkr, names: Names) -> None:
    name, queue = names.event("invoice"), names.queue("invoices")
    await app.subscribe(queue, name, ignore)
    async with await psycopg.AsyncConnection.connect(PG_URL) as conn:
        others = asyncio.gather(*(app.publish({"name": name, "tid": str(n)})
                                  for n in range(10)))
        await app.publish({"name": name, "tid": "rolled back"}, connection=conn)
        await others
        await conn.rollback()
    assert sorted(item.tid or "" for item in await app.items(queue=queue)) == sorted(
        str(n) for n in range(10))


async def test_a_publish_cancelled_while_it_waits_is_never_sent(
        app: Wrkr, names: Names) -> None:
    name, queue = names.event("ping"), names.queue("pings")
    await app.subscribe(queue, name, ignore)
    first = asyncio.create_task(app.publish({"name": name, "tid": "first"}))
    waiting = asyncio.create_task(app.publish({"name": name, "tid": "cancelled"}))
    await asyncio.sleep(0)  # the first is in flight, the second waits for it
    waiting.cancel()
    assert len(await first) == 1
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert [item.tid for item in await app.items(queue=queue)] == ["first"]


async def test_publishes_in_flight_when_the_app_stops_are_stored_or_raise_not_started(
        pg_schema: str, names: Names) -> None:
    name, queue = names.event("late"), names.queue("lates")
    app = Wrkr(PostgresBackend(PG_URL, schema=pg_schema))
    await app.start()
    await app.subscribe(queue, name, ignore)
    publishing = [asyncio.create_task(app.publish({"name": name, "tid": str(n)}))
                  for n in range(20)]
    await asyncio.sleep(0)  # the first is in flight, the others wait for it
    await app.stop(timeout=1.0)
    outcomes = await asyncio.gather(*publishing, return_exceptions=True)
    assert all(isinstance(o, list | NotStarted) for o in outcomes), outcomes
    published = sorted(str(n) for n, o in enumerate(outcomes) if isinstance(o, list))
    assert published  # the one in flight finished
    async with Wrkr(PostgresBackend(PG_URL, schema=pg_schema)) as again:
        assert sorted(item.tid or "" for item in await again.items(queue=queue)) == published
