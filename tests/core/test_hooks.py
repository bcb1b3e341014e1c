"""Observers see every publish, handler start and settlement, and cannot break an app."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import pytest

from wrkr import Event, Fail, Handled, InvalidConfig, Observer, Outcome, Retry, Wrkr
from wrkr.backend import Message
from wrkr_memory import ManualClock, MemoryBackend

WAIT = 5.0


class Log(Observer):
    """Keeps every report and lets a test await the next settlement."""

    def __init__(self) -> None:
        self.published_ids: list[list[str]] = []
        self.started_ids: list[str | None] = []
        self.reports: asyncio.Queue[Handled] = asyncio.Queue()

    def published(self, messages: Sequence[Message], ids: Sequence[str]) -> None:
        self.published_ids.append(list(ids))

    def started(self, event: Event) -> None:
        self.started_ids.append(event.id)

    def handled(self, report: Handled) -> None:
        self.reports.put_nowait(report)

    async def next(self) -> Handled:
        async with asyncio.timeout(WAIT):
            return await self.reports.get()


async def test_published_reports_the_ids_a_publish_created() -> None:
    log = Log()
    async with Wrkr(MemoryBackend()) as app:
        app.observe(log)
        await app.subscribe("q1", "a.b", lambda event: None)
        await app.subscribe("q2", "a.b", lambda event: None)
        ids = await app.publish({"name": "a.b"})
    assert log.published_ids == [ids]
    assert len(ids) == 2


async def test_a_returning_handler_is_reported_acked_with_its_start_and_duration() -> None:
    log, clock = Log(), ManualClock()
    async with Wrkr(MemoryBackend(clock=clock)) as app:
        app.observe(log)

        async def handler(event: Event) -> None:
            await asyncio.sleep(0.05)

        await app.subscribe("q", "a.b", handler)
        [item_id] = await app.publish({"name": "a.b", "when": "1 minute"})
        await app.listen()
        clock.advance(timedelta(minutes=1, seconds=3))
        report = await log.next()
    assert (report.event.id, report.outcome, report.error) == (item_id, Outcome.ACKED, None)
    assert log.started_ids == [item_id]
    assert report.lateness == pytest.approx(3.0)
    assert report.duration >= 0.04


async def test_raising_handlers_are_reported_retried_then_failed() -> None:
    log = Log()
    async with Wrkr(MemoryBackend(), retry=Retry(2, ["0.01 seconds"])) as app:
        app.observe(log)

        async def handler(event: Event) -> None:
            raise KeyError("email")

        await app.subscribe("q", "a.b", handler)
        await app.publish({"name": "a.b"})
        await app.listen()
        first, second = await log.next(), await log.next()
    assert [first.outcome, second.outcome] == [Outcome.RETRIED, Outcome.FAILED]
    assert isinstance(second.error, KeyError)


async def test_fail_is_reported_failed_with_the_fail() -> None:
    log = Log()
    async with Wrkr(MemoryBackend()) as app:
        app.observe(log)

        async def handler(event: Event) -> None:
            raise Fail("bad address")

        await app.subscribe("q", "a.b", handler)
        await app.publish({"name": "a.b"})
        await app.listen()
        report = await log.next()
    assert report.outcome is Outcome.FAILED
    assert isinstance(report.error, Fail)


async def test_a_handler_cut_short_by_stop_is_reported_released() -> None:
    log, entered = Log(), asyncio.Event()
    app = Wrkr(MemoryBackend())
    await app.start()
    app.observe(log)

    async def handler(event: Event) -> None:
        entered.set()
        await asyncio.Event().wait()

    await app.subscribe("q", "a.b", handler)
    await app.publish({"name": "a.b"})
    await app.listen()
    async with asyncio.timeout(WAIT):
        await entered.wait()
    await app.stop(timeout=0.01)
    assert (await log.next()).outcome is Outcome.RELEASED


async def test_an_observer_that_raises_is_logged_and_the_item_still_acked(
        caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Observer):
        def started(self, event: Event) -> None:
            raise RuntimeError("observer bug")

    log = Log()
    async with Wrkr(MemoryBackend()) as app:
        app.observe(Broken())
        app.observe(log)
        await app.subscribe("q", "a.b", lambda event: None)
        await app.publish({"name": "a.b"})
        await app.listen()
        assert (await log.next()).outcome is Outcome.ACKED
    assert "observer bug" in caplog.text


async def test_unobserve_stops_the_reports() -> None:
    log = Log()
    async with Wrkr(MemoryBackend()) as app:
        app.observe(log)
        app.unobserve(log)
        await app.subscribe("q", "a.b", lambda event: None)
        await app.publish({"name": "a.b"})
    assert log.published_ids == []


def test_observing_with_something_else_is_an_invalid_config() -> None:
    with pytest.raises(InvalidConfig, match=r"expected a wrkr\.Observer"):
        Wrkr().observe(print)  # type: ignore[arg-type]


async def test_a_failed_attempt_keeps_its_traceback_and_is_logged_at_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    def broken(event: Event) -> None:
        raise KeyError("email")

    caplog.set_level(logging.DEBUG, logger="wrkr")
    log = Log()
    async with Wrkr(MemoryBackend(), retry=Retry(attempts=2, backoff=["1 ms"])) as app:
        app.observe(log)
        await app.subscribe("q", "a.b", broken)
        await app.listen()
        [item_id] = await app.publish({"name": "a.b"})
        assert (await log.next()).outcome is Outcome.RETRIED
        assert (await log.next()).outcome is Outcome.FAILED
        event = await app.get(item_id)
        await app.publish({"name": "nobody.listens"})
    [first, _last] = event.errors
    assert first.type == "KeyError"
    assert first.traceback is not None
    assert "in broken" in first.traceback
    assert 'raise KeyError("email")' in first.traceback
    retried = [r for r in caplog.records if "attempt 1 failed" in r.getMessage()]
    assert retried
    assert retried[0].levelname == "WARNING"
    assert retried[0].exc_info
    assert "KeyError" in retried[0].getMessage()
    failed = [r for r in caplog.records if "failed for good" in r.getMessage()]
    assert failed
    assert failed[0].exc_info
    assert any(r.levelname == "DEBUG" and "nobody.listens" in r.getMessage()
               for r in caplog.records)
