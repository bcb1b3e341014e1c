"""The last hour of this process's counters, per minute: what the dashboard's chart draws.

The counts come from the app's hooks in this process (what it published, what its
workers handled), not from the backend: stores keep no history of finished items unless
`archive="keep"`, and reading one per refresh would cost a scan.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["Throughput"]

MINUTES = 60
SERIES = ("published", "acked", "retried", "failed", "released", "lease_lost")


class Throughput:
    """Per-minute counts of the last `MINUTES` minutes, oldest first."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._minutes: deque[tuple[int, dict[str, int]]] = deque(maxlen=MINUTES)

    def add(self, series: str, count: int) -> None:
        """Add `count` to `series` in the current minute."""
        minute = int(self._clock() // 60)
        if not self._minutes or self._minutes[-1][0] != minute:
            self._minutes.append((minute, dict.fromkeys(SERIES, 0)))
        counts = self._minutes[-1][1]
        counts[series] = counts.get(series, 0) + count

    def last_hour(self) -> list[dict[str, Any]]:
        """Return one entry per minute of the last hour (zeros included), oldest first."""
        now = int(self._clock() // 60)
        held = {minute: counts for minute, counts in self._minutes}
        return [{"minute": minute * 60, **held.get(minute, dict.fromkeys(SERIES, 0))}
                for minute in range(now - MINUTES + 1, now + 1)]
