"""The delivery loop of one consumer: claim, hand out, and wait without busy polling."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime

from wrkr.backend import Delivery
from wrkr_mongodb._claims import Claimer, Receipt
from wrkr_mongodb._documents import item_from_document, seconds_until
from wrkr_mongodb._errors import ErrorTranslator
from wrkr_mongodb._wakeups import Wakeups


class Pacer:
    """How long an idle consumer sleeps: short right after work, longer as it stays idle.

    With a live change stream the wake-up comes from the stream and the pause is only a
    safety net (`idle_max`); without one it doubles from `poll_min` to `poll_max`.
    """

    def __init__(self, poll_min: float, poll_max: float, idle_max: float) -> None:
        self.poll_min, self.poll_max, self.idle_max = poll_min, poll_max, idle_max
        self._pause = poll_min

    def worked(self) -> None:
        """Note that the last claim found work: poll fast again."""
        self._pause = self.poll_min

    def pause(self, streaming: bool) -> float:
        """Return the next idle pause in seconds, and lengthen the one after."""
        if streaming:
            return self.idle_max
        pause, self._pause = self._pause, min(self._pause * 2, self.poll_max)
        return pause


class DeliveryLoop:
    """Yields one queue's deliveries for one worker (see `Backend.deliveries`).

    Args:
        claimer: claims the queue's items for the worker.
        wakeups: what rouses the loop when it is idle.
        pacer: how long it sleeps when nothing rouses it.
        errors: wraps driver errors as `BackendUnavailable`.
        now: the backend's clock.
        release: gives back a claimed but unyielded delivery when the loop closes.
        held: the backend's unsettled receipts, which its `disconnect()` gives back.
        is_open: tells whether the backend is still open; the loop ends once it is not.
    """

    def __init__(self, claimer: Claimer, wakeups: Wakeups, pacer: Pacer,
                 errors: ErrorTranslator, now: Callable[[], datetime],
                 release: Callable[[Delivery], Awaitable[None]], held: set[Receipt],
                 is_open: Callable[[], bool]) -> None:
        self.claimer, self.wakeups, self.pacer = claimer, wakeups, pacer
        self.errors, self.now, self.release = errors, now, release
        self.held, self.is_open = held, is_open

    async def run(self, prefetch: int) -> AsyncGenerator[Delivery, None]:
        """Yield deliveries until closed; closing gives back the claimed, unyielded ones."""
        buffer: deque[Delivery] = deque()
        with self.wakeups.listening(self.claimer.queue) as woken:
            try:
                while self.is_open():
                    if not buffer:
                        woken.clear()  # before claiming: a wake-up during the claim counts
                        buffer.extend(await self._claim(prefetch))
                    if buffer:
                        yield buffer.popleft()
                    else:
                        await self._idle(woken)
            finally:
                await self._give_back(buffer)

    async def _claim(self, limit: int) -> list[Delivery]:
        with self.errors.unavailable(f"claiming from queue {self.claimer.queue!r}"):
            documents = await self.claimer.claim(self.now(), max(1, limit))
        if documents:
            self.pacer.worked()
        now = self.now()
        deliveries = [Delivery(item_from_document(document, now),
                               Receipt(document["_id"], document["lease"]))
                      for document in documents]
        self.held.update(delivery.receipt for delivery in deliveries)
        return deliveries

    async def _idle(self, woken: asyncio.Event) -> None:
        now = self.now()
        with self.errors.unavailable(f"waiting on queue {self.claimer.queue!r}"):
            wake_at = await self.claimer.next_wake(now)
        pause = self.pacer.pause(self.wakeups.streaming)
        if wake_at is not None:
            pause = min(pause, seconds_until(wake_at, now))
        with self.wakeups.idle(), contextlib.suppress(TimeoutError):
            await asyncio.wait_for(woken.wait(), pause)

    async def _give_back(self, buffer: deque[Delivery]) -> None:
        for delivery in buffer:
            with contextlib.suppress(Exception):
                await self.release(delivery)
