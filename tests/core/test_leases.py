"""Short leases renewed while handlers run; a lost lease cuts its handler short."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import timedelta

import pytest

from wrkr import Event, InvalidConfig, Observer, Wrkr
from wrkr_memory import ManualClock, MemoryBackend

WAIT = 5.0


class LeaseLog(Observer):
    """Lets a test await a lost lease."""

    def __init__(self) -> None:
        self.lost: asyncio.Queue[str] = asyncio.Queue()

    def lease_lost(self, queue: str, item_id: str) -> None:
        self.lost.put_nowait(item_id)


async def test_a_handler_running_past_its_lease_keeps_its_item() -> None:
    backend = MemoryBackend()
    calls: list[str] = []
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(event: Event) -> None:
        calls.append("slow")
        started.set()
        await asyncio.sleep(1.6)  # well past the 0.5 s lease: only renewals keep it
        finished.set()

    async def rival(event: Event) -> None:
        calls.append("rival")

    lease = "0.5 seconds"
    async with Wrkr(backend, lease=lease) as app, Wrkr(backend, lease=lease) as other:
        await app.subscribe("q", "a.b", slow)
        await app.listen()
        await app.publish({"name": "a.b"})
        await asyncio.wait_for(started.wait(), WAIT)
        await other.subscribe("q", "a.b", rival)
        await other.listen()  # a rival that takes the item the moment its lease ends
        await asyncio.wait_for(finished.wait(), WAIT)
        assert await app.items(queue="q") == []
    assert calls == ["slow"]


async def test_a_lost_lease_cancels_the_handler_and_the_item_is_claimed_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    log = LeaseLog()
    cancelled = asyncio.Event()
    running = asyncio.Event()
    attempts: list[int] = []
    again = asyncio.Event()

    async def handler(event: Event) -> None:
        attempts.append(event.attempts)
        if event.attempts > 1:
            again.set()
            return
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    caplog.set_level(logging.WARNING, logger="wrkr")
    async with Wrkr(MemoryBackend(clock=clock), lease="1 second") as app:
        app.observe(log)
        await app.subscribe("q", "a.b", handler)
        await app.listen()
        [item_id] = await app.publish({"name": "a.b"})
        await asyncio.wait_for(running.wait(), WAIT)
        clock.advance(timedelta(seconds=5))  # as if the worker had been paused past its lease
        assert await asyncio.wait_for(log.lost.get(), WAIT) == item_id
        await asyncio.wait_for(cancelled.wait(), WAIT)
        await asyncio.wait_for(again.wait(), WAIT)  # claimable again, and handled once more
    assert attempts == [1, 2]
    assert any("LeaseLost" in record.getMessage() and item_id in record.getMessage()
               for record in caplog.records)


async def test_a_sync_handler_outliving_stop_keeps_its_item_and_settles_by_its_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = MemoryBackend()
    started = threading.Event()
    finished: list[float] = []

    def slow(event: Event) -> None:
        started.set()
        time.sleep(1.0)  # a plain function: its thread cannot be interrupted
        finished.append(time.monotonic())

    caplog.set_level(logging.WARNING, logger="wrkr")
    async with Wrkr(backend) as watcher:  # keeps the backend open after the app stops
        app = Wrkr(backend, lease="0.5 seconds")
        await app.start()
        await app.subscribe("q", "a.b", slow)
        await app.listen()
        await app.publish({"name": "a.b"})
        await asyncio.to_thread(started.wait, WAIT)
        await app.stop(timeout=0.1)
        assert len(finished) == 1, "stop() returned while the handler's thread still ran"
        assert await watcher.items(queue="q") == []  # acked, not given back to run twice
    assert any("cannot be interrupted" in record.getMessage() for record in caplog.records)


async def test_a_route_added_while_listening_gets_the_concurrency_it_asked_for() -> None:
    both = asyncio.Event()
    running = 0

    async def handler(event: Event) -> None:
        nonlocal running
        running += 1
        if running == 2:
            both.set()
        await asyncio.wait_for(both.wait(), WAIT)

    async with Wrkr(MemoryBackend()) as app:
        await app.subscribe("q", "a.first", lambda event: None, concurrency=1)
        await app.listen()
        await app.subscribe("q", "a.second", handler, concurrency=2)
        await app.publish([{"name": "a.second"}, {"name": "a.second"}])
        await asyncio.wait_for(both.wait(), WAIT)  # two at once: two workers


@pytest.mark.parametrize("lease", ["0.2 seconds", "soon", -1])
def test_a_lease_too_short_or_malformed_is_refused_naming_it(lease: object) -> None:
    with pytest.raises(ValueError, match="lease"):
        Wrkr(MemoryBackend(), lease=lease)  # type: ignore[arg-type]


def test_a_lease_too_short_is_an_invalid_config() -> None:
    with pytest.raises(InvalidConfig, match=r"invalid lease '0\.2 seconds'"):
        Wrkr(MemoryBackend(), lease="0.2 seconds")


async def test_stop_returns_within_about_its_timeout_while_the_backend_keeps_failing() -> None:
    from wrkr import BackendUnavailable
    from wrkr.backend import Claim, Delivery
    from wrkr_memory import MemoryReceipt, MemoryStore

    class FailingStore(MemoryStore):
        """A store whose server is down for claims (publishing still works)."""

        def claim_nowait(self, claim: Claim) -> list[Delivery[MemoryReceipt]]:
            raise BackendUnavailable("the server is down")

    class Outage(Observer):
        def __init__(self) -> None:
            self.seen = asyncio.Event()

        def backend_unavailable(self, where: str, error: BaseException) -> None:
            self.seen.set()

    outage = Outage()
    app = Wrkr(MemoryBackend(store=FailingStore()))
    app.observe(outage)
    await app.start()
    await app.subscribe("q", "a.b", lambda event: None)
    await app.listen()
    await app.publish({"name": "a.b"})
    await asyncio.wait_for(outage.seen.wait(), WAIT)  # in its retry pause after a failure
    began = time.monotonic()
    await app.stop(timeout=1.0)
    assert time.monotonic() - began < 3.0
