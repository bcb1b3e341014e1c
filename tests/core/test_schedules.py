"""Recurring schedules in the core, on memory and a hand-moved clock: DST, catch-up,
virtual time with and without the harness, updates, bad input, the cron extra."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from wrkr import (
    Capability,
    Event,
    InvalidConfig,
    InvalidEvent,
    InvalidWhen,
    NotStarted,
    NotSupported,
    Schedule,
    Wrkr,
)
from wrkr._blocking import BlockingWrkr
from wrkr.testing import harness
from wrkr_memory import ManualClock, MemoryBackend, MemoryStore

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
WAIT = 5.0
EVENT, QUEUE = "test.schedules.tick", "test.schedules.q"


class Arrivals:
    """A handler recording each event's `when`; `take(n)` awaits n more, bounded."""

    def __init__(self) -> None:
        self.whens: list[datetime] = []
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    async def handle(self, event: Event) -> None:
        assert isinstance(event.when, datetime)
        self.whens.append(event.when)
        self._queue.put_nowait(event)

    async def take(self, count: int) -> list[Event]:
        async with asyncio.timeout(WAIT):
            return [await self._queue.get() for _ in range(count)]

    async def none_pending(self) -> None:
        await asyncio.sleep(0.05)  # proving that nothing more comes
        assert self._queue.empty(), f"unexpected firing at {self._queue.get_nowait().when}"


def local(*parts: int) -> datetime:
    """An Amsterdam wall-clock time, as the aware UTC instant it is."""
    return datetime(*parts, tzinfo=AMSTERDAM).astimezone(UTC)  # type: ignore[misc]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 27, 12, tzinfo=UTC))


@pytest.fixture
async def ticks(clock: ManualClock) -> AsyncIterator[tuple[Wrkr, Arrivals]]:
    app, arrivals = Wrkr(MemoryBackend(clock=clock)), Arrivals()
    app.on(EVENT, queue=QUEUE)(arrivals.handle)
    async with app:
        await app.listen()
        yield app, arrivals


async def _walk(clock: ManualClock, until: datetime, step: timedelta = timedelta(hours=1)) -> None:
    """Move the clock by `step` up to `until`, letting the app fire at each stop."""
    while clock.now() < until:
        clock.advance(min(step, until - clock.now()))
        for _ in range(5):
            await asyncio.sleep(0)


# -- time zones and DST --------------------------------------------------------------------

async def test_daily_nine_amsterdam_fires_at_nine_local_on_both_sides_of_the_spring_change(
        clock: ManualClock, ticks: tuple[Wrkr, Arrivals]) -> None:
    app, arrivals = ticks
    await app.schedule(EVENT, cron="0 9 * * *", tz="Europe/Amsterdam")
    await _walk(clock, datetime(2026, 3, 30, 12, tzinfo=UTC))
    await arrivals.take(3)
    assert arrivals.whens == [local(2026, 3, 28, 9), local(2026, 3, 29, 9), local(2026, 3, 30, 9)]
    assert [w.hour for w in arrivals.whens] == [8, 7, 7]  # UTC: CET, then CEST


async def test_daily_nine_amsterdam_fires_at_nine_local_on_both_sides_of_the_autumn_change(
        ticks: tuple[Wrkr, Arrivals], clock: ManualClock) -> None:
    clock.set(datetime(2026, 10, 24, 0, tzinfo=UTC))
    app, arrivals = ticks
    await app.schedule(EVENT, cron="0 9 * * *", tz="Europe/Amsterdam")
    await _walk(clock, datetime(2026, 10, 26, 12, tzinfo=UTC))
    await arrivals.take(3)
    assert [w.astimezone(AMSTERDAM).hour for w in arrivals.whens] == [9, 9, 9]
    assert [w.hour for w in arrivals.whens] == [7, 8, 8]  # UTC: CEST, then CET


async def test_local_time_that_does_not_exist_fires_once_at_the_first_instant_after_the_gap(
        ticks: tuple[Wrkr, Arrivals], clock: ManualClock) -> None:
    app, arrivals = ticks  # 29 March 2026: 02:00 CET jumps to 03:00 CEST
    await app.schedule(EVENT, cron="30 2 * * *", tz="Europe/Amsterdam")
    await _walk(clock, datetime(2026, 3, 30, 12, tzinfo=UTC), timedelta(minutes=15))
    await arrivals.take(3)
    await arrivals.none_pending()
    assert arrivals.whens == [local(2026, 3, 28, 2, 30), local(2026, 3, 29, 3, 0),
                              local(2026, 3, 30, 2, 30)]


async def test_local_time_that_exists_twice_fires_once_at_its_first_occurrence(
        ticks: tuple[Wrkr, Arrivals], clock: ManualClock) -> None:
    clock.set(datetime(2026, 10, 24, 12, tzinfo=UTC))  # 25 October: 02:00-03:00 twice
    app, arrivals = ticks
    await app.schedule(EVENT, cron="30 2 * * *", tz="Europe/Amsterdam")
    await _walk(clock, datetime(2026, 10, 26, 12, tzinfo=UTC), timedelta(minutes=15))
    await arrivals.take(2)
    await arrivals.none_pending()
    first = datetime(2026, 10, 25, 2, 30, tzinfo=AMSTERDAM)  # fold=0: the CEST one
    assert arrivals.whens == [first.astimezone(UTC), local(2026, 10, 26, 2, 30)]
    assert arrivals.whens[0] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


async def test_every_counts_fixed_intervals_whatever_the_time_zone(
        ticks: tuple[Wrkr, Arrivals], clock: ManualClock) -> None:
    clock.set(datetime(2026, 3, 28, 12, tzinfo=UTC))
    app, arrivals = ticks
    await app.schedule(EVENT, every="1 day", tz="Europe/Amsterdam")
    await _walk(clock, datetime(2026, 3, 30, 12, tzinfo=UTC))
    await arrivals.take(2)
    assert arrivals.whens == [datetime(2026, 3, 29, 12, tzinfo=UTC),
                              datetime(2026, 3, 30, 12, tzinfo=UTC)]


# -- every, and virtual time -----------------------------------------------------------------

async def test_every_fires_first_one_interval_after_creation_never_at_it(
        ticks: tuple[Wrkr, Arrivals], clock: ManualClock) -> None:
    app, arrivals = ticks
    created = clock.now()
    await app.schedule(EVENT, every="15 minutes", tid="global")
    await arrivals.none_pending()
    clock.advance(timedelta(minutes=14, seconds=59))
    await arrivals.none_pending()
    clock.advance(timedelta(seconds=1))
    [event] = await arrivals.take(1)
    assert (event.when, event.tid) == (created + timedelta(minutes=15), "global")


async def test_advancing_the_clock_three_days_fires_a_daily_schedule_three_times_with_all(
        ticks: tuple[Wrkr, Arrivals], clock: ManualClock) -> None:
    app, arrivals = ticks
    await app.schedule(EVENT, cron="0 9 * * *", catch_up="all", payload={"kind": "daily"})
    clock.advance(timedelta(days=3))  # one move: the scheduler wakes at once, fires each
    events = await arrivals.take(3)
    await arrivals.none_pending()
    assert [e.when for e in events] == [datetime(2026, 3, d, 9, tzinfo=UTC) for d in (28, 29, 30)]
    assert {tuple(e.payload.items()) for e in events} == {(("kind", "daily"),)}


@pytest.mark.parametrize(("catch_up", "fired_days"), [("all", [28, 29, 30]), ("latest", [30]),
                                                      ("none", [])])
async def test_one_jump_over_three_firings_is_caught_up_as_told(
        ticks: tuple[Wrkr, Arrivals], clock: ManualClock, catch_up: str,
        fired_days: list[int]) -> None:
    app, arrivals = ticks
    await app.schedule(EVENT, cron="0 9 * * *", catch_up=catch_up)  # type: ignore[arg-type]
    clock.advance(timedelta(days=3))
    await arrivals.take(len(fired_days))
    await arrivals.none_pending()
    assert arrivals.whens == [datetime(2026, 3, d, 9, tzinfo=UTC) for d in fired_days]
    [listed] = await app.schedules()
    assert listed.next == datetime(2026, 3, 31, 9, tzinfo=UTC)


async def test_harness_drain_until_runs_three_days_of_a_daily_schedule() -> None:
    app, arrivals = Wrkr(name="reports"), Arrivals()
    app.on("reports.daily", queue="reports")(arrivals.handle)
    await app.schedule("reports.daily", cron="0 9 * * *", tz="Europe/Amsterdam",
                       payload={"kind": "daily"})
    async with harness(app, start=datetime(2026, 3, 27, 12, tzinfo=UTC)) as h:
        handled = await h.drain(until="3 days")
        assert [e.when for e in handled] == [local(2026, 3, d, 9) for d in (28, 29, 30)]
        assert h.clock.now() == datetime(2026, 3, 30, 12, tzinfo=UTC)
        [listed] = await app.schedules()
        assert listed.last == local(2026, 3, 30, 9)


# -- declared, updated, removed ---------------------------------------------------------------

async def test_schedule_declared_before_start_is_made_durable_at_start(clock: ManualClock) -> None:
    store = MemoryStore(clock)
    app = Wrkr(MemoryBackend(store))
    await app.schedule(EVENT, every="1 hour", tid="7", payload={"a": 1})
    async with app:
        [listed] = await app.schedules()
    assert listed == Schedule(EVENT, None, timedelta(hours=1), "UTC", "7", {"a": 1},
                              clock.now() + timedelta(hours=1), None)
    async with Wrkr(MemoryBackend(store)) as other:  # another process sees it
        assert [s.name for s in await other.schedules()] == [EVENT]


async def test_same_name_again_updates_the_schedule_and_keeps_its_time_if_unchanged(
        ticks: tuple[Wrkr, Arrivals], clock: ManualClock) -> None:
    app, _ = ticks
    await app.schedule(EVENT, every="1 hour", payload={"v": 1})
    [before] = await app.schedules()
    clock.advance(timedelta(minutes=30))
    await app.schedule(EVENT, every="1 hour", payload={"v": 2})
    [after] = await app.schedules()
    assert (after.payload, after.next) == ({"v": 2}, before.next)
    await app.schedule(EVENT, cron="0 * * * *")
    [timed] = await app.schedules()
    assert (timed.cron, timed.every, timed.next) == ("0 * * * *", None,
                                                    datetime(2026, 3, 27, 13, tzinfo=UTC))


async def test_unschedule_removes_and_says_whether_there_was_one(
        ticks: tuple[Wrkr, Arrivals], clock: ManualClock) -> None:
    app, arrivals = ticks
    await app.schedule(EVENT, every="1 hour")
    assert await app.unschedule(EVENT) is True
    assert await app.unschedule(EVENT) is False
    assert await app.schedules() == []
    clock.advance(timedelta(hours=3))
    await arrivals.none_pending()


async def test_unschedule_before_start_drops_the_declaration() -> None:
    app = Wrkr()
    await app.schedule(EVENT, every="1 hour")
    assert await app.unschedule(EVENT) is True
    async with app:
        assert await app.schedules() == []


async def test_schedules_before_start_raises_not_started() -> None:
    with pytest.raises(NotStarted):
        await Wrkr().schedules()


# -- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "error", "names"), [
    ({}, InvalidConfig, "exactly one of cron= and every="),
    ({"cron": "0 9 * * *", "every": "1 hour"}, InvalidConfig, "exactly one"),
    ({"cron": "0 25 * * *"}, InvalidConfig, "'0 25 * * *'"),
    ({"cron": "every day"}, InvalidConfig, "'every day'"),
    ({"every": "soon"}, InvalidWhen, "'soon'"),
    ({"every": "0.5 seconds"}, InvalidConfig, "'0.5 seconds'"),
    ({"every": "1 hour", "tz": "Mars/Olympus"}, InvalidConfig, "'Mars/Olympus'"),
    ({"every": "1 hour", "catch_up": "some"}, InvalidConfig, "'some'"),
    ({"every": "1 hour", "tid": 7}, InvalidEvent, "7"),
    ({"every": "1 hour", "payload": {"x": object()}}, InvalidEvent, "payload"),
])
async def test_bad_schedule_arguments_raise_naming_the_bad_value(
        kwargs: dict[str, object], error: type[Exception], names: str) -> None:
    with pytest.raises(error, match=_literal(names)):
        await Wrkr().schedule(EVENT, **kwargs)  # type: ignore[arg-type]


async def test_bad_schedule_name_raises_invalid_event() -> None:
    with pytest.raises(InvalidEvent, match="'no spaces'"):
        await Wrkr().schedule("no spaces", every="1 hour")


async def test_cron_without_the_extra_names_it_and_every_still_works(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cronsim", None)  # as if not installed
    app = Wrkr()
    with pytest.raises(InvalidConfig, match=_literal('pip install "wrkr[cron]"')):
        await app.schedule(EVENT, cron="0 9 * * *")
    await app.schedule(EVENT, every="1 hour")
    async with app:
        assert [s.every for s in await app.schedules()] == [timedelta(hours=1)]


# -- BlockingWrkr ---------------------------------------------------------------------------

def test_blocking_wrkr_schedules_lists_and_unschedules() -> None:
    with BlockingWrkr(Wrkr()) as events:
        events.schedule(EVENT, every="1 hour", tid="7")
        assert [(s.name, s.tid) for s in events.schedules()] == [(EVENT, "7")]
        assert events.unschedule(EVENT) is True
        assert events.schedules() == []


def _literal(text: str) -> str:
    import re

    return re.escape(text)


class UnscheduledMemoryBackend(MemoryBackend):
    """A backend without SCHEDULES, as RabbitMQ is today."""

    capabilities = MemoryBackend.capabilities - {Capability.SCHEDULES}


async def test_schedule_without_the_capability_raises_not_supported_naming_it() -> None:
    async with Wrkr(UnscheduledMemoryBackend()) as app:
        with pytest.raises(NotSupported, match="'schedules'"):
            await app.schedule("tick", every="1 hour")
