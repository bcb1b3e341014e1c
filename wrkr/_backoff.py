"""One backoff for everything that retries a server: claims, listeners, reconnects."""

from __future__ import annotations

import asyncio

__all__ = ["Backoff"]


class Backoff:
    """Pauses that double from `first` to `most` seconds, until `reset()` after a success.

    Usage::

        backoff = Backoff()
        while True:
            try:
                await work()
                backoff.reset()
            except BackendUnavailable:
                await backoff.wait()
    """

    __slots__ = ("_next", "failures", "first", "most")

    def __init__(self, first: float = 0.1, most: float = 5.0) -> None:
        if not 0 < first <= most:
            raise ValueError(f"Backoff needs 0 < first <= most, got {first!r}, {most!r}")
        self.first, self.most = first, most
        self._next = first
        self.failures = 0

    def next(self) -> float:
        """Return the pause to take now (seconds), and lengthen the one after."""
        pause = self._next
        self._next = min(self._next * 2, self.most)
        self.failures += 1
        return pause

    def reset(self) -> None:
        """Start over from `first`: the last attempt succeeded."""
        self._next = self.first
        self.failures = 0

    async def wait(self) -> float:
        """Sleep for the next pause; return how long it was."""
        pause = self.next()
        await asyncio.sleep(pause)
        return pause
