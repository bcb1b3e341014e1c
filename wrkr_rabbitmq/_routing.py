"""Where to publish an envelope so that it reaches its destination at its due time.

    due now or past                  -> the destination itself: the events exchange
                                        (routing key = event name) or one queue
    due in under 1 s + MARGIN        -> the due queue; the forwarder holds the rest
    due later                        -> the delay chain with countdown
                                        floor(remaining - MARGIN) seconds; the message
                                        reaches the due queue up to 1 s + MARGIN early
                                        and the forwarder holds the remainder

MARGIN absorbs the time a message spends hopping through the chain, so the chain
never makes an item late; the forwarder's in-process hold makes it on time.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import pika.exceptions  # type: ignore[import-untyped]

from wrkr_rabbitmq._client import RabbitMQChannel, RabbitMQChannelClosed, RabbitMQCommitUncertain
from wrkr_rabbitmq._messages import RabbitMQEnvelope
from wrkr_rabbitmq._topology import (
    MAX_COUNTDOWN,
    RabbitMQTopology,
    countdown_routing_key,
    entry_level,
)

MARGIN = 0.25


def route(
    topology: RabbitMQTopology, envelope: RabbitMQEnvelope, now_micros: int
) -> tuple[str, str]:
    """Return (exchange, routing key) for `envelope` at time `now_micros`."""
    remaining = (envelope.due_micros - now_micros) / 1_000_000
    if remaining <= 0:
        return destination(topology, envelope.destination)
    countdown = min(MAX_COUNTDOWN, math.floor(remaining - MARGIN))
    if countdown < 1:
        return "", topology.due
    key = countdown_routing_key(countdown, topology.prefix, envelope.destination)
    return topology.level(entry_level(countdown)), key


def destination(topology: RabbitMQTopology, to: str) -> tuple[str, str]:
    """Return (exchange, routing key) of a destination, ``e:<name>`` or ``q:<queue>``."""
    kind, _, name = to.partition(":")
    if kind == "e":
        return topology.events, name
    if kind == "q":
        return "", topology.queue(name)
    raise ValueError(f"unknown destination {to!r}")


async def send(
    channel: RabbitMQChannel,
    topology: RabbitMQTopology,
    envelope: RabbitMQEnvelope,
    now_micros: int,
    *,
    mandatory: bool = False,
) -> bool:
    """Publish `envelope` persistently towards its destination; wait for the confirm.

    Returns:
        False when the broker returned it unroutable (only with `mandatory`: no queue
        is subscribed to the event), else True.
    """
    exchange, key = route(topology, envelope, now_micros)
    return await channel.publish(envelope.body, exchange=exchange, routing_key=key,
                                 properties=envelope.properties(), mandatory=mandatory)


async def send_batch(
    channel: RabbitMQChannel,
    topology: RabbitMQTopology,
    envelopes: Sequence[RabbitMQEnvelope],
    now_micros: int,
) -> list[bool]:
    """Publish `envelopes` persistently, mandatory, as one transaction on `channel`.

    `channel` must be transactional and between transactions. The publishes and the
    tx.commit go out together (one socket write); the broker stores nothing before
    it commits. A failure before tx.commit is sent rolls the transaction back (if the
    channel still lives); the channel is then between transactions again.

    Returns:
        Per envelope, in order, whether it reached a queue (False: returned unroutable).

    Raises:
        RabbitMQChannelClosed: the broker refused a message and closed the channel (it
            discards the transaction), or the channel closed before tx.commit was sent.
        RabbitMQCommitUncertain: the connection was lost after tx.commit was sent.
        pika.exceptions.AMQPError: pika could not encode a message (rolled back).
    """
    try:
        for envelope in envelopes:
            exchange, key = route(topology, envelope, now_micros)
            channel.publish_in_transaction(envelope.body, exchange=exchange, routing_key=key,
                                           properties=envelope.properties())
    except BaseException:
        with contextlib.suppress(RabbitMQChannelClosed, pika.exceptions.AMQPError, OSError):
            if not channel.is_closed:
                await channel.rollback()
        raise
    try:
        returned = await channel.commit()
    except RabbitMQChannelClosed as exc:
        if _broker_refused(exc):
            raise  # a channel error: the broker dropped the transaction, nothing stored
        raise RabbitMQCommitUncertain(exc) from exc
    return [envelope.item_id not in returned for envelope in envelopes]


def _broker_refused(exc: RabbitMQChannelClosed) -> bool:
    """Tell whether the broker closed the channel for an error of ours (4xx codes)."""
    return 400 <= exc.reply_code < 500
