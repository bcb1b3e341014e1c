"""`harness(app)`: run an application's own handlers on a fresh in-memory backend, on a
hand-moved clock, and drain them -- a schedule of days runs in milliseconds.

The harness drives the app's real consumers (retries, timeouts, `Fail`, fan-out all
behave as in production) and watches them through the app's observer hooks: `drain()`
waits for settlements, never for time to pass.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from types import TracebackType
from typing import Self

from wrkr import AlreadyStarted, Event, Handled, Wrkr
from wrkr._when import parse_when
from wrkr.backend import ItemFilter, State
from wrkr.testing._errors import DrainLimitReached, DrainTimeout
from wrkr.testing._recorder import Recorder
from wrkr.testing._swap import (
    SavedApp,
    give_back,
    routed_queues,
    schedules_settled,
    take_over,
)
from wrkr_memory import ManualClock, MemoryBackend

__all__ = ["Harness", "harness"]

Until = datetime | timedelta | float | str | None
MAX_ITEMS = 10_000
DRAIN_TIMEOUT = 60.0  # real seconds a drain waits for handlers that do not settle


def harness(app: Wrkr, *, start: datetime | None = None) -> Harness:
    """Return a harness for `app`, to enter with `async with harness(app) as h:`.

    Args:
        app: the application, as its module built it (started or not).
        start: the moment `h.clock` starts at (aware); the current time by default.
    """
    return Harness(app, start=start)


class Harness:
    """An app taken over for a test: fresh `MemoryBackend`, `ManualClock`, its own routes.

    On entry the app is stopped if it ran, moved onto `backend` (every route declared
    with `@app.on` or `subscribe()` subscribed there), started and listening; on exit
    it is stopped and put back exactly as it was (backend, routes, started, listening).

    Attributes:
        app: the application under test.
        clock: the `ManualClock` every due time is measured by; `drain(until=)` moves it.
        backend: the fresh `MemoryBackend` the app runs on meanwhile.
    """

    def __init__(self, app: Wrkr, *, start: datetime | None = None) -> None:
        self.app = app
        self.clock = ManualClock(start)
        self.backend = MemoryBackend(clock=self.clock)
        self._recorder = Recorder()
        self._saved: SavedApp | None = None
        self._returned = 0  # reports already returned by an earlier drain()

    @property
    def handled(self) -> list[Event]:
        """Return every event handled so far, one per delivery (a retried one per attempt)."""
        return self._recorder.handled_events

    @property
    def failed(self) -> list[Event]:
        """Return the events whose items were parked as failed during the harness."""
        return self._recorder.failed_events

    @property
    def reports(self) -> list[Handled]:
        """Return each delivery's report (outcome, error, duration), as `handled` in order."""
        return list(self._recorder.reports)

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._saved is not None:
            raise AlreadyStarted("this harness is already in use; make a new one per test")
        self._saved = await take_over(self.app, self.backend)
        self.app.observe(self._recorder)
        try:
            await self.app.start()
            await self.app.listen()
        except BaseException:
            await self._restore()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._restore()

    async def _restore(self) -> None:
        saved, self._saved = self._saved, None
        if saved is None:
            return
        try:
            await self.app.stop()
        finally:
            self.app.unobserve(self._recorder)
            await give_back(self.app, saved)

    # -- draining ----------------------------------------------------------------------

    async def drain(
        self, until: Until = None, *, max_items: int = MAX_ITEMS,
        timeout: float | None = DRAIN_TIMEOUT,
    ) -> list[Event]:
        """Handle every ready item, and whatever the handlers publish, until none is ready.

        With `until` ("7 days", a timedelta, seconds, an aware datetime), also move
        `clock` to each item due by then, in due order, handling each at its time
        (retries included: they are scheduled items), and to each firing of a
        recurring schedule (`app.schedule`), then to `until` itself.

        Args:
            until: how far to move the clock (a `when` value); None: do not move it.
            max_items: the most deliveries this call handles before giving up.
            timeout: real seconds to wait for handlers that do not settle (None: forever).

        Returns:
            The events handled since the previous `drain()` returned (or since entry),
            one per delivery, in the order they settled.

        Raises:
            DrainLimitReached: more than `max_items` deliveries (a handler that keeps
                publishing forever); the events it kept handling are named.
            DrainTimeout: a handler still ran after `timeout` seconds; it is named.
        """
        deadline = None if until is None else parse_when(until, now=self.clock.now())
        budget = len(self._recorder.reports) + max_items
        try:
            async with asyncio.timeout(timeout):
                await self._quiet(budget, max_items)
                while deadline is not None and (due := await self._next_due(deadline)) is not None:
                    self.clock.set(due)
                    await self._quiet(budget, max_items)
        except TimeoutError:
            raise DrainTimeout(self._stuck(timeout)) from None
        if deadline is not None and deadline > self.clock.now():
            self.clock.set(deadline)
        handled = self._recorder.handled_events[self._returned:]
        self._returned += len(handled)
        return handled

    async def _quiet(self, budget: int, max_items: int) -> None:
        """Wait until no item of a routed queue is ready or processing."""
        changed = self._recorder.changed
        while True:
            changed.clear()  # before looking: a settlement from now on wakes the wait
            await schedules_settled(self.app)  # what fell due by the clock is published
            if not await self._busy():
                return
            if len(self._recorder.reports) >= budget:
                raise DrainLimitReached(self._runaway(max_items))
            await changed.wait()

    async def _busy(self) -> bool:
        counts = await self.backend.counts()
        return any(counts.get(queue, {}).get(state, 0)
                   for queue in routed_queues(self.app)
                   for state in (State.READY, State.PROCESSING))

    async def _next_due(self, deadline: datetime) -> datetime | None:
        """Return the earliest due item or schedule firing, if it falls by `deadline`."""
        dues = [item.due for queue in routed_queues(self.app)
                for item in await self.backend.items(
                    ItemFilter(queue=queue, state=State.SCHEDULED, limit=1))]
        dues += [schedule.next for schedule in await self.backend.schedules()]
        due = min(dues, default=None)
        return due if due is not None and due <= deadline else None

    def _runaway(self, max_items: int) -> str:
        recent = Counter(report.event.name for report in self._recorder.reports[-max_items:])
        names = ", ".join(f"{name!r} ({count})" for name, count in recent.most_common(3))
        return (f"drain() handled {max_items} items (max_items) and more are still ready: "
                f"does a handler publish forever? Most handled: {names}")

    def _stuck(self, timeout: float | None) -> str:
        running = ", ".join(f"{event.name!r} on {event.queue!r}"
                            for event in self._recorder.running.values()) or "none"
        return (f"drain() waited {timeout} s for handlers to settle; "
                f"still running: {running}")
