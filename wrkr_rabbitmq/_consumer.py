"""Consuming one wrkr queue: a channel per consumer, manual acks, prefetch by QoS.

The lease is the channel: a delivery stays claimed while the channel that received it
is open, and comes back to the queue the moment the connection dies (a crashed
worker). `BrokerBackend` decides when a consumer stops and when its channel closes.

Attempts made before the message was last published live in its ``x-wrkr`` header;
the broker cannot change a message it requeues. How a delivery returned by the broker
(its consumer died holding it, or a worker abandoned it) is counted depends on the
queue type:

    quorum   the broker counts deliveries itself: ``x-delivery-count`` says how often
             this message went back to the queue. The delivery is this message's
             ``attempts + x-delivery-count + 1``-th attempt and is handed out as it is,
             so it keeps its place at the head of the queue.
    classic  the broker says only ``redelivered``. Such a message is recounted:
             republished with one more attempt (at the back of the queue) and acked,
             and its copy is delivered in turn.

Stopping republishes what arrived but was not handed out with its count unchanged
instead of requeueing it, so no attempt counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from wrkr.backend import BrokerConsumer, Delivery, State
from wrkr_rabbitmq._client import RabbitMQChannel, RabbitMQChannelClosed, RabbitMQIncoming
from wrkr_rabbitmq._connection import DRIVER_ERRORS
from wrkr_rabbitmq._foreign import adopted_envelope, is_foreign
from wrkr_rabbitmq._messages import (
    MalformedMessage,
    RabbitMQEnvelope,
    foreign_envelope,
    item_of,
    received_envelope,
)
from wrkr_rabbitmq._topology import RabbitMQTopology, declare_queue

logger = logging.getLogger("wrkr.rabbitmq")

Sender = Callable[[RabbitMQEnvelope], Awaitable[bool]]
Parker = Callable[[str, RabbitMQEnvelope], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RabbitMQReceipt:
    """What settling a delivery needs: the channel it came on, its tag, its envelope,
    and the consumer (a release stops it first)."""

    channel: RabbitMQChannel
    delivery_tag: int
    envelope: RabbitMQEnvelope
    consumer: RabbitMQConsumer


class RabbitMQConsumer(BrokerConsumer[RabbitMQReceipt]):
    """One consumer on one channel; ends when the channel closes or the consumer stops."""

    def __init__(self, channel: RabbitMQChannel, queue: str, worker: str,
                 send: Sender, park: Parker, now: Callable[[], datetime], *,
                 counted: bool) -> None:
        self.channel = channel
        self.queue = queue
        self._worker = worker
        self._counted = counted  # quorum: the broker counts deliveries
        self._send, self._park, self._now = send, park, now
        self._buffer: asyncio.Queue[RabbitMQIncoming | None] = asyncio.Queue()
        self._stopping: asyncio.Task[None] | None = None
        self._tag = ""
        self._events = ""  # the events exchange, known once started

    @property
    def is_open(self) -> bool:
        """Tell whether the channel is open: while it is, it holds what it delivered."""
        return not self.channel.is_closed

    async def start(self, topology: RabbitMQTopology) -> None:
        """Declare the queue (consuming a queue nobody subscribed yet is allowed) and consume."""
        await declare_queue(self.channel, topology, self.queue)
        self._events = topology.events
        self.channel.closing.add_done_callback(lambda _: self._buffer.put_nowait(None))
        self._tag = await self.channel.consume(
            topology.queue(self.queue), self._buffer.put_nowait,
            on_cancel=lambda: self._buffer.put_nowait(None))  # the queue was deleted

    async def next(self) -> Delivery[RabbitMQReceipt] | None:
        """Return the next delivery, or None once the channel has closed."""
        while (message := await self._buffer.get()) is not None:
            try:
                delivery = await self._admit(message)
            except RabbitMQChannelClosed:
                return None  # acking on a closed channel: the broker has it back
            if delivery is not None:
                return delivery
        return None

    async def _admit(self, message: RabbitMQIncoming) -> Delivery[RabbitMQReceipt] | None:
        """Turn a message into a delivery; park malformed ones and recount redelivered ones."""
        tag = message.delivery_tag
        try:
            envelope = self._envelope(message)
        except MalformedMessage as exc:
            logger.warning("parking a malformed message from queue %r: %s", self.queue, exc)
            await self._park(self.queue, foreign_envelope(message, str(exc), self._now()))
            self.channel.ack(tag)
            return None
        if self._counted:
            attempts = envelope.attempts + delivery_count(message)
        elif message.redelivered:
            await self._send(envelope.with_changes(attempts=envelope.attempts + 1,
                                                   to=f"q:{self.queue}"))
            self.channel.ack(tag)
            return None
        else:
            attempts = envelope.attempts
        item = item_of(envelope, self.queue, State.PROCESSING, attempts + 1, self._worker)
        return Delivery(item, RabbitMQReceipt(self.channel, tag, envelope, self))

    def _envelope(self, message: RabbitMQIncoming) -> RabbitMQEnvelope:
        """Read wrkr's envelope as this queue's copy, or adopt another application's event
        (see _foreign.py).

        Raises:
            MalformedMessage: neither a wrkr message nor a foreign event.
        """
        if is_foreign(message):
            return adopted_envelope(message, self._events, self.queue, self._now())
        return received_envelope(message).in_queue(self.queue)

    async def stop(self) -> None:
        """Stop consuming; give back what arrived but was not handed out, uncounted.

        Idempotent: a second caller waits for the first one's give-back to end.
        """
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        """Cancel, give back what is buffered, then end `next` (a stream still reading this
        consumer, after a release outside a stop, goes on with a new one)."""
        if self.channel.is_closed:
            return
        with contextlib.suppress(*DRIVER_ERRORS):
            await self.channel.cancel(self._tag)
            while not self._buffer.empty():
                message = self._buffer.get_nowait()
                if message is not None:
                    await self._give_back(message)
        self._buffer.put_nowait(None)

    async def _give_back(self, message: RabbitMQIncoming) -> None:
        """Return an unhanded message to the queue without counting an attempt."""
        try:
            envelope = self._envelope(message)
        except MalformedMessage:
            self.channel.reject(message.delivery_tag, requeue=True)
            return
        returned = delivery_count(message) if self._counted else int(message.redelivered)
        attempts = envelope.attempts + returned
        await self._send(envelope.with_changes(attempts=attempts, to=f"q:{self.queue}"))
        self.channel.ack(message.delivery_tag)

    async def close(self) -> None:
        """Close the channel; what it still holds goes back to the queue, counted."""
        with contextlib.suppress(*DRIVER_ERRORS):
            if not self.channel.is_closed:
                await self.channel.close()


def delivery_count(message: RabbitMQIncoming) -> int:
    """Return how often a quorum queue's message went back to it (``x-delivery-count``)."""
    count = message.headers.get("x-delivery-count", 0)
    return count if isinstance(count, int) else 0
