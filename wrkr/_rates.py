"""Rates ("30/s", "1000 per minute"), the sliding windows that enforce them, and a
queue's coordination options (`exclusive`, `rate`), as stored with the queue.

A rate of N per period allows at most N starts in any window of the period's length,
ending at any instant: a sliding window, not calendar seconds and not a token bucket
(both allow 2N across a boundary). Stores count starts per `Window` key atomically
with the claim (or the limiter's acquire), so the limit holds across processes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from wrkr._errors import InvalidConfig, quote

__all__ = ["QueueOptions", "Rate", "Window", "limiter_window", "parse_rate", "queue_window"]

_PERIODS = {
    "s": 1, "sec": 1, "second": 1,
    "min": 60, "minute": 60,
    "h": 3600, "hour": 3600,
}
_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\w+?)s?\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `limit` starts in any `period`."""

    limit: int
    period: timedelta

    def __str__(self) -> str:
        seconds = self.period.total_seconds()
        unit = {1: "s", 60: "min", 3600: "h"}.get(int(seconds), f"{seconds:g}s")
        return f"{self.limit}/{unit}"


def parse_rate(text: object, *, what: str = "rate") -> Rate:
    """Read "N/s", "N/min", "N/h" or "N per second|minute|hour" as a `Rate`.

    Raises:
        InvalidConfig: anything else, or N < 1; the message quotes the value.
    """
    if isinstance(text, Rate):
        return text
    match = _RATE.match(text) if isinstance(text, str) else None
    seconds = _PERIODS.get(match.group(2).lower()) if match else None
    if match is None or seconds is None or int(match.group(1)) < 1:
        raise InvalidConfig(f"invalid {what} {quote(text)}: expected 'N/s', 'N/min', 'N/h' or "
                            "'N per second|minute|hour' with N >= 1, e.g. '30/s'")
    return Rate(int(match.group(1)), timedelta(seconds=seconds))


@dataclass(frozen=True, slots=True)
class Window:
    """One sliding window a store counts starts in: its key and its rate."""

    key: str
    limit: int
    period: timedelta


def queue_window(queue: str, rate: Rate) -> Window:
    """Return the window that counts a rated queue's handler starts."""
    return Window(f"queue:{queue}", rate.limit, rate.period)


def limiter_window(name: str, rate: Rate, margin: timedelta = timedelta(0)) -> Window:
    """Return the window that counts an `app.limiter(name, ...)`'s acquisitions."""
    return Window(f"limiter:{name}", rate.limit, rate.period + margin)


@dataclass(frozen=True, slots=True)
class QueueOptions:
    """How a queue is consumed, stored with the queue so every consumer obeys it.

    Attributes:
        exclusive: at most one item per tid `processing` at a time, FIFO per tid.
        rate: at most this many handler starts per period, all workers together.
    """

    exclusive: bool = False
    rate: Rate | None = None

    def __str__(self) -> str:
        rate = "None" if self.rate is None else repr(str(self.rate))
        return f"exclusive={self.exclusive}, rate={rate}"

    def window(self, queue: str) -> Window | None:
        """Return the window counting this queue's starts, if it is rated."""
        return None if self.rate is None else queue_window(queue, self.rate)
