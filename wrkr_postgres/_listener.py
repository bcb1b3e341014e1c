"""LISTEN on the schema's channel and wake the consumers of the queue each NOTIFY names.

One connection per backend, whatever the number of consumers. When it drops (a server
restart), it reconnects with a bounded backoff; meanwhile consumers fall back to the
polling safety net, and once it is back every consumer is woken to look again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

from wrkr.backend import scrub

logger = logging.getLogger("wrkr.postgres")
_MAX_BACKOFF = 1.0


class PostgresListener:
    """Turns NOTIFYs on `channel` (payload: a queue name) into wake-ups of its waiters."""

    def __init__(self, url: str, channel: str) -> None:
        self._url = url
        self._channel = channel
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def start(self, timeout: float) -> None:
        """Start listening; return once LISTEN is in place (or after `timeout` seconds)."""
        self._task = asyncio.create_task(self._run(), name="wrkr-postgres-listener")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.listening.wait()

    async def stop(self) -> None:
        """Stop listening and wake every waiter (so closing consumers see the close)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.wake_all()

    def register(self, queue: str) -> asyncio.Event:
        """Return a new event set whenever `queue` may have new work."""
        event = asyncio.Event()
        self._waiters.setdefault(queue, set()).add(event)
        return event

    def unregister(self, queue: str, event: asyncio.Event) -> None:
        """Forget an event returned by `register`."""
        waiters = self._waiters.get(queue)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[queue]

    def wake(self, queue: str) -> None:
        """Wake the waiters of `queue` (also used for changes made in this process)."""
        for event in self._waiters.get(queue, ()):
            event.set()

    def wake_all(self) -> None:
        """Wake every waiter of every queue."""
        for queue in list(self._waiters):
            self.wake(queue)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._listen()
            except (psycopg.Error, OSError) as exc:
                logger.warning("wrkr.postgres: LISTEN connection lost (%s); reconnecting",
                               scrub(str(exc).strip(), self._url))
            if self.listening.is_set():
                backoff = 0.1  # it had worked: start the backoff over
            self.listening.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)

    async def _listen(self) -> None:
        conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
        try:
            await conn.execute(f'LISTEN "{self._channel}"')
            self.listening.set()
            self.wake_all()  # anything published while we were not listening
            async for notify in conn.notifies():
                self.wake(notify.payload)
        finally:
            with contextlib.suppress(Exception):
                await conn.close()
