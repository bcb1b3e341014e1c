"""The app's own behaviour, on the memory backend: what the conformance suite cannot show."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

import wrkr
from tests._waits import until
from wrkr import Capability, Event, Fail, NotStarted, NotSupported, Retry, State, Wrkr
from wrkr._connect import redact
from wrkr.backend import Message, scrub
from wrkr_memory import ManualClock, MemoryBackend

WAIT = 5.0


@pytest.fixture
async def app() -> AsyncIterator[Wrkr]:
    async with Wrkr(MemoryBackend(), name="test") as running:
        yield running


async def is_failed(app: Wrkr, item_id: str) -> bool:
    return (await app.get(item_id)).state is State.FAILED


async def is_scheduled(app: Wrkr, item_id: str) -> bool:
    return (await app.get(item_id)).state is State.SCHEDULED


async def started(app: Wrkr) -> bool:
    return app._started


def recorder() -> tuple[list[Event], asyncio.Event, Callable[[Event], Any]]:
    seen: list[Event] = []
    arrived = asyncio.Event()

    async def handler(event: Event) -> None:
        seen.append(event)
        arrived.set()

    return seen, arrived, handler


def test_public_names_are_sorted_and_all_importable() -> None:
    assert wrkr.__all__ == sorted(wrkr.__all__)
    for name in wrkr.__all__:
        assert hasattr(wrkr, name), name


def test_default_backend_is_in_memory() -> None:
    assert isinstance(Wrkr().backend, MemoryBackend)


def test_worker_id_carries_the_app_name() -> None:
    app = Wrkr(MemoryBackend(), name="crm")
    prefix, _, uuid_part = app.worker_id.partition(":")
    assert prefix == "crm"
    assert len(uuid_part) == 36


async def test_started_says_whether_the_app_runs_between_start_and_stop() -> None:
    app = Wrkr(MemoryBackend())
    seen = [app.started]
    async with app:
        seen.append(app.started)
    assert [*seen, app.started] == [False, True, False]


async def test_publish_before_start_names_the_remedy() -> None:
    app = Wrkr(MemoryBackend())
    with pytest.raises(NotStarted, match="not started"):
        await app.publish({"name": "a.b"})


async def test_sync_handler_runs_in_a_thread(app: Wrkr) -> None:
    threads: list[int] = []
    done = threading.Event()

    def handler(event: Event) -> None:
        threads.append(threading.get_ident())
        done.set()

    await app.subscribe("q.sync", "ev.sync", handler)
    await app.listen()
    await app.publish({"name": "ev.sync"})
    async with asyncio.timeout(WAIT):
        while not done.is_set():
            await asyncio.to_thread(done.wait, 0.1)
    assert threads[0] != threading.get_ident()


async def test_sync_handler_may_ack_early_so_a_later_error_is_not_retried() -> None:
    failures: list[BaseException] = []
    reported = asyncio.Event()

    def handler(event: Event, ack: Callable[[], None]) -> None:
        ack()
        raise RuntimeError("after the ack")

    def on_error(exc: BaseException, event: Event) -> None:
        failures.append(exc)
        reported.set()

    async with Wrkr(MemoryBackend(), on_error=on_error) as app:
        await app.subscribe("q.syncack", "ev.syncack", handler)
        await app.listen()
        await app.publish({"name": "ev.syncack"})
        async with asyncio.timeout(WAIT):
            await reported.wait()
        assert await app.items(queue="q.syncack") == []
    assert str(failures[0]) == "after the ack"


async def test_on_error_gets_the_exception_and_the_event() -> None:
    reported: list[tuple[BaseException, Event]] = []
    got = asyncio.Event()

    async def on_error(exc: BaseException, event: Event) -> None:
        reported.append((exc, event))
        got.set()

    async def handler(event: Event) -> None:
        raise ValueError("boom")

    async with Wrkr(MemoryBackend(), retry=Retry(1), on_error=on_error) as app:
        await app.subscribe("q.err", "ev.err", handler)
        await app.listen()
        await app.publish({"name": "ev.err", "tid": "7"})
        async with asyncio.timeout(WAIT):
            await got.wait()
    [(exc, event)] = reported
    assert isinstance(exc, ValueError)
    assert event.tid == "7"


async def test_fail_is_not_reported_to_on_error() -> None:
    reported: list[BaseException] = []

    async def handler(event: Event) -> None:
        raise Fail("not for us")

    async with Wrkr(MemoryBackend(), on_error=_append(reported)) as app:
        await app.subscribe("q.fail", "ev.fail", handler)
        await app.listen()
        [item_id] = await app.publish({"name": "ev.fail"})
        await until(lambda: is_failed(app, item_id), "the item is failed")
    assert reported == []


async def test_decorated_handlers_are_subscribed_at_start() -> None:
    app = Wrkr(MemoryBackend())
    seen: list[Event] = []
    arrived = asyncio.Event()

    @app.on("ev.decorated", queue="q.decorated")
    async def handler(event: Event) -> None:
        seen.append(event)
        arrived.set()

    async with app:
        assert await app.subscriptions("ev.decorated") == ["q.decorated"]
        await app.listen()
        await app.publish({"name": "ev.decorated", "payload": {"n": 1}})
        async with asyncio.timeout(WAIT):
            await arrived.wait()
    assert seen[0].payload == {"n": 1}
    assert seen[0].queue == "q.decorated"


async def test_run_returns_once_stop_is_called() -> None:
    app = Wrkr(MemoryBackend())
    seen, arrived, handler = recorder()
    app.on("ev.run", queue="q.run")(handler)
    runner = asyncio.create_task(app.run())
    await until(lambda: started(app), "the app is started")
    async with asyncio.timeout(WAIT):
        await app.publish({"name": "ev.run"})
        await arrived.wait()
        await app.stop()
        await runner
    assert len(seen) == 1


async def test_manual_clock_delivers_a_week_later_without_waiting() -> None:
    clock = ManualClock()
    seen, arrived, handler = recorder()
    async with Wrkr(MemoryBackend(clock=clock)) as app:
        await app.subscribe("q.week", "ev.week", handler)
        await app.listen()
        await app.publish({"name": "ev.week", "when": "7 days"})
        [pending] = await app.items(queue="q.week")
        assert pending.state is State.SCHEDULED
        clock.advance(timedelta(days=7))
        async with asyncio.timeout(WAIT):
            await arrived.wait()
    assert seen[0].when == pending.when


async def test_retry_backoff_follows_the_manual_clock() -> None:
    clock = ManualClock()
    attempts: list[int] = []
    tried = asyncio.Event()

    async def handler(event: Event) -> None:
        attempts.append(event.attempts)
        tried.set()
        raise RuntimeError("again")

    async with Wrkr(MemoryBackend(clock=clock), retry=Retry(3, ["1 hour"])) as app:
        await app.subscribe("q.backoff", "ev.backoff", handler)
        await app.listen()
        [item_id] = await app.publish({"name": "ev.backoff"})
        for expected in (1, 2, 3):
            async with asyncio.timeout(WAIT):
                await tried.wait()
            tried.clear()
            assert attempts[-1] == expected
            if expected < 3:
                await until(lambda: is_scheduled(app, item_id), "the retry is scheduled")
                clock.advance(timedelta(hours=1))
        await until(lambda: is_failed(app, item_id), "the item is failed")
    assert attempts == [1, 2, 3]


async def test_malformed_stored_payload_is_parked_as_failed(app: Wrkr) -> None:
    await app.subscribe("q.bad", "ev.bad", recorder()[2])
    now = app.backend.now()
    [item_id] = await app.backend.enqueue([Message("ev.bad", None, b"not json", now, now)])
    await app.listen()
    await until(lambda: is_failed(app, item_id), "the item is failed")
    item = await app.get(item_id)
    assert "malformed" in item.errors[-1].message
    assert item.payload == {"__undecodable__": "not json"}


class NoExtrasBackend(MemoryBackend):
    """A memory backend that claims only the basics, to see the core refuse up front."""

    capabilities = frozenset({Capability.DELAY})


async def test_missing_capabilities_are_refused_before_reaching_the_backend() -> None:
    async with Wrkr(NoExtrasBackend()) as app:
        with pytest.raises(NotSupported, match="'wildcards'"):
            await app.subscribe("q.wild", "ev.*", recorder()[2])
        with pytest.raises(NotSupported, match="'once_every'"):
            await app.publish({"name": "ev.once", "once_every": "1 hour"})
        with pytest.raises(NotSupported, match="'query'"):
            await app.items(queue="q.wild")
        with pytest.raises(NotSupported, match="'cancel'"):
            await app.cancel(name="ev.once")


def test_keep_archive_needs_the_capability() -> None:
    with pytest.raises(NotSupported, match="'archive'"):
        Wrkr(NoExtrasBackend(), archive="keep")


def test_unknown_url_scheme_names_the_url_and_the_known_schemes() -> None:
    with pytest.raises(wrkr.UnknownBackend, match=r"'nope://x'.*memory://"):
        Wrkr.from_url("nope://x")


def test_urls_in_messages_hide_the_password() -> None:
    assert redact("amqp://guest:secret@127.0.0.1:5672/") == "amqp://guest:***@127.0.0.1:5672/"
    assert redact("memory://") == "memory://"
    assert redact("mongodb://u:p@a:1,b:2/db") == "mongodb://u:***@a:1,b:2/db"


def test_driver_messages_lose_the_password_in_both_spellings() -> None:
    url = "amqp://guest:s%40cret@127.0.0.1/"
    assert scrub("auth failed for s%40cret / s@cret", url) == "auth failed for *** / ***"


def test_from_url_gives_app_options_to_the_app() -> None:
    app = Wrkr.from_url("memory://", name="svc", retry=Retry(2))
    assert app.name == "svc"
    assert isinstance(app.backend, MemoryBackend)


def _append(into: list[BaseException]) -> Callable[[BaseException, Event], None]:
    return lambda exc, event: into.append(exc)


async def test_concurrent_stops_close_a_shared_backend_once() -> None:
    backend = MemoryBackend()
    first, second = Wrkr(backend), Wrkr(backend)
    async with second:
        await first.start()
        await first.subscribe("q.shared", "ev.shared", recorder()[2])
        await first.listen()
        await asyncio.gather(first.stop(), first.stop())
        assert await second.publish({"name": "ev.shared"}) != []


async def test_busy_consumer_lets_the_rest_of_the_process_run(app: Wrkr) -> None:
    handled = 0

    async def handler(event: Event) -> None:
        nonlocal handled
        handled += 1  # never waits: only the consumer itself can give way

    await app.subscribe("q.busy", "ev.busy", handler)
    await app.publish([{"name": "ev.busy"} for _ in range(5000)])
    await app.listen()
    await asyncio.sleep(0.01)  # the consumer is now draining the backlog
    assert 0 < handled < 5000


async def test_workers_take_turns_at_the_stream_and_each_gets_an_item(app: Wrkr) -> None:
    """Waiting workers queue for the stream; a stop cancels them without losing a turn."""
    gate = asyncio.Event()
    running: set[str | None] = set()
    handled: list[str | None] = []

    async def handler(event: Event) -> None:
        running.add(event.tid)
        await gate.wait()
        handled.append(event.tid)

    async def running_count(count: int) -> bool:
        return len(running) == count

    await app.subscribe("turns", "turns.job", handler, concurrency=4)
    await app.listen()
    await app.publish({"name": "turns.job", "tid": "0"})
    await until(lambda: running_count(1), "1 handler running")  # the others wait their turn
    await app.publish([{"name": "turns.job", "tid": str(n)} for n in range(1, 4)])
    await until(lambda: running_count(4), "4 handlers running, each woken in turn")
    await app.publish({"name": "turns.job", "tid": "4"})  # no worker free: it waits
    gate.set()
    await until(lambda: running_count(5), "the 5th item handled once a worker is free")
    await until(lambda: asyncio.sleep(0, len(handled) == 5), "all 5 handled")
    assert sorted(handled) == ["0", "1", "2", "3", "4"]
    await asyncio.wait_for(app.stop(), WAIT)  # every worker idle, waiting: stops at once
