"""MongoDB behaviour beyond the conformance suite: dead workers, failpoints, racing processes.

The process and failpoint tests need a real server over TCP: the secantusdb wire server
(marker `mongodb`), and also the real MongoDB of `WRKR_TEST_MONGODB_URL` when it is set.
The rest runs in process against the mock, or against nothing at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient
from pymongo_async_mock import AsyncMongoMockClient

from backend_conformance_tests import Names, Recorder
from tests._waits import until
from tests.backends._mongo_servers import (  # noqa: F401 - fixtures
    REAL_MONGODB_URL,
    new_database_name,
    real_database_url,
    secantus_process,
    wire_database_url,
    wire_server_url,
)
from wrkr import BackendUnavailable, InvalidConfig, UnknownBackend, Wrkr
from wrkr.backend import (
    Claim,
    ErrorRecord,
    ItemFilter,
    Message,
    Settle,
    Settlement,
    State,
)
from wrkr_mongodb import MongoDBBackend, MongoDBStore
from wrkr_mongodb._documents import NOT_LEASED, stored_due

ROOT = Path(__file__).resolve().parents[2]
WAIT = 15.0
NETWORK_TIMEOUT = 89
"""A retryable error code that does not make the driver forget the server (91 would)."""
BAD_VALUE = 2
"""An error code that is neither transient nor leaves a commit's outcome unknown."""
TIERS = ["wire", *(["real"] if REAL_MONGODB_URL else [])]


@pytest.fixture(params=TIERS)
def database_url(request: pytest.FixtureRequest) -> str:
    """Provide a fresh database URL on each server tier available (wire, real)."""
    request.applymarker(pytest.mark.mongodb)
    fixture = "wire_database_url" if request.param == "wire" else "real_database_url"
    return str(request.getfixturevalue(fixture))


@pytest_asyncio.fixture
async def app(database_url: str) -> AsyncIterator[Wrkr]:
    """Provide a started app on the test's database."""
    async with Wrkr(MongoDBBackend(database_url)) as started:
        yield started


@contextlib.asynccontextmanager
async def child(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run a `_mongo_processes` role in a child process, killed on exit if still alive."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.backends._mongo_processes", *args, cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def read_line(process: asyncio.subprocess.Process, wait: float = WAIT) -> str:
    """Return the child's next stdout line, failing after `wait` seconds."""
    assert process.stdout is not None
    async with asyncio.timeout(wait):
        return (await process.stdout.readline()).decode().strip()


START_BUDGET = 5.0
"""Seconds of the machine one child may take to start (import wrkr and the driver, connect).

Children started together share the cores, so the wait for all of them to be ready is
this times their number: twenty interpreters starting at once on two busy cores took
more than one WAIT before the first one was ready."""


async def fail_point(url: str, mode: Any, **data: Any) -> None:
    """Arm (or with mode "off" disarm) the server's `failCommand` failpoint."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    try:
        await client.admin.command(
            {"configureFailPoint": "failCommand", "mode": mode, "data": data})
    finally:
        await client.close()


# -- processes --------------------------------------------------------------------------


async def test_item_of_a_killed_worker_is_handled_by_another_after_its_lease(
        app: Wrkr, database_url: str, names: Names) -> None:
    queue, name = names.queue("a"), names.event("x")
    recorder = Recorder()
    await app.subscribe(queue, name, recorder.handle)
    [item_id] = await app.publish({"name": name, "tid": "1"})
    async with child("worker", database_url, queue, name) as worker:
        assert await read_line(worker) == f"HANDLING {item_id}"
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    await app.listen()
    event = await recorder.next("the dead worker's item")
    assert (event.id, event.attempts) == (item_id, 2)


async def test_twenty_once_every_publishers_in_separate_processes_create_one_item(
        app: Wrkr, database_url: str, names: Names) -> None:
    queue, name = names.queue("a"), names.event("x")
    await app.subscribe(queue, name, Recorder().handle)
    async with contextlib.AsyncExitStack() as stack:
        publishers = [await stack.enter_async_context(child("once", database_url, name, "42"))
                      for _ in range(20)]
        async with asyncio.timeout(START_BUDGET * len(publishers)):
            ready = [await read_line(p, wait=START_BUDGET * len(publishers))
                     for p in publishers]
        assert ready == ["READY"] * 20
        for publisher in publishers:
            assert publisher.stdin is not None
            publisher.stdin.write(b"go\n")
        created = [orjson.loads(await read_line(p)) for p in publishers]
    assert sum(len(ids) for ids in created) == 1
    assert len(await app.items(queue=queue)) == 1


@pytest.mark.mongodb
async def test_welcome_email_example_runs_unchanged_on_the_wire_server(
        wire_database_url: str) -> None:  # noqa: F811 - the fixture
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "examples.welcome_email", "--follow-up-in", "1 second",
        cwd=ROOT, env={**os.environ, "WRKR_URL": wire_database_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()[-2000:]
    assert "how is your pro plan going?" in out.decode()


# The driver leaves the sockets of refused connections (while the server is down) to
# the garbage collector; collect them here so the warning is not pinned elsewhere.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.mongodb
async def test_consumer_resumes_when_the_server_comes_back(
        tmp_path: Path, names: Names) -> None:
    queue, name = names.queue("a"), names.event("x")
    recorder, storage = Recorder(), str(tmp_path / "data")
    with contextlib.ExitStack() as servers:
        url = servers.enter_context(secantus_process(tmp_path / "1.log", storage=storage))
        async with Wrkr(MongoDBBackend(f"{url}/resume?serverSelectionTimeoutMS=300")) as app:
            await app.subscribe(queue, name, recorder.handle)
            await app.listen()
            servers.close()  # the server goes away
            with pytest.raises(BackendUnavailable):
                await app.publish({"name": name, "tid": "while down"})
            port = int(url.rpartition(":")[2])
            servers.enter_context(secantus_process(tmp_path / "2.log", port=port,
                                                   storage=storage))
            await until(lambda: _published(app, name), "publishing works again", WAIT)
            assert (await recorder.next("the item published after the restart")).tid == "back"
    gc.collect()


async def _published(app: Wrkr, name: str) -> bool:
    try:
        await app.publish({"name": name, "tid": "back"})
    except BackendUnavailable:
        return False
    return True


# -- failpoints ---------------------------------------------------------------------------


# The driver leaves the sockets of a pool it clears after a dropped connection to the
# garbage collector; collect them here so the warning is not pinned on a later test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_one_failed_insert_is_retried_by_the_driver_and_stored_once(
        database_url: str, names: Names) -> None:
    queue, name = names.queue("a"), names.event("x")
    async with Wrkr(MongoDBBackend(database_url)) as app:
        await app.subscribe(queue, name, Recorder().handle)
        await fail_point(database_url, {"times": 1}, failCommands=["insert"],
                         closeConnection=True)
        ids = await app.publish({"name": name})
        assert [event.id for event in await app.items(queue=queue)] == ids
    gc.collect()


async def test_failing_inserts_raise_backend_unavailable_and_store_nothing(
        app: Wrkr, database_url: str, names: Names) -> None:
    queue, name = names.queue("a"), names.event("x")
    await app.subscribe(queue, name, Recorder().handle)
    # Always on: in a transaction, a failed insert is transient and retried.
    await fail_point(database_url, "alwaysOn", failCommands=["insert"], errorCode=NETWORK_TIMEOUT)
    try:
        with pytest.raises(BackendUnavailable, match="publishing"):
            await app.publish([{"name": name, "tid": "1"}, {"name": name, "tid": "2"}])
    finally:
        await fail_point(database_url, "off")
    assert await app.items(queue=queue) == []
    assert len(await app.publish({"name": name})) == 1


async def test_a_batch_whose_commit_fails_after_its_inserts_stores_nothing(
        app: Wrkr, database_url: str, names: Names) -> None:
    queue, other, name = names.queue("a"), names.queue("b"), names.event("x")
    await app.subscribe(queue, name, Recorder().handle)
    await app.subscribe(other, name, Recorder().handle)
    await fail_point(database_url, {"times": 1}, failCommands=["commitTransaction"],
                     errorCode=BAD_VALUE, errorLabels=[])
    with pytest.raises(BackendUnavailable, match="publishing") as raised:
        await app.publish([{"name": name, "tid": "1"}, {"name": name, "tid": "2"}])
    assert "unknown" not in str(raised.value)
    assert await app.items(name=name) == []


async def test_transient_insert_failures_are_retried_and_the_batch_stored_once(
        app: Wrkr, database_url: str, names: Names) -> None:
    queue, name = names.queue("a"), names.event("x")
    await app.subscribe(queue, name, Recorder().handle)
    await fail_point(database_url, {"times": 2}, failCommands=["insert"], errorCode=NETWORK_TIMEOUT)
    ids = await app.publish([{"name": name, "tid": str(n)} for n in range(3)])
    assert sorted(item.id for item in await app.items(queue=queue)) == sorted(ids)


async def test_a_commit_whose_outcome_stays_unknown_says_so(
        app: Wrkr, database_url: str, names: Names) -> None:
    queue, name = names.queue("a"), names.event("x")
    await app.subscribe(queue, name, Recorder().handle)
    await fail_point(database_url, "alwaysOn", failCommands=["commitTransaction"],
                     errorCode=NETWORK_TIMEOUT, errorLabels=["UnknownTransactionCommitResult"])
    try:
        with pytest.raises(BackendUnavailable, match="the outcome is unknown"):
            await app.publish([{"name": name, "tid": "1"}, {"name": name, "tid": "2"}])
    finally:
        await fail_point(database_url, "off")


async def test_a_batch_with_a_pending_once_every_item_stores_the_others(
        app: Wrkr, names: Names) -> None:
    queue, name, other = names.queue("a"), names.event("x"), names.event("y")
    await app.subscribe(queue, names.event("*"), Recorder().handle)
    [first] = await app.publish({"name": name, "tid": "1", "once_every": "1 hour"})
    ids = await app.publish([{"name": other, "tid": "a"},
                             {"name": name, "tid": "1", "once_every": "1 hour"},
                             {"name": other, "tid": "b"}])
    assert len(ids) == 2
    assert sorted(item.id for item in await app.items(queue=queue)) == sorted([first, *ids])


async def test_racing_batches_with_the_same_once_every_item_store_it_once_and_all_others(
        app: Wrkr, names: Names) -> None:
    queue, name, other = names.queue("a"), names.event("x"), names.event("y")
    await app.subscribe(queue, names.event("*"), Recorder().handle)
    batches = [[{"name": name, "tid": "1", "once_every": "1 hour"},
                {"name": other, "tid": str(n)}] for n in range(8)]
    async with asyncio.timeout(WAIT):
        await asyncio.gather(*(app.publish(batch) for batch in batches))
    assert len(await app.items(queue=queue, name=name)) == 1
    assert len(await app.items(queue=queue, name=other)) == 8


async def test_a_stored_batch_is_delivered_whole_and_in_order(
        app: Wrkr, names: Names) -> None:
    queue, name = names.queue("a"), names.event("x")
    recorder = Recorder()
    await app.subscribe(queue, name, recorder.handle)
    ids = await app.publish([{"name": name, "tid": str(n)} for n in range(10)])
    await app.listen()
    delivered = [(await recorder.next(f"item {n}")).id for n in range(10)]
    assert delivered == ids


async def test_consumer_keeps_going_after_failed_claims_and_handles_the_item_once(
        app: Wrkr, database_url: str, names: Names) -> None:
    queue, name = names.queue("a"), names.event("x")
    recorder = Recorder()
    await app.subscribe(queue, name, recorder.handle)
    await fail_point(database_url, {"times": 4}, failCommands=["findAndModify"],
                     errorCode=NETWORK_TIMEOUT)
    ids = await app.publish({"name": name})
    await app.listen()
    assert (await recorder.next("the item, once claims work again")).id == ids[0]
    await until(lambda: _is_gone(app, queue), "the item is acked and deleted", WAIT)
    await recorder.nothing_more(0.3)


async def _is_gone(app: Wrkr, queue: str) -> bool:
    return await app.items(queue=queue) == []


# -- in process: precision, credentials, fencing --------------------------------------------


def test_a_future_due_time_is_rounded_up_to_the_millisecond() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    due = now + timedelta(microseconds=1500)
    assert stored_due(due, now) == now + timedelta(milliseconds=2)
    assert stored_due(now - timedelta(microseconds=1500), now) == now - timedelta(
        milliseconds=2)


# The driver leaves the socket of a refused connection to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_credentials_appear_in_no_error_nor_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    backend = MongoDBBackend(
        "mongodb://wrkr:s3cr3t-pw@127.0.0.1:9/wrkr?serverSelectionTimeoutMS=100")
    with pytest.raises(BackendUnavailable) as raised:
        await backend.open()
    await backend.close()
    message = str(raised.value)
    shown = f"{message} {raised.value!r} {backend!r} {caplog.text}"
    del raised  # its traceback holds the refused socket until collected below
    assert "s3cr3t-pw" not in shown
    assert "127.0.0.1:9" in message
    gc.collect()


async def test_an_item_not_leased_stores_a_past_date_not_null() -> None:
    client = AsyncMongoMockClient(tz_aware=True)
    backend = MongoDBBackend(client=client, database=new_database_name())
    await backend.open()
    try:
        await backend.subscribe("q", "x")
        now = datetime.now(UTC)
        [item_id] = await backend.enqueue([Message("x", None, b"{}", now, now)])
        document = await backend.store._connection().items.find_one({"_id": item_id})
        assert document["lease"] == NOT_LEASED
        assert [item.id for item in await backend.items(ItemFilter(queue="q"))] == [item_id]
    finally:
        await backend.close()



async def test_documents_stored_before_lineage_are_roots() -> None:
    backend = MongoDBBackend(client=AsyncMongoMockClient(tz_aware=True),
                             database=new_database_name())
    async with Wrkr(backend) as app:
        await app.subscribe("q", "x", Recorder().handle)
        [old_id, child_id] = await app.publish([{"name": "x"}, {"name": "x"}])
        items = backend.store._connection().items
        await items.update_one({"_id": old_id}, {"$unset": {"root": ""}})  # as written before
        await items.update_one({"_id": child_id}, {"$set": {"root": old_id, "parent": old_id}})
        assert [(e.id, e.parent, e.root) for e in await app.lineage(child_id)] == [
            (old_id, None, old_id), (child_id, old_id, old_id)]
        assert [e.id for e in await app.lineage(old_id)] == [old_id, child_id]


# -- configuration errors (issue 8, item 1) ---------------------------------------------------


@pytest.mark.parametrize(("url", "named"), [
    ("mongodb://wrkr:s3cr3t-pw@h:1/db?replicaSett=rs0", "'replicaSett'"),
    ("mongodb://wrkr:s3cr3t-pw@h:1/db?serverSelectionTimeoutMS=abc", "serverselectiontimeoutms"),
    ("mongodb://wrkr:s3cr3t-pw@h:1/db?tls=maybe", "tls"),
    ("mongodb://wrkr:s3cr3t-pw@h:x/db", "'h:x'"),
    ("mongodb://wrkr:s3cr3t-pw@h:1/bad.name", "'bad.name'"),
    ("mongodb+srv://wrkr:s3cr3t-pw@a.example.com,b.example.com/db", "one host"),
])
def test_a_bad_url_raises_invalid_config_naming_it_with_the_password_masked(
        url: str, named: str) -> None:
    with pytest.raises(InvalidConfig) as raised:
        Wrkr.from_url(url)
    assert named in str(raised.value)
    assert "s3cr3t-pw" not in str(raised.value)
    assert "wrkr:***@h" in str(raised.value) or "***@a.example.com" in str(raised.value)


def test_an_unknown_url_option_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidConfig, match=r"valid options.*replicaset"):
        MongoDBBackend("mongodb://h:1/db?replicaSett=rs0")


def test_an_unknown_keyword_option_raises_invalid_config_listing_the_valid_ones() -> None:
    with pytest.raises(InvalidConfig, match=r"\['pool_sise'\].*valid options: client, "
                                            r"database, .*subscriptions_ttl") as raised:
        Wrkr.from_url("mongodb://wrkr:s3cr3t-pw@h:1/db", pool_sise=3)
    assert "s3cr3t-pw" not in str(raised.value)


@pytest.mark.parametrize("options", [{"poll_min": 0}, {"poll_max": "1s"},
                                     {"poll_min": 2.0, "poll_max": 1.0},
                                     {"subscriptions_ttl": -1}])
def test_a_bad_keyword_value_raises_invalid_config_naming_it(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidConfig, match=next(iter(options))):
        MongoDBBackend("mongodb://h:1/db", **options)


def test_another_scheme_is_an_unknown_backend() -> None:
    with pytest.raises(UnknownBackend, match="mongodb://"):
        MongoDBBackend.from_url("mongo://h:1/db")


def test_valid_url_options_are_accepted() -> None:
    backend = MongoDBBackend("mongodb://h:1,h2:2/db?replicaSet=rs0&serverSelectionTimeoutMS=50")
    assert backend.store.address.database == "db"


# -- start, stop, start (issue 8, item 2) ---------------------------------------------------


@pytest.fixture(params=["mock", *TIERS])
def any_backend(request: pytest.FixtureRequest) -> MongoDBBackend:
    """Provide a backend on the mock and on each server tier available."""
    if request.param == "mock":
        return MongoDBBackend(client=AsyncMongoMockClient(tz_aware=True),
                              database=new_database_name())
    request.applymarker(pytest.mark.mongodb)
    fixture = "wire_database_url" if request.param == "wire" else "real_database_url"
    return MongoDBBackend(str(request.getfixturevalue(fixture)))


async def test_an_app_starts_again_after_stop_and_delivers(
        any_backend: MongoDBBackend, names: Names) -> None:
    queue, name = names.queue("a"), names.event("x")
    recorder = Recorder()
    app = Wrkr(any_backend)
    app.on(name, queue=queue)(recorder.handle)
    for round_ in ("first", "second", "third"):
        await app.start()
        try:
            await app.listen()
            [item_id] = await app.publish({"name": name, "tid": round_})
            assert (await recorder.next(f"the {round_} run's item")).id == item_id
        finally:
            await app.stop()


# -- the store's primitives ------------------------------------------------------------------


@pytest_asyncio.fixture
async def store(any_backend: MongoDBBackend) -> AsyncIterator[MongoDBStore]:
    """Provide a connected store with queue "q" subscribed to "x"."""
    await any_backend.open()
    try:
        await any_backend.subscribe("q", "x")
        yield any_backend.store
    finally:
        await any_backend.close()


async def _put(store: MongoDBStore, count: int, ago: float = 0.0) -> list[str]:
    """Put `count` items, created and due `ago` seconds before now."""
    now = datetime.now(UTC) - timedelta(seconds=ago)
    return await store.put([Message("x", str(n), b"{}", now, now) for n in range(count)])


def _claim(worker: str, limit: int, lease: float = 60.0, later: float = 0.0) -> Claim:
    """Return a claim made `later` seconds from now (past a short lease, say)."""
    now = datetime.now(UTC) + timedelta(seconds=later)
    return Claim("q", worker, now, now + timedelta(seconds=lease), limit)


async def test_racing_batch_claims_never_take_one_item_twice(store: MongoDBStore) -> None:
    ids = await _put(store, 30)
    batches = await asyncio.gather(*(store.claim(_claim(f"w{n}", 10)) for n in range(4)))
    claimed = [delivery.item.id for batch in batches for delivery in batch]
    assert len(claimed) == len(set(claimed)) >= 10
    assert {d.item.attempts for batch in batches for d in batch} == {1}
    rest = await store.claim(_claim("last", 30))
    assert sorted(claimed + [d.item.id for d in rest]) == sorted(ids)


async def test_a_batch_claim_returns_items_in_due_order_with_the_worker_recorded(
        store: MongoDBStore) -> None:
    ids = await _put(store, 5)
    claimed = await store.claim(_claim("w", 3))
    assert [d.item.id for d in claimed] == ids[:3]
    assert {(await store.get(d.item.id)).worker for d in claimed} == {"w"}


async def test_renewing_a_batch_tells_which_leases_still_held(store: MongoDBStore) -> None:
    await _put(store, 2, ago=10)
    # Claimed 5 s ago for 1 ms: both leases ended long before the renewal below, however
    # fast the in-process mock answers.
    stale, kept = await store.claim(_claim("old", 2, lease=0.001, later=-5))
    [again] = await store.claim(_claim("new", 1))  # after the first lease
    assert again.item.id == stale.item.id
    until = datetime.now(UTC) + timedelta(minutes=5)
    # `kept` was claimed by nobody else, but its lease ended: an ended lease is not renewed.
    assert await store.renew([stale, kept, again], until) == [False, False, True]
    [third] = await store.claim(_claim("third", 2, later=2))  # `again` was extended
    assert third.item.id == kept.item.id


async def test_settling_a_batch_tells_which_deliveries_still_held(store: MongoDBStore) -> None:
    await _put(store, 3)
    stale, acked, nacked = await store.claim(_claim("old", 3, lease=0.001))
    [again] = await store.claim(_claim("new", 1, later=1))
    error = ErrorRecord(datetime.now(UTC), 1, "ValueError", "boom")
    held = await store.settle([
        Settlement(stale, Settle.ACK), Settlement(acked, Settle.ACK),
        Settlement(nacked, Settle.NACK, due=datetime.now(UTC), error=error),
        Settlement(again, Settle.FAIL, error=error)])
    assert held == [False, True, True, True]
    assert (await store.get(again.item.id)).state is State.FAILED
    assert sorted(i.id for i in await store.items(ItemFilter(queue="q"))) == sorted(
        [nacked.item.id, again.item.id])
    assert await store.settle([Settlement(acked, Settle.ACK)]) == [False]  # settled already


async def test_a_released_delivery_cannot_be_settled_again(store: MongoDBStore) -> None:
    await _put(store, 2)
    first, second = await store.claim(_claim("w", 2))
    assert await store.settle([Settlement(first, Settle.RELEASE),
                               Settlement(second, Settle.ABANDON)]) == [True, True]
    assert await store.settle([Settlement(first, Settle.ACK),
                               Settlement(second, Settle.RELEASE)]) == [False, False]
    assert [(i.attempts, i.state) for i in await store.items(ItemFilter(queue="q"))] == [
        (0, State.READY), (1, State.READY)]


async def test_next_due_is_the_earliest_due_time_or_lease_end(store: MongoDBStore) -> None:
    now = datetime.now(UTC)
    assert await store.next_due("q", now) is None
    later = now + timedelta(hours=1)
    await store.put([Message("x", "late", b"{}", later, now)])
    assert abs((await store.next_due("q", now) or now) - later) < timedelta(milliseconds=2)
    await _put(store, 1)
    assert len(await store.claim(_claim("w", 1, lease=60))) == 1
    soon = await store.next_due("q", datetime.now(UTC))
    assert soon is not None
    assert soon < later


async def test_items_skip_the_offset_and_purge_deletes_finished_items(
        store: MongoDBStore) -> None:
    ids = await _put(store, 4)
    page = await store.items(ItemFilter(queue="q", limit=2, offset=1))
    assert [item.id for item in page] == ids[1:3]
    claimed = await store.claim(_claim("w", 2))
    error = ErrorRecord(datetime.now(UTC), 1, "ValueError", "boom")
    await store.settle([Settlement(claimed[0], Settle.ACK, keep=True),
                        Settlement(claimed[1], Settle.FAIL, error=error)])
    assert await store.purge("q", State.DONE, datetime.now(UTC) - timedelta(hours=1)) == 0
    assert await store.purge("q", State.DONE, None) == 1
    assert await store.purge(None, State.FAILED, datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert [item.id for item in await store.items(ItemFilter(queue="q"))] == ids[2:]

