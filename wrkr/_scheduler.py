"""`Scheduler`: fires the store's recurring schedules, in every listening app at once.

No leader is elected. Every listening app runs a scheduler; each reads the schedules,
and for one that is due asks the store to carry out its `Firing`, which the store does
only if the schedule is still due at that time. Of all the apps trying, exactly one
publishes; the others see the schedule moved on and sleep until its next firing.
Leader-based designs duplicated firings whenever two nodes believed they led
(Oban#1488, oban-py#32); here there is nothing to believe.

It sleeps until the earliest next firing, or until woken: by a schedule saved in this
process, or by a `ManualClock` moving (then it never sleeps by the wall clock). A
schedule saved by another process is seen at the next refresh (`REFRESH` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from wrkr._backend import Backend
from wrkr._backoff import Backoff
from wrkr._errors import BackendUnavailable
from wrkr._hooks import Observers
from wrkr._schedules import ScheduleRecord, cron_available, plan_firing

__all__ = ["Scheduler"]

logger = logging.getLogger("wrkr")
REFRESH = 5.0  # seconds between reads of the schedules when nothing is due sooner
TIMER_SLACK = 0.002  # seconds added to a sleep, so that we wake after the firing time


class Scheduler:
    """Runs one app's part in firing every stored schedule; see the module docstring.

    Args:
        backend: the app's backend (with the SCHEDULES capability).
        observers: told of what each firing publishes, as for `app.publish`.
    """

    def __init__(self, backend: Backend, observers: Observers) -> None:
        self.backend = backend
        self.observers = observers
        self.quiet = asyncio.Event()  # set while nothing is due and nothing wakes it
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._manual = hasattr(backend.clock, "watch")
        self._warned: set[str] = set()

    def start(self) -> None:
        """Start firing in the background (and hear a hand-moved clock)."""
        if self._manual:
            self.backend.clock.watch(self.wake)  # type: ignore[attr-defined]
        self._task = asyncio.create_task(self._run(), name="wrkr-scheduler")

    async def stop(self) -> None:
        """Stop firing; a firing under way is one store call, and ends or never happened."""
        if self._manual:
            self.backend.clock.unwatch(self.wake)  # type: ignore[attr-defined]
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """Look at the schedules again now (one was saved, or the clock moved)."""
        self.quiet.clear()
        self._wake.set()

    async def _run(self) -> None:
        backoff = Backoff(0.5, 5.0)
        while True:
            self._wake.clear()
            try:
                pause = await self._fire_due()
                backoff.reset()
            except BackendUnavailable as exc:
                pause = backoff.next()
                logger.warning("scheduler: %s; trying again in %.1f s", exc, pause)
            if not self._wake.is_set():
                self.quiet.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._wake.wait()

    async def _fire_due(self) -> float | None:
        """Fire every due schedule until none is; return how long to sleep (None: until woken).

        A firing the store turned down is not tried again in this round: the schedule
        moved on (read again, it is no longer due) or it was changed under us.
        """
        tried: set[tuple[str, datetime]] = set()
        while True:
            now = self.backend.now()
            records = [record for record in await self.backend.schedules()
                       if self._computable(record) and (record.name, record.next) not in tried]
            due = [record for record in records if record.next <= now]
            if not due:
                return self._pause(records, now)
            for record in due:
                tried.add((record.name, record.next))
                await self._fire(record, now)

    async def _fire(self, record: ScheduleRecord, now: datetime) -> None:
        firing = plan_firing(record, now)
        if firing is None:
            return
        ids = await self.backend.fire_schedule(firing)
        if ids is not None and firing.messages and self.observers:
            self.observers.published(list(firing.messages), ids)

    def _pause(self, records: list[ScheduleRecord], now: datetime) -> float | None:
        if self._manual:
            return None
        soonest = min((record.next for record in records), default=None)
        if soonest is None:
            return REFRESH
        return min(REFRESH, (soonest - now).total_seconds() + TIMER_SLACK)

    def _computable(self, record: ScheduleRecord) -> bool:
        """Tell whether this process can work out a schedule's firings (cron needs cronsim)."""
        if record.cron is None or cron_available():
            return True
        if record.name not in self._warned:
            self._warned.add(record.name)
            logger.warning("scheduler: cannot fire cron schedule %r here: cronsim is not "
                           'installed (pip install "wrkr[cron]"); other apps will', record.name)
        return False
