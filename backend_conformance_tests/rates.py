"""`rate="N/s"` on a queue and `app.limiter(name, rate)`: sliding windows in the backend.

At most N starts in any window of the period's length, across every process sharing the
backend; up to N at once; an item held back is not an attempt. Start times are read by
the handlers, a little after the store counted them, so windows are checked a few
milliseconds narrower than the period (`JITTER`).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from wrkr import Event, InvalidConfig
from wrkr.backend import Capability

from ._helpers import WAIT, AppFactory, BackendFactory, Names, Recorder, SuiteBase, needs

JITTER = 0.05  # seconds between the store counting a start and a handler seeing it


def most_in_any_window(starts: list[float], seconds: float) -> int:
    """Return the most starts in any window of `seconds` (less `JITTER`)."""
    ordered = sorted(starts)
    span = seconds - JITTER
    return max((sum(1 for other in ordered[index:] if other - start < span)
                for index, start in enumerate(ordered)), default=0)


class StartClock:
    """A handler that records when each item started and with which attempt."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.attempts: list[int] = []
        self._arrived = asyncio.Event()

    async def handle(self, event: Event) -> None:
        """Record the start."""
        self.starts.append(time.monotonic())
        self.attempts.append(event.attempts)
        self._arrived.set()

    async def wait(self, count: int) -> None:
        """Wait until `count` items started, failing after `WAIT` seconds."""
        try:
            async with asyncio.timeout(WAIT):
                while len(self.starts) < count:
                    self._arrived.clear()
                    await self._arrived.wait()
        except TimeoutError:
            raise AssertionError(f"timed out: {len(self.starts)} of {count} started") from None


class RateSuite(SuiteBase):
    """`subscribe(..., rate=...)`: at most N handler starts per window, all workers together."""

    @needs(Capability.RATE)
    async def test_rated_queue_starts_at_most_n_in_any_window_and_counts_no_attempt(
            self, app: AppFactory, names: Names) -> None:
        wrkr, clock = await app(), StartClock()
        await wrkr.subscribe(names.queue("a"), names.event("x"), clock.handle,
                             concurrency=12, rate="5/s")
        await wrkr.publish([{"name": names.event("x")} for _ in range(12)])
        await wrkr.listen()
        await clock.wait(12)
        assert most_in_any_window(clock.starts, 1.0) <= 5
        assert max(clock.starts) - min(clock.starts) >= 2.0 - JITTER  # 5, 5, then 2
        assert set(clock.attempts) == {1}, "waiting for the rate is not an attempt"

    @needs(Capability.RATE)
    async def test_rated_queue_starts_up_to_n_at_once(
            self, app: AppFactory, names: Names) -> None:
        wrkr, recorder = await app(), Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.hold,
                             concurrency=6, rate="5/min")
        await wrkr.publish([{"name": names.event("x")} for _ in range(6)])
        await wrkr.listen()
        try:
            await recorder.take(5, "five starts at once")
            await recorder.nothing_more(0.3)
        finally:
            recorder.release()

    @needs(Capability.RATE)
    async def test_two_processes_share_one_queues_rate(
            self, app: AppFactory, names: Names, backend_factory: BackendFactory) -> None:
        clock = StartClock()
        apps = [await app(backend=backend_factory()) for _ in range(2)]
        for each in apps:
            await each.subscribe(names.queue("a"), names.event("x"), clock.handle,
                                 concurrency=6, rate="4/s")
        await apps[0].publish([{"name": names.event("x")} for _ in range(10)])
        for each in apps:
            await each.listen()
        await clock.wait(10)
        assert most_in_any_window(clock.starts, 1.0) <= 4

    @needs(Capability.RATE)
    async def test_queue_keeps_its_rate_and_refuses_another(
            self, app: AppFactory, names: Names, backend_factory: BackendFactory) -> None:
        queue, recorder = names.queue("a"), Recorder()
        first = await app(backend=backend_factory())
        await first.subscribe(queue, names.event("x"), recorder.handle, rate="30/s")
        other = await app(backend=backend_factory())
        for wrong in ({}, {"rate": "31/s"}, {"rate": "30/s", "exclusive": True}):
            with pytest.raises(InvalidConfig, match="'30/s'"):
                await other.subscribe(queue, names.event("y"), recorder.handle, **wrong)
        await other.subscribe(queue, names.event("y"), recorder.handle, rate="30 per second")


class LimiterSuite(SuiteBase):
    """`app.limiter(name, rate)`: the same window for code in handlers, shared by processes."""

    @needs(Capability.RATE)
    async def test_limiter_allows_n_at_once_then_waits_for_the_window(
            self, app: AppFactory, names: Names) -> None:
        limiter = (await app()).limiter(names.prefix, "5/s")
        began = time.monotonic()
        for _ in range(5):
            await limiter.acquire()
        assert time.monotonic() - began < 0.5
        async with limiter:
            assert time.monotonic() - began >= 1.0 - JITTER

    @needs(Capability.RATE)
    async def test_limiter_is_shared_by_two_processes(
            self, app: AppFactory, names: Names, backend_factory: BackendFactory) -> None:
        limiters = [(await app(backend=backend_factory())).limiter(names.prefix, "4/s")
                    for _ in range(2)]
        starts: list[float] = []

        async def use(index: int) -> None:
            await limiters[index % 2].acquire()
            starts.append(time.monotonic())

        async with asyncio.timeout(WAIT):
            await asyncio.gather(*(use(index) for index in range(10)))
        assert most_in_any_window(starts, 1.0) <= 4
        assert max(starts) - min(starts) >= 2.0 - JITTER  # 4, 4, then 2

    @needs(Capability.RATE)
    async def test_limiter_serves_one_processes_waiters_in_arrival_order(
            self, app: AppFactory, names: Names) -> None:
        limiter = (await app()).limiter(names.prefix, "3/s")
        served: list[int] = []

        async def use(index: int) -> None:
            await limiter.acquire()
            served.append(index)

        tasks = []
        for index in range(7):
            tasks.append(asyncio.create_task(use(index)))
            await asyncio.sleep(0)  # each waiter arrives after the previous one
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*tasks)
        assert served == list(range(7))
