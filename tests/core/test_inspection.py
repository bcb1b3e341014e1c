"""The app's own inspection and clean-up: counts, subscriptions, purge, paging (memory)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from wrkr import (
    ErrorRecord,
    Event,
    Fail,
    Handled,
    InvalidEvent,
    InvalidWhen,
    NotSupported,
    Observer,
    Outcome,
    State,
    Wrkr,
)
from wrkr_memory import ManualClock, MemoryBackend

WAIT = 10.0


class Settled(Observer):
    """Count the deliveries settled with each outcome, so a test can await them."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.changed = asyncio.Event()

    def handled(self, report: Handled) -> None:
        self.outcomes.append(report.outcome)
        self.changed.set()

    async def wait_for(self, outcome: Outcome, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while self.outcomes.count(outcome) < count:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def app(clock: ManualClock) -> AsyncIterator[Wrkr]:
    async with Wrkr(MemoryBackend(clock=clock), archive="keep") as started:
        yield started


async def settle(app: Wrkr, queue: str, count: int, *, fail: bool) -> None:
    """Publish `count` events to `queue` and let a handler ack or fail each."""

    def handler(event: Event) -> None:
        if fail:
            raise Fail("refused")

    settled = Settled()
    app.observe(settled)
    await app.subscribe(queue, f"{queue}.job", handler)
    await app.listen()
    await app.publish([{"name": f"{queue}.job", "tid": str(n)} for n in range(count)])
    await settled.wait_for(Outcome.FAILED if fail else Outcome.ACKED, count)
    app.unobserve(settled)


async def test_counts_list_every_subscribed_queue_even_empty(app: Wrkr) -> None:
    await app.subscribe("test.empty", "test.nothing", lambda event: None)
    await app.subscribe("test.busy", "test.busy.job", lambda event: None)
    await app.publish({"name": "test.busy.job", "when": "1 hour"})
    zeros = dict.fromkeys(State, 0)
    assert await app.counts() == {"test.busy": {**zeros, State.SCHEDULED: 1},
                                  "test.empty": zeros}


async def test_subscriptions_without_a_name_are_every_queue_and_pattern(app: Wrkr) -> None:
    await app.subscribe("test.b", "test.#", lambda event: None)
    await app.subscribe("test.a", "test.x.*", lambda event: None)
    assert await app.subscriptions() == [("test.a", "test.x.*"), ("test.b", "test.#")]
    assert await app.subscriptions("test.x.y") == ["test.a", "test.b"]


async def test_purge_deletes_failed_items_and_says_how_many(app: Wrkr) -> None:
    await settle(app, "test.failing", 3, fail=True)
    assert await app.purge(queue="test.other") == 0
    assert await app.purge(queue="test.failing") == 3
    assert await app.items(state="failed") == []


async def test_purge_done_leaves_failed_items(app: Wrkr) -> None:
    await settle(app, "test.fine", 2, fail=False)
    await settle(app, "test.failing", 1, fail=True)
    assert await app.purge(state="done") == 2
    assert [event.queue for event in await app.items(state="failed")] == ["test.failing"]


async def test_purge_older_than_keeps_recent_items(app: Wrkr, clock: ManualClock) -> None:
    await settle(app, "test.old", 1, fail=True)
    clock.advance(timedelta(days=2))
    await settle(app, "test.new", 1, fail=True)
    assert await app.purge(older_than="1d") == 1
    assert [event.queue for event in await app.items(state="failed")] == ["test.new"]


@pytest.mark.parametrize("state", ["ready", "scheduled", "lost"])
async def test_purge_only_takes_failed_or_done(app: Wrkr, state: str) -> None:
    with pytest.raises(InvalidEvent, match=repr(state)):
        await app.purge(state=state)


async def test_purge_older_than_must_be_a_duration(app: Wrkr) -> None:
    with pytest.raises(InvalidWhen, match="invalid older_than 'ages'"):
        await app.purge(older_than="ages")


async def test_items_page_with_limit_and_offset(app: Wrkr) -> None:
    await app.subscribe("test.q", "test.job", lambda event: None)
    await app.publish([{"name": "test.job", "tid": str(n), "when": f"{n + 1}m"}
                       for n in range(5)])
    pages = [[event.tid for event in await app.items(limit=2, offset=offset)]
             for offset in (0, 2, 4)]
    assert pages == [["0", "1"], ["2", "3"], ["4"]]


@pytest.mark.parametrize("offset", [-1, 1.5, True, "2"])
async def test_items_offset_must_be_a_whole_number(app: Wrkr, offset: object) -> None:
    with pytest.raises(InvalidEvent, match="invalid offset"):
        await app.items(offset=offset)  # type: ignore[arg-type]


class _NoQueryBackend(MemoryBackend):
    capabilities = frozenset()


async def test_counts_need_a_backend_that_can_query() -> None:
    async with Wrkr(_NoQueryBackend()) as app:
        with pytest.raises(NotSupported, match=r"_NoQueryBackend does not support 'query', "
                                               r"needed for counts\(\)"):
            await app.counts()


def test_an_error_record_shows_its_traceback_under_it() -> None:
    from datetime import UTC, datetime

    from wrkr import ErrorRecord, Event
    from wrkr._cli_format import item_text

    trace = ('Traceback (most recent call last):\n  File "shop.py", line 3, in send\n'
             "KeyError: 'email'\n")
    event = Event(name="a.b", errors=(ErrorRecord(datetime(2026, 1, 1, tzinfo=UTC), 1,
                                                  "KeyError", "'email'", trace),))
    lines = item_text(event)
    at = lines.index("  attempt 1 at 2026-01-01T00:00:00Z: KeyError: 'email'")
    assert lines[at + 1:] == ["      Traceback (most recent call last):",
                              '        File "shop.py", line 3, in send',
                              "      KeyError: 'email'"]


async def test_the_store_backend_checks_the_purge_state_once_for_every_store(app: Wrkr) -> None:
    # callers of the Backend contract (not only Wrkr.purge) get the same clear error
    with pytest.raises(InvalidEvent, match="'ready' for purge"):
        await app.backend.purge(None, State.READY, None)
def test_an_unreadable_error_history_is_kept_as_records_saying_so() -> None:
    good = ErrorRecord(datetime(2026, 1, 1, tzinfo=UTC), 1, "ValueError", "boom")
    assert ErrorRecord.history([good.to_dict()]) == (good,)
    for stored in ("not a list", {"at": "x"}, [good.to_dict(), 42]):
        records = ErrorRecord.history(stored)
        assert records[-1].type == "UnreadableError"
        assert "unreadable error record" in records[-1].message
    assert ErrorRecord.history([good.to_dict(), 42])[0] == good
