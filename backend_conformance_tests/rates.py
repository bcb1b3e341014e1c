"""`rate="N/s"` on a queue and `app.limiter(name, rate)`: sliding windows in the backend.

At most N starts in any window of the period's length, across every process sharing the
backend; up to N at once; an item held back is not an attempt.

What the backend counts is the stamp it gives each start, by its clock, inside the call
that grants it (`acquire_slot`, or a rated claim of a `Store`). A handler or a caller
sees its start later, by a round trip and whatever the event loop was doing, and that
lag varies: read there, honest starts can crowd into one window. So the tests bracket
each grant by the backend's clock (`Grants`) and count only starts whose brackets all
fit in one span shorter than the period: those stamps surely share a window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import pytest

from wrkr import Event, InvalidConfig
from wrkr.backend import Backend, Capability, Claim, Delivery, StoreBackend, Window

from ._helpers import WAIT, AppFactory, BackendFactory, Names, Recorder, SuiteBase, needs

JITTER = 0.05  # seconds a handler may see its start after the store counted it (no Store)
SECOND = timedelta(seconds=1)


class Grant(NamedTuple):
    """Starts the backend counted at one stamp, somewhere in [before, after] (its clock)."""

    before: datetime
    after: datetime
    starts: int


def most_surely_in_one_window(grants: Sequence[Grant], period: timedelta) -> int:
    """Return the most starts whose grants all lie in one span shorter than `period`."""
    return max((sum(other.starts for other in grants
                    if other.before >= first.before and other.after - first.before < period)
                for first in grants), default=0)


def spans_at_least(grants: Sequence[Grant], period: timedelta) -> bool:
    """Tell whether the grants' stamps can lie `period` apart (the window makes them)."""
    return max(grant.after for grant in grants) - min(grant.before for grant in grants) >= period


class Grants:
    """Brackets, by the backend's clock, each call of a backend that granted starts."""

    def __init__(self) -> None:
        self.grants: list[Grant] = []
        self._stores: list[object] = []  # "processes" of the memory backend share one

    def __len__(self) -> int:
        return sum(grant.starts for grant in self.grants)

    def watch_limiter(self, backend: Backend) -> None:
        """Bracket every `acquire_slot` of `backend` that took a start."""
        acquire, clock = backend.acquire_slot, backend.clock

        async def timed(window: Window) -> datetime | None:
            before = clock.now()
            slot = await acquire(window)
            if slot is None:
                self.grants.append(Grant(before, clock.now(), 1))
            return slot

        backend.acquire_slot = timed  # type: ignore[method-assign]

    def watch_claims(self, backend: Backend) -> bool:
        """Bracket every claim of `backend`'s store that took items; False if no `Store`."""
        if not isinstance(backend, StoreBackend):
            return False
        store: Any = backend.store
        if any(store is seen for seen in self._stores):
            return True
        self._stores.append(store)
        claim, claim_nowait, clock = store.claim, store.claim_nowait, backend.clock

        async def timed(request: Claim) -> list[Delivery[Any]]:
            before = min(request.now, clock.now())  # a store may stamp at the claim's `now`
            batch: list[Delivery[Any]] = await claim(request)
            self._claimed(before, batch, clock.now())
            return batch

        def timed_nowait(request: Claim) -> list[Delivery[Any]]:
            before = min(request.now, clock.now())
            batch: list[Delivery[Any]] = claim_nowait(request)
            self._claimed(before, batch, clock.now())
            return batch

        store.claim, store.claim_nowait = timed, timed_nowait
        return True

    def _claimed(self, before: datetime, batch: list[Delivery[Any]], after: datetime) -> None:
        if batch:
            self.grants.append(Grant(before, after, len(batch)))


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

    def grants(self, watched: Grants, claimed: bool) -> list[Grant]:
        """Return the watched claims, or (no `Store` to watch) the handlers' starts."""
        if claimed:
            return watched.grants
        ends = [datetime.fromtimestamp(start) for start in self.starts]
        return [Grant(end - JITTER * SECOND, end, 1) for end in ends]


class RateSuite(SuiteBase):
    """`subscribe(..., rate=...)`: at most N handler starts per window, all workers together."""

    @needs(Capability.RATE)
    async def test_rated_queue_starts_at_most_n_in_any_window_and_counts_no_attempt(
            self, app: AppFactory, names: Names) -> None:
        wrkr, clock, watched = await app(), StartClock(), Grants()
        claimed = watched.watch_claims(wrkr.backend)
        await wrkr.subscribe(names.queue("a"), names.event("x"), clock.handle,
                             concurrency=12, rate="5/s")
        await wrkr.publish([{"name": names.event("x")} for _ in range(12)])
        await wrkr.listen()
        await clock.wait(12)
        grants = clock.grants(watched, claimed)
        assert most_surely_in_one_window(grants, SECOND) <= 5
        assert spans_at_least(grants, 2 * SECOND)  # 5, 5, then 2
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
        clock, watched = StartClock(), Grants()
        apps = [await app(backend=backend_factory()) for _ in range(2)]
        claimed = all([watched.watch_claims(each.backend) for each in apps])
        for each in apps:
            await each.subscribe(names.queue("a"), names.event("x"), clock.handle,
                                 concurrency=6, rate="4/s")
        await apps[0].publish([{"name": names.event("x")} for _ in range(10)])
        for each in apps:
            await each.listen()
        await clock.wait(10)
        assert most_surely_in_one_window(clock.grants(watched, claimed), SECOND) <= 4

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
        apps, watched = [await app(backend=backend_factory()) for _ in range(2)], Grants()
        for each in apps:
            watched.watch_limiter(each.backend)
        limiters = [each.limiter(names.prefix, "4/s") for each in apps]
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*(limiters[index % 2].acquire() for index in range(10)))
        assert len(watched) == 10
        assert most_surely_in_one_window(watched.grants, SECOND) <= 4
        assert spans_at_least(watched.grants, 2 * SECOND)  # 4, 4, then 2

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
