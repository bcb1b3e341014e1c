"""What only the PostgreSQL backend promises: outbox publishing, processes, restarts.

Worker and publisher processes are small scripts run with ``python -c``; every wait is
bounded. The server-restart test restarts the shared PostgreSQL: it is marked `alone`
and runs separately, after everything else (``pytest -m alone``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio

from backend_conformance_tests import Names, Recorder
from backend_conformance_tests._helpers import WAIT
from backend_conformance_tests.topics import TOPIC_CASES
from tests.conftest import PG_URL
from wrkr import BackendUnavailable, BlockingWrkr, Event, InvalidConfig, NotStarted, Wrkr
from wrkr.backend import (
    Claim,
    Delivery,
    ErrorRecord,
    ItemFilter,
    Message,
    Settle,
    Settlement,
    State,
    redact,
)
from wrkr.cli import main
from wrkr_postgres import PostgresBackend
from wrkr_postgres._config import settings_from_url
from wrkr_postgres._names import pattern_regex
from wrkr_postgres._rows import PostgresReceipt
from wrkr_postgres._sql import migrations
from wrkr_postgres._store import PostgresStore

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]

# A worker or publisher process. argv: mode, schema, queue, event name.
CHILD = r"""
import asyncio, sys
from datetime import timedelta
from wrkr import Wrkr
from wrkr_postgres import PostgresBackend

mode, schema, queue, name = sys.argv[1:5]

async def hang(event):
    print("started", event.id, flush=True)
    await asyncio.Event().wait()

async def main():
    app = Wrkr(PostgresBackend("postgresql://postgres@127.0.0.1:5432/test", schema=schema),
               lease="1 second")
    async with app:
        if mode == "worker":
            await app.subscribe(queue, name, hang, timeout="1 second")
            await app.listen()
            await asyncio.Event().wait()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        ids = await app.publish({"name": name, "tid": "t", "once_every": "1 hour"})
        print("published", len(ids), flush=True)

asyncio.run(main())
"""


@pytest_asyncio.fixture
async def app(pg_schema: str) -> AsyncIterator[Wrkr]:
    """Provide a started app on the test's schema, stopped afterwards."""
    started = Wrkr(PostgresBackend(PG_URL, schema=pg_schema, poll_interval=1.0))
    await started.start()
    yield started
    await started.stop(timeout=1.0)


async def spawn(*args: str) -> asyncio.subprocess.Process:
    """Start a child process running CHILD with `args`, pipes on stdin and stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, *args, cwd=ROOT, env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)


async def read_line(process: asyncio.subprocess.Process, expected: str) -> str:
    """Return the child's next output line, which must start with `expected` (bounded)."""
    assert process.stdout is not None
    async with asyncio.timeout(WAIT * 2):
        line = (await process.stdout.readline()).decode().strip()
    assert line.startswith(expected), f"child said {line!r}, expected {expected!r}"
    return line


# -- pure helpers --------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "name", "expected"), TOPIC_CASES)
async def test_wildcard_regex_agrees_with_the_shared_topic_table(
        pg_schema: str, pattern: str, name: str, expected: bool) -> None:
    regex = pattern_regex(pattern)
    if regex is None:  # an exact pattern is compared as text, not by a regex
        assert (pattern == name) is expected
        return
    async with await psycopg.AsyncConnection.connect(PG_URL) as conn:
        cur = await conn.execute("SELECT ('.' || %s) ~ %s", (name, regex))
        row = await cur.fetchone()
    assert row is not None
    assert row[0] is expected


def test_exact_patterns_need_no_regex() -> None:
    assert pattern_regex("ourapp.user.added") is None


def test_url_options_are_split_from_libpq_options_and_passwords_masked() -> None:
    settings = settings_from_url(
        "postgresql://u:s3cret@127.0.0.1:5432/db?schema=jobs&sslmode=disable&pool_size=3", {})
    assert (settings.schema, settings.pool_size) == ("jobs", 3)
    assert settings.conninfo == "postgresql://u:s3cret@127.0.0.1:5432/db?sslmode=disable"
    assert redact(settings.conninfo) == "postgresql://u:***@127.0.0.1:5432/db?sslmode=disable"


SECRET_URL = "postgresql://u:s3cret@127.0.0.1:5432/test"


@pytest.mark.parametrize(("url", "options", "named"), [
    (SECRET_URL + "?schema=bad-schema", {}, ["schema", "'bad-schema'", "lower-case"]),
    (SECRET_URL, {"schema": "Bad-Name"}, ["schema", "'Bad-Name'", "lower-case"]),
    (SECRET_URL + "?pool_size=abc", {}, ["pool_size", "'abc'", "whole number"]),
    (SECRET_URL, {"pool_size": 0}, ["pool_size", "0", "whole number"]),
    (SECRET_URL + "?fast_settle=maybe", {}, ["fast_settle", "'maybe'", "true or false"]),
    (SECRET_URL, {"pool_sise": 3}, ["'pool_sise'", "pool_size", "schema", "fast_settle"]),
    (SECRET_URL + "?pool_sise=3", {}, ["pool_sise", "pool_size", "schema", "libpq"]),
])
def test_configuration_mistakes_raise_invalid_config_naming_option_and_valid_ones(
        url: str, options: dict[str, object], named: list[str]) -> None:
    with pytest.raises(InvalidConfig) as caught:
        Wrkr.from_url(url, **options)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    for part in named:
        assert part in message, f"{part!r} missing from {message!r}"
    assert "s3cret" not in message
    assert "u:***@127.0.0.1" in message


@pytest.mark.parametrize("query", ["schema=bad-schema", "pool_size=abc", "prefx=x"])
def test_the_cli_reports_a_bad_url_option_in_one_line_exit_1(
        capsys: pytest.CaptureFixture[str], query: str) -> None:
    assert main(["items", "--url", f"{SECRET_URL}?{query}"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert query.partition("=")[0] in err
    assert "Traceback" not in err
    assert "s3cret" not in err


async def test_unreachable_server_raises_backend_unavailable_without_the_password() -> None:
    backend = PostgresBackend("postgresql://u:s3cret@127.0.0.1:1/db?connect_timeout=2")
    with pytest.raises(BackendUnavailable) as caught:
        await backend.open()
    assert "s3cret" not in str(caught.value)
    assert "***" in str(caught.value)


# -- against the server --------------------------------------------------------------------

async def test_migrations_are_applied_once_and_recorded(pg_schema: str) -> None:
    for _ in range(2):
        backend = PostgresBackend(PG_URL, schema=pg_schema)
        await backend.open()
        await backend.close()
    async with await psycopg.AsyncConnection.connect(PG_URL) as conn:
        cur = await conn.execute(f'SELECT version FROM "{pg_schema}".migrations')
        assert [row[0] for row in await cur.fetchall()] == [v for v, _ in migrations()]


async def test_an_app_starts_again_after_stop_and_delivers(
        pg_schema: str, names: Names) -> None:
    app = Wrkr(PostgresBackend(PG_URL, schema=pg_schema, poll_interval=1.0))
    queue, name, recorder = names.queue("again"), names.event("job"), Recorder()
    app.on(name, queue=queue)(recorder.handle)
    for run in ("first", "second", "third"):  # as a FastAPI lifespan run by each TestClient
        await app.start()
        try:
            await app.listen()
            await app.publish({"name": name, "tid": run})
            assert (await recorder.next(f"the {run} run's event")).tid == run
        finally:
            await app.stop(timeout=1.0)


async def test_a_closed_backend_says_not_started_not_unavailable(pg_schema: str) -> None:
    backend = PostgresBackend(PG_URL, schema=pg_schema)
    await backend.open()
    await backend.close()
    with pytest.raises(NotStarted, match="start the app"):
        await backend.queues_for("x")
    with pytest.raises(NotStarted):
        await backend.store.queues_for("x")  # the store itself, past the backend's check


@pytest_asyncio.fixture
async def store(pg_schema: str) -> AsyncIterator[PostgresStore]:
    """Provide an open backend's store, on the test's schema."""
    backend = PostgresBackend(PG_URL, schema=pg_schema)
    await backend.open()
    yield backend.store
    await backend.close()


async def put(store: PostgresStore, queue: str, name: str, count: int) -> list[str]:
    """Subscribe `queue` to `name` and store `count` items due now."""
    await store.subscribe(queue, name)
    now = store.clock.now()
    return await store.put([Message(name, str(n), b"{}", now, now) for n in range(count)])


async def claim(store: PostgresStore, queue: str, worker: str, lease: float,
                limit: int = 10) -> list[Delivery[PostgresReceipt]]:
    """Claim up to `limit` due items of `queue` for `worker`, leased `lease` seconds."""
    now = store.clock.now()
    return await store.claim(Claim(queue, worker, now, now + timedelta(seconds=lease), limit))


async def test_a_renewal_or_settlement_under_a_reclaimed_lease_is_fenced(
        store: PostgresStore, names: Names) -> None:
    queue = names.queue("fence")
    await put(store, queue, names.event("job"), 1)
    [stale] = await claim(store, queue, "dead", lease=-1)  # its lease has already ended
    [fresh] = await claim(store, queue, "alive", lease=60)
    assert await store.renew([stale, fresh], store.clock.now() + timedelta(minutes=1)) == [
        False, True]
    ack = Settlement(fresh, Settle.ACK)
    assert await store.settle([Settlement(stale, Settle.ACK), ack, ack]) == [False, True, False]
    assert await store.items(ItemFilter(queue=queue)) == []


async def test_one_settle_call_carries_every_kind_of_settlement(
        store: PostgresStore, names: Names) -> None:
    queue = names.queue("mixed")
    await put(store, queue, names.event("job"), 5)
    got = await claim(store, queue, "w", lease=60)
    now = store.clock.now()
    error = ErrorRecord(now, 1, "ValueError", "bad")
    hows = [Settlement(got[0], Settle.ACK), Settlement(got[1], Settle.ACK, keep=True),
            Settlement(got[2], Settle.NACK, due=now + timedelta(hours=1), error=error),
            Settlement(got[3], Settle.FAIL, error=error), Settlement(got[4], Settle.RELEASE)]
    assert await store.settle(hows) == [True] * 5
    items = {item.id: item for item in await store.items(ItemFilter(queue=queue))}
    assert got[0].item.id not in items
    assert items[got[1].item.id].state is State.DONE
    nacked, failed, released = (items[d.item.id] for d in got[2:])
    assert (nacked.state, nacked.attempts, nacked.errors) == (State.SCHEDULED, 1, (error,))
    assert (failed.state, failed.errors, failed.finished is not None) == (
        State.FAILED, (error,), True)
    assert (released.state, released.attempts) == (State.READY, 0)


async def test_purge_deletes_finished_items_of_the_state_finished_before_a_time(
        store: PostgresStore, names: Names) -> None:
    queue, other = names.queue("purge"), names.queue("other")
    await put(store, queue, names.event("job"), 3)
    await put(store, other, names.event("other"), 1)
    first, second, third = await claim(store, queue, "w", lease=60)
    [elsewhere] = await claim(store, other, "w", lease=60)
    error = ErrorRecord(store.clock.now(), 1, "ValueError", "bad")
    await store.settle([Settlement(first, Settle.FAIL, error=error),
                        Settlement(second, Settle.FAIL, error=error),
                        Settlement(third, Settle.ACK, keep=True),
                        Settlement(elsewhere, Settle.FAIL, error=error)])
    an_hour_ago = store.clock.now() - timedelta(hours=1)
    assert await store.purge(queue, State.FAILED, an_hour_ago) == 0
    assert await store.purge(queue, State.FAILED, None) == 2
    assert [item.state for item in await store.items(ItemFilter(queue=queue))] == [State.DONE]
    assert await store.purge(None, State.DONE, store.clock.now() + timedelta(seconds=1)) == 1
    assert len(await store.items(ItemFilter(queue=other))) == 1
    # an unfinished state is refused once for every store, by StoreBackend.purge (core test)


async def test_items_skip_offset_then_return_limit_and_subscriptions_are_listed(
        store: PostgresStore, names: Names) -> None:
    queue, name = names.queue("page"), names.event("job")
    await put(store, queue, name, 5)
    page = await store.items(ItemFilter(queue=queue, offset=1, limit=2))
    assert [item.tid for item in page] == ["1", "2"]
    assert (queue, name) in await store.subscriptions()


async def test_rolled_back_transactional_publish_delivers_nothing_committed_delivers(
        app: Wrkr, names: Names) -> None:
    queue, name, recorder = names.queue("outbox"), names.event("order.placed"), Recorder()
    await app.subscribe(queue, name, recorder.handle)
    async with await psycopg.AsyncConnection.connect(PG_URL) as conn:
        with contextlib.suppress(ZeroDivisionError):
            async with conn.transaction():
                await app.publish({"name": name, "tid": "rolled-back"}, connection=conn)
                raise ZeroDivisionError  # the application's change fails
        async with conn.transaction():
            await app.publish({"name": name, "tid": "committed"}, connection=conn)
    await app.listen()
    assert (await recorder.next("the committed event")).tid == "committed"
    assert [item.tid for item in await app.items(queue=queue)] in ([], ["committed"])


async def test_transactional_publish_takes_only_a_psycopg_connection(
        app: Wrkr, names: Names) -> None:
    await app.subscribe(names.queue("q"), names.event("x"), Recorder().handle)
    with pytest.raises(InvalidConfig, match=r"psycopg Connection or AsyncConnection; got object"):
        await app.publish({"name": names.event("x")}, connection=object())


def test_a_blocking_publish_joins_a_sync_psycopg_transaction(pg_schema: str) -> None:
    url = f"{PG_URL}?schema={pg_schema}"

    async def subscribe() -> None:
        async with Wrkr.from_url(url) as setup:
            await setup.subscribe("orders", "shop.order.placed", lambda event: None)

    asyncio.run(subscribe())
    with BlockingWrkr(url) as events, psycopg.connect(PG_URL) as conn:  # Flask/Django's
        with contextlib.suppress(ZeroDivisionError), conn.transaction():
            events.publish({"name": "shop.order.placed", "tid": "rolled-back"},
                           connection=conn)
            raise ZeroDivisionError  # the view's own change fails
        with conn.transaction():
            events.publish({"name": "shop.order.placed", "tid": "committed"},
                           connection=conn)
            assert events.items(queue="orders") == []  # not visible before the commit
        assert [item.tid for item in events.items(queue="orders")] == ["committed"]



async def test_twenty_concurrent_once_every_publishers_create_one_item(
        app: Wrkr, pg_schema: str, names: Names) -> None:
    queue, name = names.queue("once"), names.event("digest")
    await app.subscribe(queue, name, Recorder().handle)
    children = [await spawn("publisher", pg_schema, queue, name) for _ in range(20)]
    try:
        for child in children:
            await read_line(child, "ready")
        for child in children:
            assert child.stdin is not None
            child.stdin.write(b"go\n")
        said = [await read_line(child, "published") for child in children]
    finally:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()
    assert sorted(said) == ["published 0"] * 19 + ["published 1"]
    assert len(await app.items(queue=queue)) == 1


@pytest.mark.alone
async def test_consumers_resume_after_a_server_restart_and_nothing_is_lost(
        app: Wrkr, names: Names) -> None:
    queue, name = names.queue("stream"), names.event("tick")
    seen: set[str] = set()
    everything = asyncio.Event()
    published: list[str] = []

    async def handle(event: Event) -> None:
        seen.add(str(event.id))
        if len(published) == 60 and seen >= set(published):
            everything.set()

    await app.subscribe(queue, name, handle, concurrency=4)
    await app.listen()
    for batch in range(6):
        if batch == 3:
            await asyncio.to_thread(restart_server)
        published.extend(await publish_until_stored(app, name, batch))
    async with asyncio.timeout(WAIT * 3):
        await everything.wait()
    assert seen == set(published)


def restart_server() -> None:
    """Restart the local PostgreSQL cluster (fast shutdown), bounded."""
    version = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".")])
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version[-1], "main",
                    "restart", "-m", "fast"], check=True, timeout=60)


async def publish_until_stored(app: Wrkr, name: str, batch: int) -> list[str]:
    """Publish a batch of ten, retrying (bounded) while the server is unavailable."""
    events = [{"name": name, "tid": f"{batch}-{n}"} for n in range(10)]
    async with asyncio.timeout(WAIT * 3):
        while True:
            try:
                return await app.publish(events)
            except BackendUnavailable:
                await asyncio.sleep(0.2)


async def test_items_stored_before_the_lineage_migration_are_roots(
        pg_schema: str, names: Names, monkeypatch: pytest.MonkeyPatch) -> None:
    import wrkr_postgres._sql as sql

    shipped = sql.migrations()
    monkeypatch.setattr(sql, "migrations", lambda: [m for m in shipped if m[0] < 5])
    async with await psycopg.AsyncConnection.connect(PG_URL) as conn:
        await sql.migrate(conn, pg_schema)
        cur = await conn.execute(  # an item as the version before lineage stored it
            f'INSERT INTO "{pg_schema}".items (id, queue, name, payload, due, created) '
            "VALUES (gen_random_uuid(), %s, %s, '{}', now(), now()) RETURNING id",
            (names.queue("a"), names.event("x")))
        row = await cur.fetchone()
        assert row is not None
        old_id = row[0].hex
        await conn.commit()
    monkeypatch.setattr(sql, "migrations", lambda: shipped)
    async with Wrkr(PostgresBackend(PG_URL, schema=pg_schema)) as app:
        [event] = await app.lineage(old_id)
        assert (event.id, event.parent, event.root) == (old_id, None, old_id)
