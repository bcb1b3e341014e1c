"""Rates read from text, and exclusive / rate / limiter in virtual time on memory."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from wrkr import Capability, Event, InvalidConfig, InvalidWhen, NotSupported, Wrkr
from wrkr._rates import Rate, parse_rate
from wrkr.testing import harness
from wrkr_memory import ManualClock, MemoryBackend, MemoryStore


@pytest.mark.parametrize(("text", "limit", "seconds"), [
    ("30/s", 30, 1), ("1000/min", 1000, 60), ("5/h", 5, 3600), ("2 per second", 2, 1),
    ("7 per minute", 7, 60), ("3 per hour", 3, 3600), ("10/S", 10, 1), (" 4 / min ", 4, 60),
])
def test_rate_is_read_from_text(text: str, limit: int, seconds: int) -> None:
    assert parse_rate(text) == Rate(limit, timedelta(seconds=seconds))


@pytest.mark.parametrize("bad", ["0/s", "x", "30/d", "30", 30, None, "-1/s", "30 per day"])
def test_bad_rate_raises_invalid_config_quoting_it(bad: object) -> None:
    with pytest.raises(InvalidConfig, match=repr(bad).replace("(", r"\(")):
        parse_rate(bad)


class CountingStore(MemoryStore):
    """A memory store that counts claims (to show a held-back queue does not spin)."""

    claims = 0

    def claim_nowait(self, claim):  # type: ignore[no-untyped-def]
        self.claims += 1
        return super().claim_nowait(claim)


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_rate_refills_by_a_manual_clock_and_held_back_queue_claims_no_more() -> None:
    clock = ManualClock()
    store = CountingStore(clock)
    app, started = Wrkr(MemoryBackend(store)), []

    async def handle(event: Event) -> None:
        started.append(clock.now())

    async with app:
        await app.subscribe("q", "e", handle, concurrency=5, rate="2/s")
        await app.publish([{"name": "e"} for _ in range(6)])
        await app.listen()
        await _settle()
        assert len(started) == 2
        claims = store.claims
        await app.publish([{"name": "e"} for _ in range(50)])  # each publish rings
        await _settle()
        assert (len(started), store.claims) == (2, claims), "held back: no claim per publish"
        clock.advance(1)
        await _settle()
        assert len(started) == 4
        clock.advance(timedelta(seconds=1))
        await _settle()
        assert len(started) == 6


async def test_limiter_refills_by_a_manual_clock() -> None:
    clock = ManualClock()
    app = Wrkr(MemoryBackend(clock=clock))
    async with app:
        limiter = app.limiter("api", "3/min")
        for _ in range(3):
            await limiter.acquire()
        waiting = asyncio.create_task(limiter.acquire())
        await _settle()
        assert not waiting.done()
        clock.advance(59)
        await _settle()
        assert not waiting.done()
        clock.advance(1)
        async with asyncio.timeout(1):
            await waiting


async def test_limiter_margin_widens_its_window_for_limits_counted_on_arrival() -> None:
    clock = ManualClock()
    app = Wrkr(MemoryBackend(clock=clock))
    async with app:
        limiter = app.limiter("api", "2/s", margin="0.25 seconds")
        assert "margin=datetime.timedelta(microseconds=250000)" in repr(limiter)
        for _ in range(2):
            await limiter.acquire()
        waiting = asyncio.create_task(limiter.acquire())
        clock.advance(1)
        await _settle()
        assert not waiting.done(), "the window is 1.25 s long"
        clock.advance(0.25)
        async with asyncio.timeout(1):
            await waiting
        with pytest.raises(InvalidWhen, match="invalid margin 'soon'"):
            app.limiter("api", "2/s", margin="soon")


async def test_limiter_made_at_import_follows_the_app_onto_the_harness_backend() -> None:
    app = Wrkr()
    limiter = app.limiter("api", "1/min")  # before the harness swaps the backend
    async with harness(app) as h:
        await limiter.acquire()
        waiting = asyncio.create_task(limiter.acquire())
        await _settle()
        assert not waiting.done(), "counted in the harness's backend, by its clock"
        h.clock.advance(60)
        async with asyncio.timeout(1):
            await waiting


async def test_queue_options_must_agree_within_one_app() -> None:
    app = Wrkr()
    app.on("e", queue="q", exclusive=True)(lambda event: None)
    with pytest.raises(InvalidConfig, match="exclusive=True"):
        app.on("f", queue="q")(lambda event: None)
    with pytest.raises(InvalidConfig, match="invalid exclusive"):
        app.on("g", queue="r", exclusive="yes")(lambda event: None)  # type: ignore[arg-type]


class PlainMemoryBackend(MemoryBackend):
    """A backend without EXCLUSIVE and RATE, as RabbitMQ is today."""

    capabilities = MemoryBackend.capabilities - {Capability.EXCLUSIVE, Capability.RATE}


async def test_exclusive_and_rate_raise_not_supported_naming_the_capability() -> None:
    async with Wrkr(PlainMemoryBackend()) as app:
        with pytest.raises(NotSupported, match="'exclusive'"):
            await app.subscribe("q", "e", lambda event: None, exclusive=True)
        with pytest.raises(NotSupported, match="'rate'"):
            await app.subscribe("q", "e", lambda event: None, rate="30/s")
        with pytest.raises(NotSupported, match="'rate'"):
            app.limiter("etsy", "30/s")
        await app.subscribe("q", "e", lambda event: None)  # the defaults need neither
