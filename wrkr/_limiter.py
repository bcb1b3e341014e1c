"""`Limiter`: a named sliding-window rate limit shared by every process on the backend.

`app.limiter("etsy", "30/s")` gives code inside handlers the limit a queue's `rate`
gives its handler starts: at most N acquisitions in any window of the period's length,
counted in the backend at the time it grants each (its stamp, by the backend's clock).
What the caller does next happens later, by a round trip and its event loop's delay:
an API that counts calls as they arrive sees that varying lag on top, so such a limit
takes a `margin` (every window longer by it) that covers the lag's spread.

Waiters of one process queue in arrival order (an `asyncio.Lock` is FIFO), so only the
first of them asks the backend; it sleeps until the window's next slot (never polling
the database meanwhile), woken early only by a `ManualClock` that moved.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType

from wrkr._backend import Backend
from wrkr._rates import Rate, limiter_window

__all__ = ["Limiter"]

TIMER_SLACK = 0.002  # seconds added to a sleep, so that we wake after the slot


class Limiter:
    """Waits for a slot of a named rate limit: `async with limiter:` or `await acquire()`.

    Args:
        backend: returns where the window is counted (shared by every process using
            it): the app's backend when asked, so a limiter made at import follows the
            app onto another backend (`wrkr.testing.harness`).
        name: the limit's name; limits of one name share one window.
        rate: at most `rate.limit` acquisitions in any `rate.period`.
        margin: added to the period of every window (see the module's docstring).
    """

    def __init__(self, backend: Callable[[], Backend], name: str, rate: Rate,
                 margin: timedelta = timedelta(0)) -> None:
        self.name, self.rate, self.margin = name, rate, margin
        self._backend = backend
        self._window = limiter_window(name, rate, margin)
        self._turn = asyncio.Lock()  # FIFO: waiters of this process take slots in order

    def __repr__(self) -> str:
        margin = f", margin={self.margin!r}" if self.margin else ""
        return f"Limiter({self.name!r}, {str(self.rate)!r}{margin})"

    async def acquire(self) -> None:
        """Wait until the window allows one more start, and take it."""
        async with self._turn:
            while (slot := await self._backend().acquire_slot(self._window)) is not None:
                await self._sleep_until(slot)

    async def __aenter__(self) -> Limiter:
        await self.acquire()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        """Nothing to give back: a start counts whether the call succeeded or not."""

    async def _sleep_until(self, slot: datetime) -> None:
        clock = self._backend().clock
        watch: Callable[[Callable[[], None]], None] | None = getattr(clock, "watch", None)
        if watch is None:
            pause = (slot - clock.now()).total_seconds() + TIMER_SLACK
            await asyncio.sleep(max(0.0, pause))
            return
        moved = asyncio.Event()  # a ManualClock: sleep until it moves to (or past) the slot
        watch(moved.set)
        try:
            while clock.now() < slot:
                moved.clear()
                await moved.wait()
        finally:
            with contextlib.suppress(AttributeError):
                clock.unwatch(moved.set)  # type: ignore[attr-defined]
