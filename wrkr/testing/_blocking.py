"""`blocking_harness(...)`: the harness for tests that are not async (Flask, Django, TestClient).

The app runs on an event loop in another thread (a `BlockingWrkr`'s, or the portal of
Starlette's `TestClient`); the harness must run on that same loop, so every call here is
handed to it and waited for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from wrkr import BlockingWrkr, Event, Handled, InvalidConfig, NotStarted, Wrkr
from wrkr.testing._harness import DRAIN_TIMEOUT, MAX_ITEMS, Harness, Until
from wrkr_memory import ManualClock

__all__ = ["BlockingHarness", "Portal", "blocking_harness"]

T = TypeVar("T")


class Portal(Protocol):
    """Runs an async function on another thread's loop: anyio's `BlockingPortal`."""

    def call(self, func: Callable[..., Awaitable[T]], /, *args: Any) -> T:
        """Run `func(*args)` on the portal's loop and return its result."""
        ...


def blocking_harness(
    target: BlockingWrkr | Wrkr, *, portal: Portal | None = None, start: datetime | None = None,
) -> BlockingHarness:
    """Return a harness to enter with `with`: for a started `BlockingWrkr`, or for a
    `Wrkr` running on `portal`'s loop (`TestClient(api).portal`, inside `with TestClient`).
    """
    return BlockingHarness(target, portal=portal, start=start)


class BlockingHarness:
    """`Harness`, with blocking methods, for an app whose loop runs in another thread.

    Views keep publishing as they do; they reach the harness's fresh backend, and
    `drain()` runs the app's handlers on that loop.

    Raises:
        InvalidConfig: a `Wrkr` without a portal, or a portal with a `BlockingWrkr`.
    """

    def __init__(self, target: BlockingWrkr | Wrkr, *, portal: Portal | None = None,
                 start: datetime | None = None) -> None:
        if isinstance(target, BlockingWrkr) == (portal is not None):
            raise InvalidConfig(f"blocking_harness({target!r}, portal={portal!r}): expected "
                                "a BlockingWrkr alone, or a Wrkr and the portal its loop runs on")
        self._events = target if isinstance(target, BlockingWrkr) else None
        self._portal = portal
        app = target.app if isinstance(target, BlockingWrkr) else target
        self.harness = Harness(app, start=start)

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
        if self._portal is not None:
            result: T = self._portal.call(_await, call)  # (mypy cannot bind T through it)
            return result
        assert self._events is not None
        loop = self._events._loop
        if loop is None or loop.is_closed():
            call.close()
            raise NotStarted("blocking_harness() needs a started BlockingWrkr "
                             "(call events.start() first)")
        return asyncio.run_coroutine_threadsafe(call, loop).result()


async def _await(call: Coroutine[Any, Any, T]) -> T:
    return await call
