"""The forwarder: moves items from the due queue to their destination at their due time.

Items leave the delay chain up to a second and a bit early (the chain counts whole
seconds, minus a margin). The forwarder holds each one, unacked, until it is due, then
publishes it to its destination (confirmed) and acks it: at most ~1.25 s of items in
memory, never long delays, and a forwarder that dies only hands them back to the due
queue for another to pick up. Every process that consumes runs one; they compete on
the due queue like any consumers.

On quorum chains the forwarder also empties the chain's limbo queue (see _topology.py):
each message there goes to the due queue of the namespace its routing key names,
confirmed, then is acked; one whose namespace has no due queue any more is dropped.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from typing import Any

from wrkr import BackendUnavailable, InvalidConfig
from wrkr_rabbitmq._client import RabbitMQChannel, RabbitMQIncoming
from wrkr_rabbitmq._messages import MalformedMessage, RabbitMQEnvelope, received_envelope
from wrkr_rabbitmq._routing import send
from wrkr_rabbitmq._topology import DELAY_LEVELS, RabbitMQTopology

logger = logging.getLogger("wrkr.rabbitmq")

FORWARD_PREFETCH = 20_000
HOLD_LIMIT_MICROS = 5_000_000

_Held = tuple[int, int, RabbitMQEnvelope, RabbitMQIncoming]


def _now_micros() -> int:
    return time.time_ns() // 1000


class RabbitMQForwarder:
    """Forwards one namespace's due items on a channel it is given; see the module docstring.

    `BrokerBackend` runs it (through `RabbitMQBroker.serve`) while the backend has
    consumers, and runs it again on a new channel after the connection was lost.
    """

    def __init__(self, topology: RabbitMQTopology) -> None:
        self._topology = topology
        self._order = itertools.count()

    async def run(self, channel: RabbitMQChannel) -> None:
        """Forward until the channel closes; what was held then goes back to the due queue.

        Raises:
            BackendUnavailable: the channel closed (the connection was lost).
        """
        await self._serve(channel)
        raise BackendUnavailable("the forwarder's channel closed")

    async def _serve(self, channel: RabbitMQChannel) -> None:
        """Consume the due queue and forward each item when due, until the channel closes."""
        held: list[_Held] = []
        stranded: list[RabbitMQIncoming] = []
        wake = asyncio.Event()

        def on_message(message: RabbitMQIncoming) -> None:
            self._hold(channel, message, held)
            wake.set()

        def on_stranded(message: RabbitMQIncoming) -> None:
            stranded.append(message)
            wake.set()

        await channel.consume(self._topology.due, on_message)
        if self._topology.counts_deliveries:
            await channel.consume(self._topology.limbo, on_stranded)
        while not channel.is_closed:
            await self._wait(channel, held, wake)
            await self._forward_due(channel, held)
            if stranded:
                await self._rescue(channel, stranded)

    async def _rescue(self, channel: RabbitMQChannel, stranded: list[RabbitMQIncoming]) -> None:
        """Move limbo messages to their namespace's due queue; drop those with none."""
        batch = stranded[:]
        stranded.clear()
        for message in batch:
            try:
                envelope = received_envelope(message)
                owner = RabbitMQTopology(message.routing_key.split(".")[DELAY_LEVELS],
                                         self._topology.queue_type)
            except (MalformedMessage, IndexError, InvalidConfig) as exc:
                logger.warning("dropping a foreign message from %s: %s",
                               self._topology.limbo, exc)
                channel.reject(message.delivery_tag, requeue=False)
                continue
            due = owner.due
            routed = await channel.publish(envelope.body, exchange="", routing_key=due,
                                           properties=envelope.properties(), mandatory=True)
            if not routed:
                logger.info("dropping delayed item %s: its namespace's %s is gone",
                            envelope.item_id, due)
            channel.ack(message.delivery_tag)

    def _hold(self, channel: RabbitMQChannel, message: RabbitMQIncoming, held: list[_Held]) -> None:
        """Keep a message until it is due; drop (with a log line) what is not a wrkr message.

        An item due beyond the hold limit (a delay past the chain's two years, or a
        clock jump) is forwarded at once: routing sends it round the chain again.
        """
        try:
            envelope = received_envelope(message)
        except MalformedMessage as exc:
            logger.warning("dropping a foreign message from %s: %s", self._topology.due, exc)
            channel.reject(message.delivery_tag, requeue=False)
            return
        now = _now_micros()
        at = now if envelope.due_micros - now > HOLD_LIMIT_MICROS else envelope.due_micros
        heapq.heappush(held, (at, next(self._order), envelope, message))

    @staticmethod
    async def _wait(channel: RabbitMQChannel, held: list[_Held], wake: asyncio.Event) -> None:
        """Sleep until the earliest held item is due, a new one arrives or the channel closes."""
        timeout = (held[0][0] - _now_micros()) / 1_000_000 if held else None
        if timeout is not None and timeout <= 0:
            return
        wake.clear()
        waiter = asyncio.ensure_future(wake.wait())
        closing: asyncio.Future[Any] = channel.closing
        try:
            await asyncio.wait({waiter, closing}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()

    async def _forward_due(self, channel: RabbitMQChannel, held: list[_Held]) -> None:
        """Publish every held item that is due (confirmed, in due order), then ack them."""
        now = _now_micros()
        batch: list[_Held] = []
        while held and held[0][0] <= now:
            batch.append(heapq.heappop(held))
        if not batch or channel.is_closed:
            return
        await asyncio.gather(*(send(channel, self._topology, env, now) for _, _, env, _ in batch))
        for *_, message in batch:
            channel.ack(message.delivery_tag)
