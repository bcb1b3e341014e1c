"""Short leases, renewed while handlers run: a dead worker's items come back in seconds.

A claim holds its item for the app's `lease` (30 s by default), whatever the handler's
timeout. One `LeaseKeeper` per queue consumer renews every delivery in flight in one
batched `Backend.renew` call every third of the lease, so a handler that runs for an
hour keeps its item, and a killed worker's item is claimable again within about one
lease. A renewal that finds a lease lost (the process was paused past it, the network
was cut) calls `lost(delivery)`: the consumer cuts that handler short, since another
worker may hold the item now.

Cost per item: a dict insert and delete, in the one map of what the queue has in flight
(the consumer asks it which worker to cut short). The keeper's task sleeps while nothing
is in flight for long enough to need renewing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Generic, TypeVar

from wrkr._errors import BackendUnavailable
from wrkr._types import Delivery

__all__ = ["RENEW_EVERY", "LeaseKeeper"]

logger = logging.getLogger("wrkr")

W = TypeVar("W")

RENEW_EVERY = 1 / 3
"""Of the lease: how often leases in flight are renewed (two renewals may fail in a row
before the lease ends)."""


class LeaseKeeper(Generic[W]):
    """Renews the leases of one queue's deliveries in flight; see the module docstring.

    Args:
        renew: `Backend.renew`, the batched call.
        lease: how long each renewal holds an item from now.
        lost: called with a delivery whose lease a renewal found lost, and the `worker`
            it was held for (what the consumer cuts short).
        queue: the queue's name, for logs.
    """

    def __init__(
        self, renew: Callable[..., Any], lease: timedelta,
        lost: Callable[[Delivery[Any], W], None], queue: str,
    ) -> None:
        self._renew = renew
        self._lease = lease
        self._period = lease.total_seconds() * RENEW_EVERY
        self._lost = lost
        self._queue = queue
        # id(delivery) -> (delivery, since, worker)
        self._held: dict[int, tuple[Delivery[Any], float, W]] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._idle = False  # the task waits for `_wake`: the next hold must set it

    def hold(self, delivery: Delivery[Any], worker: W) -> None:
        """Keep `delivery`'s lease alive from now until `release(delivery)`."""
        self._held[id(delivery)] = (delivery, time.monotonic(), worker)
        if self._idle:
            self._idle = False
            self._wake.set()
        elif self._task is None:
            self._task = asyncio.create_task(self._keep(), name=f"wrkr-leases:{self._queue}")

    def release(self, delivery: Delivery[Any]) -> None:
        """Stop renewing `delivery` (it is being settled); releasing twice is harmless."""
        self._held.pop(id(delivery), None)

    @property
    def held(self) -> int:
        """How many deliveries are kept alive now."""
        return len(self._held)

    async def close(self) -> None:
        """Stop renewing (the consumer has stopped; nothing is in flight any more)."""
        task, self._task = self._task, None
        self._idle = False
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def renew_now(self) -> bool:
        """Renew every lease that is a period old or older, in one call; False if it failed."""
        cutoff = time.monotonic() - self._period
        due = [delivery for delivery, since, _ in self._held.values() if since <= cutoff]
        if not due:
            return True
        try:
            still = await self._renew(due, self._lease)
        except BackendUnavailable as exc:
            logger.warning("queue %s: could not renew %d lease(s), trying again in %.1fs: %s",
                           self._queue, len(due), self._period, exc)
            return False
        now = time.monotonic()
        for delivery, held in zip(due, still, strict=True):
            entry = self._held.get(id(delivery))
            if entry is None:
                continue  # settled while the renewal ran
            if held:
                self._held[id(delivery)] = (delivery, now, entry[2])
            else:
                del self._held[id(delivery)]
                self._lost(delivery, entry[2])
        return True

    async def _keep(self) -> None:
        while True:
            if not self._held:
                self._wake.clear()
                self._idle = True
                await self._wake.wait()
                continue
            oldest = min(since for _, since, _ in self._held.values())
            pause = oldest + self._period - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            if not await self.renew_now():
                await asyncio.sleep(self._period)  # the backend is down: no busy retry
