"""A clock a test can move by hand, and the microsecond arithmetic the store runs on.

The store keeps every time as integer microseconds since the Unix epoch: an int is
exact (a float is not, past a few hundred years), compares fast inside heap keys,
and costs less memory than a `datetime`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    """Return `moment` (aware) as whole microseconds since the Unix epoch."""
    return (moment - EPOCH) // MICROSECOND


def from_micros(micros: int) -> datetime:
    """Return the aware UTC datetime `micros` microseconds after the Unix epoch."""
    return EPOCH + timedelta(0, 0, micros)  # positional: a third cheaper than keywords


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
