"""Acks grouped into one statement: a commit per batch instead of one per item.

A batch leaves once the event loop has gone round without adding an ack: handlers
that finish one after another (the core hands out prefetched items one per loop
turn) share a statement, while a lone ack waits one turn. While one batch is on its
way to the server, the acks that arrive wait and go together in the next.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from wrkr_postgres._rows import PostgresReceipt

_MAX_BATCH = 500
_MAX_WAIT = 0.005  # seconds an ack may wait for others


@dataclass(frozen=True, slots=True)
class PostgresAck:
    """One ack waiting to be sent: whose, and whether to keep the item as done."""

    receipt: PostgresReceipt
    keep: bool
    expires: datetime | None


Flush = Callable[[Sequence[PostgresAck]], Awaitable[set[int]]]


class PostgresAckBatcher:
    """Sends acks through `flush` in batches; each caller learns if its lease still held.

    Args:
        flush: sends a batch in one statement; returns the `seq` of the rows settled.
    """

    def __init__(self, flush: Flush) -> None:
        self._flush = flush
        self._waiting: list[tuple[PostgresAck, asyncio.Future[bool]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def ack(self, ack: PostgresAck) -> bool:
        """Queue `ack`, wait for its batch, and tell whether the item was still held."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((ack, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name="wrkr-postgres-acks")
        return await future

    async def drain(self) -> None:
        """Wait until the acks already queued have been sent (at close)."""
        if self._sender is not None:
            await asyncio.gather(self._sender, return_exceptions=True)

    async def _send(self) -> None:
        while self._waiting:
            await self._gather()
            batch, self._waiting = self._waiting[:_MAX_BATCH], self._waiting[_MAX_BATCH:]
            try:
                settled = await self._flush([ack for ack, _ in batch])
            except Exception as exc:  # the callers raise it, each its own
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for ack, future in batch:
                if not future.done():
                    future.set_result(ack.receipt.seq in settled)

    async def _gather(self) -> None:
        """Let the loop go round while each turn adds acks, up to a batch or `_MAX_WAIT`."""
        deadline = time.monotonic() + _MAX_WAIT
        count = 0
        while count < len(self._waiting) < _MAX_BATCH and time.monotonic() < deadline:
            count = len(self._waiting)
            await asyncio.sleep(0)
