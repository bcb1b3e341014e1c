"""The claim loop behind `PostgresBackend.deliveries`: claim in batches, then sleep.

A consumer claims up to `prefetch` due items in one statement (``FOR UPDATE SKIP
LOCKED``, so competing consumers never wait for each other) and yields them one by
one; once a batch is all handed out, the first settlement starts the next claim. With nothing
due it asks when something next will be (a due time or a lease end) and sleeps until
then, or until a NOTIFY for its queue wakes it; polling every `poll_interval` is only
the safety net for a lost notification. Server errors do not end the loop: it backs
off and claims again once the server is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncGenerator
from datetime import timedelta
from typing import TYPE_CHECKING

from wrkr._errors import BackendUnavailable
from wrkr.backend import Delivery
from wrkr_postgres._rows import PostgresReceipt, to_delivery

if TYPE_CHECKING:
    from wrkr_postgres._backend import PostgresBackend

logger = logging.getLogger("wrkr.postgres")
_DISCONNECTED_POLL = 0.5  # seconds between looks while LISTEN is down
_MAX_BACKOFF = 1.0
_CLOSE_WAIT = 2.0  # seconds closing waits for a claim under way
_TIMER_SLACK = 0.002  # seconds added to a sleep, so that we wake after the due time


class PostgresClaimer:
    """Runs one queue's deliveries for a worker; see `Backend.deliveries`."""

    def __init__(self, backend: PostgresBackend, queue: str, worker: str,
                 lease: timedelta, prefetch: int) -> None:
        self.backend = backend
        self.queue, self.worker, self.lease = queue, worker, lease
        self.prefetch = max(1, prefetch)
        self._claimed: deque[tuple[Delivery, float]] = deque()
        self._backoff = 0.05
        self._ahead: asyncio.Task[list[tuple[Delivery, float]]] | None = None
        self._batch: uuid.UUID | None = None  # lease of the batch all handed out
        self._wake = asyncio.Event()

    async def run(self) -> AsyncGenerator[Delivery, None]:
        """Yield deliveries until the backend closes; give back the unyielded at exit."""
        self._wake = self.backend.listener.register(self.queue)
        try:
            while self.backend.connected:
                if not self._claimed:
                    if not await self._refill():
                        await self._sleep(self._wake)
                    continue
                delivery, claimed_at = self._claimed.popleft()
                if not self._claimed:
                    self._handed_out(delivery.receipt)
                if await self._still_held(delivery, claimed_at):
                    yield delivery
        finally:
            self._forget_batch()
            self.backend.listener.unregister(self.queue, self._wake)
            await self._finish_ahead()
            await self._give_back()

    def _handed_out(self, receipt: PostgresReceipt) -> None:
        """Note that the batch claimed under `receipt.lease` is all handed out."""
        self._batch = receipt.lease
        self.backend.handed_out[receipt.lease] = self

    def _forget_batch(self) -> None:
        if self._batch is not None:
            self.backend.handed_out.pop(self._batch, None)
            self._batch = None

    def settling(self) -> None:
        """Hear that an item of the batch all handed out is being settled: claim ahead.

        The first settlement shows the handlers are done with the batch and will soon
        ask for more: the next claim starts now, so its round trip overlaps the acks
        instead of following them. Nothing claimed is left unyielded, so a whole
        batch stays within `prefetch`; a consumer that settles nothing (a crashed
        one) claims nothing more.
        """
        self._batch = None
        if self._ahead is None and not self._claimed and self.backend.connected:
            self._wake.clear()  # a NOTIFY from now on must end a sleep after this claim
            self._ahead = asyncio.create_task(self._claim(),
                                              name=f"wrkr-postgres-claim:{self.queue}")

    async def _refill(self) -> bool:
        """Take the batch claimed ahead, or claim one now; tell whether anything came."""
        self._forget_batch()
        ahead = self._ahead
        if ahead is None:
            self._wake.clear()  # a NOTIFY from now on must end the coming sleep
            batch = await self._claim()
        else:
            batch = await asyncio.shield(ahead)  # cancelled: closing gives it back
            self._ahead = None
        self._claimed.extend(batch)
        return bool(batch)

    async def _claim(self) -> list[tuple[Delivery, float]]:
        """Claim a batch, oldest due first, stamped with the time (errors: nothing)."""
        if not self.backend.connected:
            return []
        now = self.backend.now()
        params = {"queue": self.queue, "now": now, "limit": self.prefetch,
                  "worker": self.worker, "lease": uuid.uuid4(), "until": now + self.lease}
        try:
            rows = await self.backend.settle_pool.fetch(self.backend.queries["claim"], params)
        except BackendUnavailable as exc:
            await self._back_off(exc)
            return []
        self._backoff = 0.05
        deliveries = sorted(map(to_delivery, rows), key=lambda d: (d.item.due, d.receipt.seq))
        self.backend.held.update(delivery.receipt for delivery in deliveries)
        stamp = time.monotonic()
        return [(delivery, stamp) for delivery in deliveries]

    async def _finish_ahead(self) -> None:
        """Let a claim still under way end (briefly), so that closing gives its items back."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return
        await asyncio.wait({ahead}, timeout=_CLOSE_WAIT)
        if not ahead.done():
            ahead.cancel()
        elif not ahead.cancelled() and ahead.exception() is None:
            self._claimed.extend(ahead.result())

    async def _back_off(self, exc: BackendUnavailable) -> None:
        logger.warning("wrkr.postgres: claiming from %s failed (%s); retrying in %.2fs",
                       self.queue, exc, self._backoff)
        await asyncio.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, _MAX_BACKOFF)

    async def _sleep(self, wake: asyncio.Event) -> None:
        """Sleep until the next due time or lease end, a NOTIFY, or the safety-net poll."""
        delay = self.backend.settings.poll_interval
        if not self.backend.listener.listening.is_set():
            delay = min(delay, _DISCONNECTED_POLL)
        with contextlib.suppress(BackendUnavailable):
            rows = await self.backend.settle_pool.fetch(
                self.backend.queries["next_change"], {"queue": self.queue})
            if rows and rows[0][0] is not None:
                due_in = (rows[0][0] - self.backend.now()).total_seconds()
                delay = min(delay, max(0.0, due_in) + _TIMER_SLACK)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await wake.wait()

    async def _still_held(self, delivery: Delivery, claimed_at: float) -> bool:
        """Renew the lease of an item that waited long in the prefetch buffer.

        An item waiting for a free handler slot should not spend its handler's time
        there. If the lease ran out and another worker took it, drop it.
        """
        if time.monotonic() - claimed_at < self.lease.total_seconds() / 4:
            return True
        receipt: PostgresReceipt = delivery.receipt
        params = {"seq": receipt.seq, "lease": receipt.lease,
                  "until": self.backend.now() + self.lease}
        try:
            rows = await self.backend.settle_pool.fetch(self.backend.queries["renew"], params)
        except BackendUnavailable:
            return True  # the settlement will tell whether the lease still holds
        if not rows:
            self.backend.held.discard(receipt)
        return bool(rows)

    async def _give_back(self) -> None:
        receipts = [delivery.receipt for delivery, _ in self._claimed]
        self._claimed.clear()
        if receipts:
            with contextlib.suppress(BackendUnavailable):
                await self.backend.give_back(receipts, uncount=True)
