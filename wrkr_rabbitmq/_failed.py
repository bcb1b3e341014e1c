"""Reading and retrying the per-queue failed queues.

AMQP has no way to look into a queue without taking its messages, so both operations
take them with ``basic.get`` (unacked) and hand back what they do not move: listing
rejects every message back with requeue (the broker restores their order), `retry`
republishes the matching ones to their queue and acks them. While a listing runs,
the messages it holds are invisible to another listing for those few milliseconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime

from wrkr.backend import Item, ItemFilter, State, to_micros
from wrkr_rabbitmq._client import RabbitMQChannel, RabbitMQIncoming
from wrkr_rabbitmq._messages import (
    MalformedMessage,
    RabbitMQEnvelope,
    foreign_envelope,
    item_of,
    received_envelope,
)
from wrkr_rabbitmq._topology import RabbitMQTopology

DEFAULT_LIMIT = 10_000

Sender = Callable[[RabbitMQEnvelope], Awaitable[bool]]


def _envelope(message: RabbitMQIncoming, now: datetime) -> RabbitMQEnvelope:
    """Read a failed message; a malformed one parked earlier still reads as an item.

    A parked message carries the header wrkr gave it, whatever its body: the header is
    read with the body set aside, since a body that is not JSON is why it was parked.
    """
    try:
        envelope = received_envelope(dataclasses.replace(message, body=b"{}"))
    except MalformedMessage as exc:
        return foreign_envelope(message, str(exc), now)
    return RabbitMQEnvelope(envelope.meta, message.body)


async def _take(channel: RabbitMQChannel, queue: str, limit: int) -> list[RabbitMQIncoming]:
    """Take up to `limit` messages from `queue`, unacked, oldest first."""
    taken: list[RabbitMQIncoming] = []
    while len(taken) < limit:
        message = await channel.get(queue)
        if message is None:
            break
        taken.append(message)
    return taken


def _give_back(channel: RabbitMQChannel, taken: list[RabbitMQIncoming]) -> None:
    """Requeue everything taken and not acked, in one frame."""
    if taken:
        channel.nack(max(m.delivery_tag for m in taken), multiple=True, requeue=True)


async def list_failed(
    channel: RabbitMQChannel, topology: RabbitMQTopology, queue: str,
    where: ItemFilter, now: datetime,
) -> list[Item]:
    """Return the failed items of `queue` that match `where`, oldest first."""
    taken = await _take(channel, topology.failed(queue), DEFAULT_LIMIT)
    _give_back(channel, taken)
    items = []
    for message in taken:
        envelope = _envelope(message, now)
        attempts = envelope.attempts
        items.append(item_of(envelope, queue, State.FAILED, attempts))
    return [item for item in items if where.matches(item)]


async def retry_failed(
    channel: RabbitMQChannel, topology: RabbitMQTopology, queue: str,
    item_id: str, send: Sender, now: datetime,
) -> int:
    """Move the failed items of `queue` with id `item_id` back to it, ready now; count them."""
    taken = await _take(channel, topology.failed(queue), DEFAULT_LIMIT)
    moved: list[RabbitMQIncoming] = []
    for message in taken:
        envelope = _envelope(message, now)
        if envelope.item_id == item_id:
            await send(envelope.with_changes(attempts=0, due=to_micros(now), to=f"q:{queue}"))
            moved.append(message)
    for message in moved:
        channel.ack(message.delivery_tag)
    moved_tags = {m.delivery_tag for m in moved}
    _give_back(channel, [m for m in taken if m.delivery_tag not in moved_tags])
    return len(moved)
