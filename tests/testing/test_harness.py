"""`wrkr.testing.harness`: an app's own handlers, drained on memory and a hand-moved clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

import examples.welcome_email as welcome
from wrkr import Event, Fail, Outcome, Retry, Wrkr, WrkrError
from wrkr.testing import DrainLimitReached, DrainTimeout, harness

SIGN_UP = {"name": "ourapp.user.added", "tid": "42",
           "payload": {"email": "ada@example.com", "plan": "pro"}}


@pytest.fixture
def follow_up_in_three_days(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(welcome, "follow_up_in", "3 days")


@pytest.mark.usefixtures("follow_up_in_three_days")
async def test_drain_handles_ready_items_and_what_handlers_publish_but_not_later_ones() -> None:
    async with harness(welcome.app) as h:
        start = h.clock.now()
        await welcome.app.publish(SIGN_UP)
        handled = await h.drain()
        assert sorted(e.name for e in handled) == [
            "ourapp.cst.user.sentWelcomeEmail", "ourapp.user.added"]
        assert handled[0].name == "ourapp.user.added"
        assert h.clock.now() == start
        [scheduled] = await welcome.app.items(state="scheduled")
        assert scheduled.name == "ourapp.cst.user.welcome.followup"


@pytest.mark.usefixtures("follow_up_in_three_days")
async def test_follow_up_due_in_three_days_is_handled_at_its_time_by_drain_until() -> None:
    async with harness(welcome.app) as h:
        start = h.clock.now()
        await welcome.app.publish(SIGN_UP)
        await h.drain()
        assert await h.drain(until="2 days") == []
        [follow_up] = await h.drain(until="2 days")
        assert follow_up.name == "ourapp.cst.user.welcome.followup"
        assert follow_up.payload == SIGN_UP["payload"]
        report = h.reports[-1]
        assert report.outcome is Outcome.ACKED
        assert report.started == start + timedelta(days=3)  # at its due time, not later
        assert h.clock.now() == start + timedelta(days=4)  # drain(until=) moves to its end
        assert [e.name for e in h.handled] == [
            "ourapp.user.added", "ourapp.cst.user.sentWelcomeEmail",
            "ourapp.cst.user.welcome.followup"]
        assert h.failed == []
        assert await welcome.app.items() == []


async def test_items_due_at_different_times_are_handled_in_due_order() -> None:
    app = _app()
    seen: list[tuple[str | None, datetime]] = []

    @app.on("shop.remind", queue="reminders")
    async def remind(event: Event) -> None:
        seen.append((event.tid, app.backend.now()))

    async with harness(app) as h:
        start = h.clock.now()
        await app.publish([{"name": "shop.remind", "tid": tid, "when": when}
                           for tid, when in [("c", "5 days"), ("a", "1 hour"), ("b", "2 days")]])
        handled = await h.drain(until="1 week")
        assert [e.tid for e in handled] == ["a", "b", "c"]
        assert seen == [("a", start + timedelta(hours=1)), ("b", start + timedelta(days=2)),
                        ("c", start + timedelta(days=5))]


async def test_retries_with_backoff_run_within_drain_until() -> None:
    app = _app()
    calls: list[int] = []

    @app.on("shop.charge", queue="billing", retry=Retry(5, ["10 minutes", "1 hour"]))
    async def charge(event: Event) -> None:
        calls.append(event.attempts)
        if event.attempts < 3:
            raise ConnectionError("payment service down")

    async with harness(app) as h:
        await app.publish({"name": "shop.charge", "tid": "7"})
        await h.drain()
        assert calls == [1]
        [waiting] = await app.items(state="scheduled")
        assert waiting.errors[0].type == "ConnectionError"
        handled = await h.drain(until="3 hours")
        assert [e.attempts for e in handled] == [2, 3]
        assert [r.outcome for r in h.reports] == [Outcome.RETRIED, Outcome.RETRIED,
                                                  Outcome.ACKED]
        assert h.failed == []


async def test_items_parked_as_failed_are_listed() -> None:
    app = _app()

    @app.on("shop.refund", queue="billing")
    async def refund(event: Event) -> None:
        raise Fail("no such order")

    @app.on("shop.ship", queue="warehouse", retry=Retry(2, ["1 minute"]))
    async def ship(event: Event) -> None:
        raise RuntimeError("carrier down")

    async with harness(app) as h:
        await app.publish([{"name": "shop.refund", "tid": "1"}, {"name": "shop.ship", "tid": "2"}])
        await h.drain(until="1 hour")
        assert sorted((e.name, e.attempts) for e in h.failed) == [
            ("shop.refund", 1), ("shop.ship", 2)]
        failed = await app.items(state="failed")
        assert {e.name for e in failed} == {"shop.refund", "shop.ship"}


def _ticking_app() -> Wrkr:
    """An app whose handler publishes the event it handles: it never runs dry."""
    app = _app()

    @app.on("loop.tick", queue="loop")
    async def tick(event: Event) -> None:
        await app.publish({"name": "loop.tick"})

    return app


async def test_a_handler_that_publishes_forever_stops_drain_with_a_clear_error() -> None:
    app = _ticking_app()
    async with harness(app) as h:
        await app.publish({"name": "loop.tick"})
        with pytest.raises(DrainLimitReached, match=r"max_items.*'loop.tick'") as caught:
            await h.drain(max_items=200)
        assert isinstance(caught.value, WrkrError)
        assert 200 <= len(h.handled) < 300


async def test_the_default_bound_is_ten_thousand_items() -> None:
    app = _ticking_app()
    async with harness(app) as h:
        await app.publish({"name": "loop.tick"})
        with pytest.raises(DrainLimitReached, match="10000 items"):
            await h.drain()
        assert 10_000 <= len(h.handled) < 10_100


async def test_a_handler_that_never_settles_makes_drain_time_out_naming_it() -> None:
    app = _app()
    never = asyncio.Event()

    @app.on("shop.hang", queue="stuck")
    async def hang(event: Event) -> None:
        await never.wait()

    async with harness(app) as h:
        await app.publish({"name": "shop.hang"})
        with pytest.raises(DrainTimeout, match=r"'shop\.hang' on 'stuck'"):
            await h.drain(timeout=0.2)
        never.set()  # lets the app stop at once on exit


async def test_drain_returns_what_was_handled_since_the_last_drain() -> None:
    app = _app()

    @app.on("shop.ping", queue="pings")
    async def ping(event: Event) -> None:
        pass

    async with harness(app) as h:
        await app.publish({"name": "shop.ping", "tid": "1"})
        assert [e.tid for e in await h.drain()] == ["1"]
        await app.publish({"name": "shop.ping", "tid": "2"})
        assert [e.tid for e in await h.drain()] == ["2"]
        assert await h.drain() == []
        assert [e.tid for e in h.handled] == ["1", "2"]


async def test_the_clock_can_start_at_a_chosen_moment() -> None:
    start = datetime(2030, 1, 31, 9, tzinfo=UTC)
    async with harness(_app(), start=start) as h:
        assert h.clock.now() == start
        await h.drain(until="1 month")
        assert h.clock.now() == datetime(2030, 2, 28, 9, tzinfo=UTC)


def _app() -> Wrkr:
    return Wrkr(name="shop")
