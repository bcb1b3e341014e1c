"""Sliding windows of the memory backend: per key, the starts of the last period.

A window keeps (time µs, count) pairs, oldest first, and forgets those a period old.
"""

from __future__ import annotations

from collections import deque

from wrkr.backend import Window


class MemoryWindows:
    """The starts counted per `Window` key."""

    def __init__(self) -> None:
        self._starts: dict[str, deque[tuple[int, int]]] = {}
        self._totals: dict[str, int] = {}

    def room(self, window: Window, now: int) -> int:
        """Return how many more starts `window` allows at `now`."""
        starts = self._starts.get(window.key)
        if not starts:
            return window.limit
        since = now - _micros(window)
        total = self._totals[window.key]
        while starts and starts[0][0] <= since:
            total -= starts.popleft()[1]
        self._totals[window.key] = total
        return max(0, window.limit - total)

    def record(self, window: Window, count: int, now: int) -> None:
        """Count `count` starts at `now`."""
        if count:
            self._starts.setdefault(window.key, deque()).append((now, count))
            self._totals[window.key] = self._totals.get(window.key, 0) + count

    def next_slot(self, window: Window, now: int) -> int | None:
        """Return when `window` next allows a start (µs), None if it does at `now`."""
        total = window.limit - self.room(window, now)
        if total < window.limit:
            return None
        for at, count in self._starts[window.key]:  # the oldest leave the window first
            total -= count
            if total < window.limit:
                return at + _micros(window)
        raise AssertionError("unreachable: the counts add up to the total")


def _micros(window: Window) -> int:
    return window.period.days * 86_400_000_000 + window.period.seconds * 1_000_000 + \
        window.period.microseconds
