"""LISTEN on the schema's channel and report the queue each NOTIFY names.

One connection per store, whatever the number of consumers. When it drops (a server
restart), it reconnects with the core's `Backoff`; meanwhile `listening` is clear and
consumers poll, and once it is back every queue is woken to look again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

from wrkr.backend import CLOSE_WAIT, Backoff, Wake, ended, scrub

logger = logging.getLogger("wrkr.postgres")


class PostgresListener:
    """Turns NOTIFYs on `channel` (payload: a queue name) into `wake(queue)` calls."""

    def __init__(self, url: str, channel: str, wake: Wake) -> None:
        self._url, self._channel, self._wake = url, channel, wake
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    @property
    def started(self) -> bool:
        """True from `start` (or `start_soon`) until `stop`."""
        return self._task is not None

    def start_soon(self) -> None:
        """Start listening in the background; `listening` is set once LISTEN is in place."""
        self.listening = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="wrkr-postgres-listener")

    async def start(self, timeout: float) -> None:
        """Start listening; return once LISTEN is in place (or after `timeout` seconds)."""
        self.start_soon()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.listening.wait()

    async def stop(self) -> None:
        """Stop listening."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            if not await ended(task, CLOSE_WAIT):
                logger.warning("wrkr.postgres: closing: the LISTEN connection did not close "
                               "in %gs", CLOSE_WAIT)
        self.listening.clear()

    async def _run(self) -> None:
        backoff = Backoff(0.1, 1.0)
        while True:
            try:
                await self._listen(backoff)
            except (psycopg.Error, OSError) as exc:
                logger.warning("wrkr.postgres: LISTEN connection lost (%s); reconnecting",
                               scrub(str(exc).strip(), self._url))
            self.listening.clear()
            await backoff.wait()

    async def _listen(self, backoff: Backoff) -> None:
        conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
        try:
            await conn.execute(f'LISTEN "{self._channel}"')
            self.listening.set()
            backoff.reset()
            self._wake(None)  # anything published while we were not listening
            async for notify in conn.notifies():
                self._wake(notify.payload)
        finally:
            with contextlib.suppress(Exception):
                await conn.close()
