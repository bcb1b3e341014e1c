"""A clock a test can move by hand.

The store keeps every time as integer microseconds since the Unix epoch
(`wrkr.backend.to_micros`): exact, fast to compare inside heap keys, smaller than a
`datetime`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class ManualClock:
    """A clock that stands still until told to move: no real waiting in tests.

    `MemoryBackend(clock=ManualClock())` schedules by it, and its consumers wake up
    whenever it moves, so an item published for "7 days" is delivered as soon as
    the test calls `clock.advance(timedelta(days=7))`. Move it from the event loop's
    own thread: the wake-ups it sends are not thread-safe.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = _aware(start) if start is not None else datetime.now(UTC)
        self._watchers: set[Callable[[], None]] = set()

    def now(self) -> datetime:
        """Return the clock's current time (aware UTC)."""
        return self._now

    def advance(self, by: timedelta | float) -> None:
        """Move the clock forward by `by` (a timedelta or seconds); never backwards.

        Raises:
            ValueError: `by` is negative.
        """
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if step < timedelta(0):
            raise ValueError(f"ManualClock.advance() needs a duration >= 0, got {by!r}")
        self.set(self._now + step)

    def set(self, to: datetime) -> None:
        """Move the clock to `to` (aware; moving back is allowed) and wake the watchers."""
        self._now = _aware(to).astimezone(UTC)
        for wake in list(self._watchers):
            wake()

    def watch(self, wake: Callable[[], None]) -> None:
        """Call `wake()` every time the clock moves (backends use it to wake consumers)."""
        self._watchers.add(wake)

    def unwatch(self, wake: Callable[[], None]) -> None:
        """Stop calling `wake`; unknown callbacks are ignored."""
        self._watchers.discard(wake)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"ManualClock needs a timezone-aware datetime, got naive {moment!r}")
    return moment
