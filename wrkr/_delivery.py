"""The delivery loop, written once for every store: claim, hand out, wait, give back.

One `StoreStream` per `deliveries()` call. It claims batches of up to `prefetch` items
and hands them out one by one; once a batch is all handed out, the first settlement
starts the next claim, so its round trip overlaps the handlers instead of following
them. With nothing due it asks the store when something next will be (a due time or a
lease end) and sleeps until then, or until its doorbell rings (the store's wake-up
signal, this process's own publishes and settlements, a `ManualClock` moving). Without
a live signal it polls, fast after work and backing off while idle.

Every claim runs as a task the backend can wait for when it closes, so what a claim
wins while the app stops is given back, never left `processing` until its lease ends.
A claim that fails raises `BackendUnavailable` out of the stream; the consumer pauses
and opens a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator
from datetime import timedelta
from typing import TYPE_CHECKING, Generic, TypeVar

from wrkr._backoff import Backoff
from wrkr._errors import BackendUnavailable
from wrkr._rates import Window
from wrkr._store import Claim
from wrkr._tasks import CLOSE_WAIT, ended
from wrkr._types import Delivery

if TYPE_CHECKING:
    from wrkr._stored import StoreBackend

__all__ = ["StoreStream"]

R = TypeVar("R")
TIMER_SLACK = 0.002  # seconds added to a sleep, so that we wake after the due time
RENEW_AFTER = 1 / 3  # of the lease: an item older than this in the buffer is renewed first


class StoreStream(Generic[R]):
    """Yields one queue's deliveries for one worker; see `Backend.deliveries`."""

    def __init__(self, owner: StoreBackend[R], queue: str, worker: str, lease: timedelta,
                 prefetch: int) -> None:
        self.owner, self.store = owner, owner.store
        self.queue, self.worker, self.lease, self.prefetch = queue, worker, lease, prefetch
        self._renew_after = lease.total_seconds() * RENEW_AFTER
        # One claimed batch at a time: a claim starts only once the buffer is drained
        self._buffer: deque[Delivery[R]] = deque()
        self._claimed_at = 0.0  # time.monotonic() when the buffered batch was claimed
        self._claiming: asyncio.Task[list[Delivery[R]]] | None = None
        self._drained = False  # the last batch is all handed out: a settlement claims more
        self._bell = owner.bell(queue)
        self._pacer = Backoff(self.store.poll_min, self.store.poll_max)
        self._inline = self.store.in_process
        self._now = owner.clock.now
        self._inline_claim: Claim | None = None
        options = owner.options(queue)
        self._exclusive, self._window = options.exclusive, options.window(queue)

    async def run(self) -> AsyncGenerator[Delivery[R], None]:
        """Yield deliveries until the backend closes; give back the unyielded at exit."""
        owner = self.owner
        owner.add_stream(self)
        try:
            while owner.is_connected:
                if not self._buffer:
                    if not (self._claim_inline() if self._inline else await self._refill()):
                        await self._sleep()
                    continue
                delivery = self._buffer.popleft()
                if (time.monotonic() - self._claimed_at >= self._renew_after
                        and not await self._still_held(delivery)):
                    continue
                owner.hand_out(delivery, self)
                self._drained = not self._buffer
                yield delivery
        finally:
            self._drained = False
            owner.forget_bell(self.queue, self._bell)
            await self.finish_claims()
            rest = self.take_buffer()
            owner.remove_stream(self)
            if rest and owner.is_connected:
                with contextlib.suppress(BackendUnavailable):
                    await owner.give_back(rest)

    def settling(self) -> None:
        """Hear that one of this stream's deliveries is being settled: claim ahead.

        The first settlement after a batch is all handed out shows the handlers are done
        with it and will soon ask for more. A consumer that settles nothing (a crashed
        one) claims nothing more, and a batch stays within `prefetch` unyielded items.
        """
        if self.store.in_process or self._exclusive:
            # In process, a claim costs no round trip: the next refill claims inline. An
            # exclusive queue's claim must follow the settlement, which may free a tid:
            # the backend rings the stream once the settlement is done.
            return
        if self._drained and self._claiming is None and self.owner.is_connected:
            self._drained = False
            self._start_claim()

    async def finish_claims(self) -> None:
        """Let a claim under way end (briefly) and keep what it won, to be given back."""
        claiming = self._claiming
        if claiming is None:
            return
        if not await ended(claiming, CLOSE_WAIT):
            self._claiming = None  # still running, now cancelled: its leases bring it back
            return
        self._collect(claiming)

    def take_buffer(self) -> list[Delivery[R]]:
        """Remove and return what was claimed and not handed out."""
        rest = list(self._buffer)
        self._buffer.clear()
        return rest

    # -- claiming ----------------------------------------------------------------------

    def _start_claim(self) -> None:
        self._bell.clear()  # a wake-up from now on must end the sleep after this claim
        self._claiming = asyncio.create_task(self._claim(), name=f"wrkr-claim:{self.queue}")

    async def _refill(self) -> bool:
        """Take the claim under way, or claim now; tell whether anything came."""
        if self._claiming is None:
            self._start_claim()
        claiming = self._claiming
        assert claiming is not None
        await asyncio.wait({claiming})  # cancelled meanwhile: closing collects it
        self._collect(claiming)
        return bool(self._buffer)

    def _claim_inline(self) -> bool:
        """Claim from an in-process store, without a task or an await; tell if any came."""
        self._bell.clear()
        if self._inline_claim is None:  # one for the stream: see `Store.claim_nowait`
            now = self._now()
            self._inline_claim = Claim(self.queue, self.worker, now, now + self.lease,
                                       self.prefetch, self._exclusive, self._window)
        batch = self.store.claim_nowait(self._inline_claim)
        if not batch:
            return False
        self._claimed_at = time.monotonic()
        self._buffer.extend(batch)
        return True

    def _collect(self, claiming: asyncio.Task[list[Delivery[R]]]) -> None:
        """Move a finished claim's deliveries into the buffer (errors raise here)."""
        if self._claiming is claiming:
            self._claiming = None
        if claiming.cancelled():
            return
        batch = claiming.result()
        if batch:
            self._claimed_at = time.monotonic()
            self._buffer.extend(batch)

    async def _claim(self) -> list[Delivery[R]]:
        now = self._now()
        batch = await self.store.claim(Claim(self.queue, self.worker, now, now + self.lease,
                                             self.prefetch, self._exclusive, self._window))
        if batch:
            self._pacer.reset()
        return batch

    async def _still_held(self, delivery: Delivery[R]) -> bool:
        """Renew an item that waited long in the buffer; tell whether it is still ours."""
        try:
            [held] = await self.store.renew([delivery], self.owner.now() + self.lease)
        except BackendUnavailable:
            return True  # the settlement will tell whether the lease still holds
        return held

    # -- waiting ------------------------------------------------------------------------

    async def _sleep(self) -> None:
        """Sleep until the next due time or lease end, a wake-up, or the next poll."""
        if self._window is not None and await self._held_back(self._window):
            return
        pause = await self._pause()
        self.store.idle(self.queue, True)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._bell.wait()
        finally:
            self.store.idle(self.queue, False)

    async def _pause(self) -> float | None:
        """Return how long to sleep (None: until woken; a hand-moved clock wakes us)."""
        if self.owner.manual_clock:
            return None
        now = self.owner.now()
        if self._exclusive:  # due items may wait for their tids: a settlement wakes us
            due = await self.store.next_change(self.queue, now)
            due = None if due is not None and due <= now else due
        else:
            due = await self.store.next_due(self.queue, now)
        pause = self.store.poll_interval if self.store.wakes_live else self._pacer.next()
        if due is not None:
            pause = min(pause, max(0.0, (due - now).total_seconds()) + TIMER_SLACK)
        return pause

    async def _held_back(self, window: Window) -> bool:
        """Sleep until the rate's window has room, if it is full; tell whether it was.

        Wake-ups cannot help meanwhile (nothing may start before the slot), so only the
        slot's time, a moved `ManualClock` reaching it, or the backend closing end it:
        a held-back queue costs one query per slot, never a claim per publish.
        """
        now = self.owner.now()
        slot = await self.store.next_slot(window, now)
        if slot is None:
            return False
        manual = self.owner.manual_clock
        while self.owner.is_connected and now < slot:
            self._bell.clear()
            pause = None if manual else (slot - now).total_seconds() + TIMER_SLACK
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._bell.wait()
            now = self.owner.now()
        return True
