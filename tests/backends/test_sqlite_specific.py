"""What only the SQLite backend promises: a file, processes sharing it, locks, an outbox.

Worker and publisher processes are small scripts run with ``python -c``; every wait is
bounded. Each test has a file of its own in its tmp_path.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from backend_conformance_tests import Names, Recorder
from backend_conformance_tests._helpers import WAIT
from tests.core._cli_helpers import env, lines_of, wait_for, wrkr_script
from wrkr import BackendUnavailable, BlockingWrkr, InvalidConfig, NotStarted, Wrkr
from wrkr.backend import Claim, ItemFilter, Message, Settle, Settlement, UnknownBackend
from wrkr_sqlite import SQLiteBackend
from wrkr_sqlite._config import settings_from_url
from wrkr_sqlite._sql import migrations, use_wal

ROOT = Path(__file__).resolve().parents[2]
IDLE = 60.0  # seconds: a poll range this long means only a wake-up can deliver in time

# A worker or publisher process on one file. argv: mode, url, queue, event name, count.
CHILD = r"""
import asyncio, sys
from wrkr import Wrkr

mode, url, queue, name, count = sys.argv[1:6]

async def main():
    async with Wrkr.from_url(url, lease="1 second") as app:
        if mode == "worker":
            async def handle(event):
                print("handled", event.tid, flush=True)
            async def hang(event):
                print("started", event.id, flush=True)
                await asyncio.Event().wait()
            handler = hang if count == "hang" else handle
            await app.subscribe(queue, name, handler, concurrency=4, timeout="1 hour")
            await app.listen()
            print("ready", flush=True)
            await asyncio.Event().wait()
        await app.subscribe(queue, name, lambda event: None)
        print("ready", flush=True)
        for batch in range(int(count)):
            ids = await app.publish([{"name": name, "tid": f"{batch}-{n}"} for n in range(10)])
            print("published", batch, len(ids), flush=True)

asyncio.run(main())
"""


def file_url(tmp_path: Path, **options: object) -> str:
    """Return the URL of the test's file, with `options` in its query."""
    query = "&".join(f"{key}={value}" for key, value in options.items())
    return f"sqlite:///{tmp_path / 'wrkr.db'}" + (f"?{query}" if query else "")


@pytest_asyncio.fixture
async def app(tmp_path: Path) -> AsyncIterator[Wrkr]:
    """A started app on the test's file that polls so rarely only wake-ups deliver in time."""
    started = Wrkr(SQLiteBackend(file_url(tmp_path), poll_min=IDLE, poll_max=IDLE))
    await started.start()
    yield started
    await started.stop(timeout=1.0)


async def spawn(*args: str) -> asyncio.subprocess.Process:
    """Start a child process running CHILD with `args`, its stdout piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, *args, cwd=ROOT, env=env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def read_line(process: asyncio.subprocess.Process, expected: str) -> str:
    """Return the child's next output line, which must start with `expected` (bounded)."""
    assert process.stdout is not None
    async with asyncio.timeout(WAIT * 2):
        line = (await process.stdout.readline()).decode().strip()
    if not line:
        assert process.stderr is not None
        raise AssertionError(f"child ended: {(await process.stderr.read()).decode()[-2000:]}")
    assert line.startswith(expected), f"child said {line!r}, expected {expected!r}"
    return line


@contextlib.asynccontextmanager
async def children(*argvs: tuple[str, ...]) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Run a child per argv; kill whatever still runs afterwards."""
    started = [await spawn(*argv) for argv in argvs]
    try:
        yield started
    finally:
        for child in started:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()


# -- the URL ------------------------------------------------------------------------------


def test_relative_paths_resolve_in_the_working_directory_and_absolute_ones_stay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert settings_from_url("sqlite:///jobs/wrkr.db", {}).path == str(tmp_path / "jobs/wrkr.db")
    assert settings_from_url("sqlite:////var/lib/app/w.db", {}).path == "/var/lib/app/w.db"
    settings = settings_from_url("sqlite:////tmp/w.db?busy_timeout=0.5", {"fast_settle": "no"})
    assert (settings.busy_timeout, settings.fast_settle) == (0.5, False)
    assert settings.url == "sqlite:////tmp/w.db"


@pytest.mark.parametrize(("url", "options", "error", "fragment"), [
    ("sqlite://host/w.db", {}, InvalidConfig, "expected a file"),
    ("sqlite://", {}, InvalidConfig, "expected a file"),
    ("sqlite:///:memory:", {}, InvalidConfig, "memory://"),
    ("sqlite:///w.db?bogus=1", {}, InvalidConfig, "unknown option(s) ['bogus']"),
    ("sqlite:///w.db", {"busy_timeout": -1}, InvalidConfig, "busy_timeout=-1"),
    ("sqlite:///w.db?fast_settle=maybe", {}, InvalidConfig, "fast_settle='maybe'"),
    ("sqlite:///w.db?poll_min=2&poll_max=1", {}, InvalidConfig, "poll_min=2 is above"),
    ("postgresql:///w.db", {}, UnknownBackend, "sqlite:///relative"),
])
def test_configuration_mistakes_name_the_bad_value(
        url: str, options: dict[str, object], error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as raised:
        settings_from_url(url, options)
    assert fragment in str(raised.value)


def test_the_scheme_finds_the_backend() -> None:
    assert isinstance(Wrkr.from_url("sqlite:///w.db").backend, SQLiteBackend)


# -- the file ----------------------------------------------------------------------------


async def test_the_file_is_in_wal_mode_and_migrated_once_however_many_connect(
        tmp_path: Path) -> None:
    backends = [SQLiteBackend(file_url(tmp_path)) for _ in range(5)]
    await asyncio.gather(*(backend.open() for backend in backends))
    for backend in backends:
        await backend.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "wrkr.db")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        recorded = conn.execute("SELECT version, name FROM wrkr_migrations").fetchall()
    assert recorded == migrations()
    assert recorded[:6] == [(1, "0001_init.sql"), (2, "0002_coordination.sql"),
                            (3, "0003_schedules.sql"), (4, "0004_lineage.sql"),
                            (5, "0005_flows.sql"), (6, "0006_root_index.sql")]


def test_switching_new_files_to_wal_from_racing_connections_waits_instead_of_failing(
        tmp_path: Path) -> None:
    # SQLite fails a racing journal-mode change at once, without its busy handler
    # (unretried: about 1 round in 10 failed); 60 rounds of 5 racing connections.
    failures: list[BaseException] = []

    def switch(path: Path) -> None:
        with contextlib.closing(sqlite3.connect(path, timeout=5, isolation_level=None)) as conn:
            try:
                assert use_wal(conn, 5.0) == "wal"
            except BaseException as exc:  # collected: the test thread asserts
                failures.append(exc)

    for round_ in range(60):
        path = tmp_path / f"new-{round_}.db"
        threads = [threading.Thread(target=switch, args=(path,)) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


async def test_items_survive_a_restart_of_the_app(tmp_path: Path, names: Names) -> None:
    queue, name = names.queue("later"), names.event("followup")
    async with Wrkr.from_url(file_url(tmp_path)) as first:
        await first.subscribe(queue, name, lambda event: None)
        [item_id] = await first.publish({"name": name, "tid": "42", "when": "7 days"})
    async with Wrkr.from_url(file_url(tmp_path)) as second:
        [item] = await second.items(queue=queue)
    assert (item.id, item.tid, str(item.state)) == (item_id, "42", "scheduled")


async def test_a_closed_store_says_not_started_not_unavailable(tmp_path: Path) -> None:
    backend = SQLiteBackend(file_url(tmp_path))
    await backend.open()
    await backend.close()
    with pytest.raises(NotStarted, match="SQLiteBackend is not open"):
        await backend.store.items(ItemFilter())


async def test_a_file_that_is_not_a_database_is_backend_unavailable(tmp_path: Path) -> None:
    (tmp_path / "wrkr.db").write_bytes(b"not a database" * 100)
    with pytest.raises(BackendUnavailable, match=r"wrkr\.db failed: file is not a database"):
        await SQLiteBackend(file_url(tmp_path)).open()


# -- locks -------------------------------------------------------------------------------


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """Open a connection that holds the file's write lock until it is closed."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")
    return conn


async def test_a_lock_held_past_the_busy_timeout_is_backend_unavailable_not_locked(
        tmp_path: Path, names: Names) -> None:
    queue, name = names.queue("q"), names.event("x")
    async with Wrkr(SQLiteBackend(file_url(tmp_path), busy_timeout=0.3)) as app:
        await app.subscribe(queue, name, lambda event: None)
        locker = hold_write_lock(tmp_path / "wrkr.db")
        try:
            with pytest.raises(BackendUnavailable) as raised:
                await app.publish({"name": name})
        finally:
            locker.close()
        assert "stayed locked by another connection for more than 0.3s" in str(raised.value)
        assert "database is locked" not in str(raised.value)
        assert await app.items(queue=queue) == []  # nothing was stored


async def test_a_lock_released_within_the_busy_timeout_is_only_a_short_wait(
        tmp_path: Path, names: Names) -> None:
    queue, name = names.queue("q"), names.event("x")
    async with Wrkr(SQLiteBackend(file_url(tmp_path), busy_timeout=10)) as app:
        await app.subscribe(queue, name, lambda event: None)
        locker = hold_write_lock(tmp_path / "wrkr.db")
        asyncio.get_running_loop().call_later(0.3, locker.close)
        began = time.monotonic()
        [item_id] = await app.publish({"name": name})
        waited = time.monotonic() - began
    assert 0.2 < waited < 5, waited
    assert item_id


# -- wake-ups ----------------------------------------------------------------------------


async def test_a_consumer_in_the_publishing_process_is_woken_at_once(
        app: Wrkr, names: Names) -> None:
    queue, name, recorder = names.queue("q"), names.event("x"), Recorder()
    await app.subscribe(queue, name, recorder.handle)
    await app.listen()
    await asyncio.sleep(0.1)  # the consumer is asleep now, for IDLE seconds unless woken
    await app.publish({"name": name, "tid": "now"})
    assert (await recorder.next("the event, woken, not polled")).tid == "now"


async def test_another_processs_publishes_are_found_by_polling(
        tmp_path: Path, names: Names) -> None:
    queue, name, recorder = names.queue("q"), names.event("x"), Recorder()
    url = file_url(tmp_path)
    async with Wrkr(SQLiteBackend(url, poll_max=0.2)) as app:
        await app.subscribe(queue, name, recorder.handle)
        await app.listen()
        async with children(("publisher", url, queue, name, "1")) as [publisher]:
            await read_line(publisher, "ready")
            await read_line(publisher, "published 0 10")
        got = {(await recorder.next(f"event {n} from the other process")).tid for n in range(10)}
    assert got == {f"0-{n}" for n in range(10)}


# -- transactional publish ---------------------------------------------------------------


async def test_rolled_back_transactional_publish_delivers_nothing_committed_wakes_at_commit(
        app: Wrkr, tmp_path: Path, names: Names) -> None:
    queue, name, recorder = names.queue("outbox"), names.event("order.placed"), Recorder()
    await app.subscribe(queue, name, recorder.handle)
    await app.listen()
    with contextlib.closing(sqlite3.connect(tmp_path / "wrkr.db", timeout=5)) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)")
        with contextlib.suppress(ZeroDivisionError), conn:
            conn.execute("INSERT INTO orders VALUES (1, 10)")
            await app.publish({"name": name, "tid": "rolled-back"}, connection=conn)
            raise ZeroDivisionError  # the application's change fails
        with conn:
            conn.execute("INSERT INTO orders VALUES (2, 20)")
            await app.publish({"name": name, "tid": "committed"}, connection=conn)
            assert await app.items(queue=queue) == []  # not visible before the commit
        assert (await recorder.next("the committed event, woken at commit")).tid == "committed"
        assert conn.execute("SELECT id FROM orders").fetchall() == [(2,)]
    assert [item.tid for item in await app.items(queue=queue)] in ([], ["committed"])


async def test_transactional_publish_takes_only_a_sqlite3_connection_to_its_file(
        app: Wrkr, tmp_path: Path, names: Names) -> None:
    await app.subscribe(names.queue("q"), names.event("x"), Recorder().handle)
    with pytest.raises(InvalidConfig, match=r"sqlite3\.Connection to its own file; got object"):
        await app.publish({"name": names.event("x")}, connection=object())
    with (contextlib.closing(sqlite3.connect(tmp_path / "other.db")) as other,
          pytest.raises(InvalidConfig, match="must be in one file")):
        await app.publish({"name": names.event("x")}, connection=other)


def test_a_blocking_publish_joins_a_sync_sqlite3_transaction(tmp_path: Path) -> None:
    url = file_url(tmp_path)

    async def subscribe() -> None:
        async with Wrkr.from_url(url) as setup:
            await setup.subscribe("orders", "shop.order.placed", lambda event: None)

    asyncio.run(subscribe())
    conn = sqlite3.connect(tmp_path / "wrkr.db", check_same_thread=False)  # Flask's, Django's
    with BlockingWrkr(url) as events, contextlib.closing(conn):
        with contextlib.suppress(ZeroDivisionError), conn:
            events.publish({"name": "shop.order.placed", "tid": "rolled-back"},
                           connection=conn)
            raise ZeroDivisionError  # the view's own change fails
        with conn:
            events.publish({"name": "shop.order.placed", "tid": "committed"},
                           connection=conn)
        assert [item.tid for item in events.items(queue="orders")] == ["committed"]


# -- processes ---------------------------------------------------------------------------


async def test_two_worker_processes_share_one_file_each_item_handled_once(
        tmp_path: Path, names: Names) -> None:
    queue, name, url = names.queue("shared"), names.event("job"), file_url(tmp_path)
    workers = [("worker", url, queue, name, "handle")] * 2
    handled: list[list[str]] = [[], []]
    everything = asyncio.Event()

    async def collect(child: asyncio.subprocess.Process, into: list[str]) -> None:
        assert child.stdout is not None
        while line := (await child.stdout.readline()).decode():
            into.append(line.split()[1])
            if sum(map(len, handled)) >= 200:
                everything.set()

    async with children(*workers, ("publisher", url, queue, name, "20")) as started:
        consumers = started[:2]
        for child in started:
            await read_line(child, "ready")
        readers = [asyncio.create_task(collect(child, into))
                   for child, into in zip(consumers, handled, strict=True)]
        async with asyncio.timeout(WAIT * 3):
            await everything.wait()
        for child in consumers:
            child.kill()
        await asyncio.gather(*readers)
        errors = [(await child.stderr.read()).decode() for child in consumers if child.stderr]
    tids = [tid for lines in handled for tid in lines]
    # Exactly once across both processes. Which worker gets how many is the scheduler's
    # business: one of them may well drain a short burst alone.
    assert sorted(tids) == sorted(f"{b}-{n}" for b in range(20) for n in range(10))
    assert not any("locked" in error for error in errors), errors


async def test_a_killed_workers_item_is_handled_by_another_within_about_a_lease(
        tmp_path: Path, names: Names) -> None:
    queue, name, url, recorder = names.queue("crash"), names.event("job"), file_url(
        tmp_path), Recorder()
    async with children(("worker", url, queue, name, "hang")) as [worker]:
        await read_line(worker, "ready")
        async with Wrkr.from_url(url, lease="1 second") as app:
            await app.subscribe(queue, name, recorder.handle, timeout="1 hour")
            [item_id] = await app.publish({"name": name})
            await read_line(worker, "started")
            worker.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            await worker.wait()
            await app.listen()
            event = await recorder.next("the killed worker's item")
            recovered_in = time.monotonic() - killed_at
    assert (event.id, event.attempts) == (item_id, 2)
    assert recovered_in < 5, f"came back after {recovered_in:.1f}s"


async def test_a_publisher_killed_mid_batch_leaves_whole_batches_and_a_sound_file(
        tmp_path: Path, names: Names) -> None:
    queue, name, url = names.queue("batches"), names.event("job"), file_url(tmp_path)
    async with children(("publisher", url, queue, name, "100000")) as [publisher]:
        await read_line(publisher, "ready")
        for batch in range(21):
            await read_line(publisher, f"published {batch} 10")
        publisher.send_signal(signal.SIGKILL)
        await publisher.wait()
    async with Wrkr.from_url(url) as app:
        items = await app.items(queue=queue)
    per_batch: dict[str, int] = {}
    for item in items:
        assert item.tid is not None
        batch = item.tid.split("-")[0]
        per_batch[batch] = per_batch.get(batch, 0) + 1
    assert len(per_batch) > 20
    assert set(per_batch.values()) == {10}, "a batch is all or nothing"
    with contextlib.closing(sqlite3.connect(tmp_path / "wrkr.db")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# -- the command line (by URL: tests/backends/test_conformance_by_url.py) ----------------


@pytest.fixture
def no_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run with neither --url nor WRKR_URL, as a fresh shell would."""
    monkeypatch.delenv("WRKR_URL", raising=False)


def test_the_readme_two_terminal_walk_through_needs_no_server(
        tmp_path: Path, no_url: None) -> None:
    worker = subprocess.Popen([wrkr_script(), "worker", "examples.welcome_email:app"],
                              cwd=tmp_path, env=env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert worker.stdout is not None
    assert worker.stderr is not None
    out, out_reader = lines_of(worker.stdout)
    err, err_reader = lines_of(worker.stderr)
    try:
        said = "".join(wait_for(err, "started"))
        assert f"using sqlite:///wrkr.db ({tmp_path / 'wrkr.db'})" in said
        published = subprocess.run([wrkr_script(), "publish", "ourapp.user.added", "--tid", "42"],
                                   cwd=tmp_path, env=env(), text=True, capture_output=True,
                                   timeout=WAIT, check=False)
        assert published.returncode == 0, published.stderr
        assert len(published.stdout.split()) == 1  # the new item's id
        assert f"({tmp_path / 'wrkr.db'})" in published.stderr
        assert "welcome, user 42" in "".join(wait_for(out, "[email] welcome"))
        assert "user 42" in "".join(wait_for(out, "[audit]"))
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=WAIT) == 0
    finally:
        worker.kill()
        worker.wait()
        for reader, stream in ((out_reader, worker.stdout), (err_reader, worker.stderr)):
            reader.join(timeout=WAIT)
            stream.close()
    assert os.path.isfile(tmp_path / "wrkr.db")


async def test_items_stored_before_the_lineage_migration_are_roots(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wrkr_sqlite._sql as sql

    shipped = sql.migrations()
    with contextlib.closing(sqlite3.connect(tmp_path / "wrkr.db", isolation_level=None)) as conn:
        monkeypatch.setattr(sql, "migrations", lambda: [m for m in shipped if m[0] < 4])
        sql.migrate(conn)
        conn.execute(  # an item as the version before lineage stored it
            "INSERT INTO wrkr_items (id, queue, name, payload, due, created, updated) "
            "VALUES ('old1', 'q', 'x', '{}', 0, 0, 0)")
    monkeypatch.setattr(sql, "migrations", lambda: shipped)
    async with Wrkr(SQLiteBackend(file_url(tmp_path))) as app:
        [event] = await app.lineage("old1")
        assert (event.id, event.parent, event.root) == ("old1", None, "old1")


async def test_trees_stored_before_the_root_index_migration_read_the_same_after_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wrkr_sqlite._sql as sql

    shipped = sql.migrations()
    with contextlib.closing(sqlite3.connect(tmp_path / "wrkr.db", isolation_level=None)) as conn:
        monkeypatch.setattr(sql, "migrations", lambda: [m for m in shipped if m[0] < 6])
        sql.migrate(conn)
        conn.execute(  # a root and its child as version 5 stored them: root = the root's id
            "INSERT INTO wrkr_items (id, queue, name, payload, due, created, updated, parent, "
            "root) VALUES ('r1', 'q', 'x', '{}', 0, 0, 0, NULL, 'r1'), "
            "('c1', 'q', 'y', '{}', 1, 1, 1, 'r1', 'r1')")
    monkeypatch.setattr(sql, "migrations", lambda: shipped)
    async with Wrkr(SQLiteBackend(file_url(tmp_path))) as app:
        tree = await app.lineage("c1")
        assert [(event.id, event.parent, event.root) for event in tree] == [
            ("r1", None, "r1"), ("c1", "r1", "r1")]
    with contextlib.closing(sqlite3.connect(tmp_path / "wrkr.db")) as conn:
        stored = conn.execute("SELECT id, root FROM wrkr_items ORDER BY seq").fetchall()
    assert stored == [("r1", None), ("c1", "r1")]  # a root is no longer in the index


@contextlib.asynccontextmanager
async def opened(tmp_path: Path) -> AsyncIterator[SQLiteBackend]:
    backend = SQLiteBackend(file_url(tmp_path))
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


async def test_a_batch_mixing_once_every_and_plain_messages_keeps_its_order_and_dedupes(
        tmp_path: Path) -> None:
    # plain messages are one executemany, a once_every one its own checked insert:
    # the latter must see the plain items inserted before it in the same batch
    now = datetime.now(UTC)

    def message(tid: str, dedupe: bool = False) -> Message:
        return Message("x.tick", tid, b"{}", now, now, dedupe=dedupe)

    async with opened(tmp_path) as backend:
        await backend.store.subscribe("q", "x.tick")
        ids = await backend.store.put([message("1"), message("1", dedupe=True),
                                       message("2", dedupe=True), message("3")])
        items = await backend.store.items(ItemFilter(queue="q"))
    assert [item.tid for item in items] == ["1", "2", "3"]
    assert [item.id for item in items] == ids


async def test_plain_acks_of_two_claims_in_one_batch_are_fenced_each_by_its_own_lease(
        tmp_path: Path) -> None:
    now = datetime.now(UTC)
    async with opened(tmp_path) as backend:
        store = backend.store
        await store.subscribe("q", "x.job")
        await store.put([Message("x.job", str(n), b"{}", now, now) for n in range(3)])
        claim = Claim(queue="q", worker="w", now=now, until=now + timedelta(minutes=1),
                      limit=2)
        first = await store.claim(claim)
        [second] = await store.claim(claim)
        # an expired lease claimed again: the first claim's token no longer holds it
        later = now + timedelta(minutes=2)
        [again] = await store.claim(Claim(queue="q", worker="w", now=later,
                                          until=later + timedelta(minutes=1), limit=1))
        held = await store.settle([Settlement(d, Settle.ACK)
                                   for d in [*first, second, again, second]])
        left = await store.items(ItemFilter(queue="q"))
    assert again.item.id == first[0].item.id
    assert held == [False, True, True, True, False]
    assert left == []
