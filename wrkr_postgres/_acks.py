"""Acks grouped into one statement: a commit per batch instead of one per item.

While one batch is on its way to the server, the acks that arrive wait and go
together in the next: with one handler at a time nothing waits, and with many the
server commits once for all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from wrkr_postgres._rows import PostgresReceipt

_MAX_BATCH = 500


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
