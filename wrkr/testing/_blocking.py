"""`blocking_harness(events)`: the harness for code that is not async (Flask, Django).

A `BlockingWrkr` runs its app on an event loop in a thread of its own; the harness must
run on that same loop, so every call here is handed to it and waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

from wrkr import BlockingWrkr, Event, Handled, NotStarted
from wrkr.testing._harness import DRAIN_TIMEOUT, MAX_ITEMS, Harness, Until
from wrkr_memory import ManualClock

__all__ = ["BlockingHarness", "blocking_harness"]

T = TypeVar("T")


def blocking_harness(events: BlockingWrkr, *, start: datetime | None = None) -> BlockingHarness:
    """Return a harness for the app of a started `BlockingWrkr`: `with blocking_harness(e):`."""
    return BlockingHarness(events, start=start)


class BlockingHarness:
    """`Harness`, with blocking methods, for the app a `BlockingWrkr` runs.

    Views keep calling `events.publish(...)`; they reach the harness's fresh backend,
    and `drain()` runs the app's handlers on the facade's loop.
    """

    def __init__(self, events: BlockingWrkr, *, start: datetime | None = None) -> None:
        self.events = events
        self.harness = Harness(events.app, start=start)

    @property
    def clock(self) -> ManualClock:
        """Return the hand-moved clock of the harness."""
        return self.harness.clock

    @property
    def handled(self) -> list[Event]:
        """Return every event handled so far (see `Harness.handled`)."""
        return self.harness.handled

    @property
    def failed(self) -> list[Event]:
        """Return the events parked as failed so far (see `Harness.failed`)."""
        return self.harness.failed

    @property
    def reports(self) -> list[Handled]:
        """Return each delivery's report (see `Harness.reports`)."""
        return self.harness.reports

    def __enter__(self) -> Self:
        self._run(self.harness.__aenter__())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._run(self.harness.__aexit__(exc_type, exc, tb))

    def drain(
        self, until: Until = None, *, max_items: int = MAX_ITEMS,
        timeout: float | None = DRAIN_TIMEOUT,
    ) -> list[Event]:
        """Handle what is ready (and due by `until`); see `Harness.drain`."""
        return self._run(self.harness.drain(until, max_items=max_items, timeout=timeout))

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        loop = self.events._loop
        if loop is None or loop.is_closed():
            call.close()
            raise NotStarted("blocking_harness() needs a started BlockingWrkr "
                             "(call events.start() first)")
        return asyncio.run_coroutine_threadsafe(call, loop).result()
