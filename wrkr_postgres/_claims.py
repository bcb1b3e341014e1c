"""The claim loop behind `PostgresBackend.deliveries`: claim in batches, then sleep.

A consumer claims up to `prefetch` due items in one statement (``FOR UPDATE SKIP
LOCKED``, so competing consumers never wait for each other) and yields them one by
one. With nothing due it asks when something next will be (a due time or a lease
end) and sleeps until then, or until a NOTIFY for its queue wakes it; polling every
`poll_interval` is only the safety net for a lost notification. Server errors do not
end the loop: it backs off and claims again once the server is back.
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

    async def run(self) -> AsyncGenerator[Delivery, None]:
        """Yield deliveries until the backend closes; give back the unyielded at exit."""
        wake = self.backend.listener.register(self.queue)
        try:
            while self.backend.connected:
                if not self._claimed:
                    wake.clear()  # a NOTIFY from now on must end the coming sleep
                    if not await self._claim():
                        await self._sleep(wake)
                    continue
                delivery, claimed_at = self._claimed.popleft()
                if await self._still_held(delivery, claimed_at):
                    yield delivery
        finally:
            self.backend.listener.unregister(self.queue, wake)
            await self._give_back()

    async def _claim(self) -> bool:
        """Claim a batch into `_claimed`; tell whether anything came (errors: nothing)."""
        now = self.backend.now()
        params = {"queue": self.queue, "now": now, "limit": self.prefetch,
                  "worker": self.worker, "lease": uuid.uuid4(), "until": now + self.lease}
        try:
            rows = await self.backend.settle_pool.fetch(self.backend.queries["claim"], params)
        except BackendUnavailable as exc:
            await self._back_off(exc)
            return False
        self._backoff = 0.05
        deliveries = sorted(map(to_delivery, rows), key=lambda d: (d.item.due, d.receipt.seq))
        self.backend.held.update(delivery.receipt for delivery in deliveries)
        stamp = time.monotonic()
        self._claimed.extend((delivery, stamp) for delivery in deliveries)
        return bool(deliveries)

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
