"""Waking idle consumers from other processes' changes: a change stream, on demand."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from pymongo.errors import OperationFailure, PyMongoError

from wrkr.backend import Backoff
from wrkr_mongodb._documents import NOT_LEASED

logger = logging.getLogger("wrkr.mongodb")

OPENING_WAIT = 10.0  # seconds `stop()` waits for a stream still opening, to close it
NO_CHANGE_STREAMS = 40573  # "The $changeStream stage is only supported on replica sets"

ITEM_CHANGES: list[dict[str, Any]] = [
    # New items, and items made claimable again (released, nacked, retried) anywhere.
    {"$match": {"$or": [
        {"operationType": "insert"},
        {"operationType": "update", "updateDescription.updatedFields.lease": NOT_LEASED},
    ]}},
    {"$project": {"operationType": 1, "fullDocument.queue": 1}},
]


def woken_queue(change: dict[str, Any]) -> str | None:
    """Return the queue an item change concerns (None: any, as updates carry no queue)."""
    document = change.get("fullDocument") or {}
    queue = document.get("queue") if change.get("operationType") == "insert" else None
    return None if queue is None else str(queue)


class MongoDBChangeStream:
    """Follows the items' change stream in the background while some consumer is idle.

    `demand(True)` when a consumer goes idle with none idle before; the stream stops
    `linger` seconds after `demand(False)`. A busy consumer claims without waiting and
    needs no wake-up, while an open stream costs the server a `getMore` per write.
    `on_state(True)` is called each time a stream opens, `on_state(False)` when it
    closes or breaks; a broken one is opened again after a backoff, and a server
    without change streams (standalone, or the in-process mock) is not asked again.

    Args:
        collection: the collection to follow.
        on_change: called with each change.
        on_state: told whether a stream is open.
        linger: seconds the stream stays open once no consumer is idle.
    """

    def __init__(self, collection: Any, on_change: Callable[[dict[str, Any]], None],
                 on_state: Callable[[bool], None], linger: float = 5.0) -> None:
        self._collection = collection
        self._on_change = on_change
        self._on_state = on_state
        self._linger = linger
        self._backoff = Backoff(0.5, 5.0)
        self._task: asyncio.Task[None] | None = None
        self._opening: asyncio.Future[Any] | None = None
        self._pausing: asyncio.TimerHandle | None = None
        self._stopping: set[asyncio.Task[None]] = set()
        self.unsupported = False

    def demand(self, wanted: bool) -> None:
        """Run the stream (wanted) or stop it after `linger` seconds (not wanted)."""
        if self._pausing is not None:
            self._pausing.cancel()
            self._pausing = None
        if wanted and (self._task is None or self._task.done()) and not self.unsupported:
            self._task = asyncio.create_task(self._run(), name="wrkr-mongodb-watch")
        elif not wanted and self._task is not None:
            self._pausing = asyncio.get_running_loop().call_later(self._linger, self._pause)

    def _pause(self) -> None:
        self._pausing = None
        stopping = asyncio.create_task(self.stop())
        self._stopping.add(stopping)
        stopping.add_done_callback(self._stopping.discard)

    async def stop(self) -> None:
        """Stop following the stream (and close one still opening)."""
        if self._pausing is not None:
            self._pausing.cancel()
            self._pausing = None
        task, self._task = self._task, None
        opening, self._opening = self._opening, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self._on_state(False)
        if opening is not None and not opening.cancelled():
            with contextlib.suppress(Exception):
                await (await asyncio.wait_for(opening, OPENING_WAIT)).close()
        await asyncio.gather(*self._stopping - {asyncio.current_task()},
                             return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self._follow()
            except (NotImplementedError, AttributeError, TypeError):
                self._unsupported()  # a client without change streams (the mock)
                return
            except OperationFailure as exc:
                if exc.code == NO_CHANGE_STREAMS:
                    self._unsupported()  # a standalone server
                    return
                logger.debug("change stream failed (%s); polling meanwhile", exc.code)
            except PyMongoError as exc:
                logger.debug("change stream lost (%s); polling meanwhile", type(exc).__name__)
            self._on_state(False)
            await self._backoff.wait()

    def _unsupported(self) -> None:
        self.unsupported = True
        self._on_state(False)

    async def _follow(self) -> None:
        # Opening is shielded from `stop()`'s cancellation: the driver leaks the socket of
        # a connection cancelled mid-handshake; `stop()` waits for it and closes the stream.
        self._opening = asyncio.ensure_future(self._collection.watch(ITEM_CHANGES))
        stream = await asyncio.shield(self._opening)
        self._opening = None
        async with stream:
            self._backoff.reset()
            self._on_state(True)
            async for change in stream:
                self._on_change(change)
