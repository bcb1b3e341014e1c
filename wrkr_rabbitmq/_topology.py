"""Names and declarations of everything wrkr creates in RabbitMQ, and the delay-level chain.

One namespace (the `prefix` option, default ``wrkr``; one topic segment) holds:

    {p}.events          durable topic exchange; routing key = event name
    {p}.q.{queue}       one durable classic queue per wrkr queue, bound to {p}.events
                        by each subscription pattern
    {p}.failed.{queue}  the queue's parked (failed) items, error history in headers
    {p}.due             items whose delay has (nearly) elapsed; the forwarder holds the
                        sub-second remainder, then routes them to their destination
    {p}.registry        one message: the subscription record (see _registry.py)

and every namespace of a vhost shares the delay chain (declared once, never deleted):

    wrkr-delay-v1.{k}   k = 0..25: a topic exchange and a queue whose messages live
                        2**k seconds, then dead-letter into level k-1
    wrkr-delay-v1.due   where level 0 dead-letters; routes to each namespace's {p}.due

The chain follows NServiceBus and kombu's native delayed delivery: the routing key of
a delayed message is its countdown in seconds as 26 binary digits, most significant
first, then the namespace and the destination (``0.0.1.0....wrkr.user.added``).
Exchange k sends the message to queue k when digit k is 1 and straight on to exchange
k-1 when it is 0, so a message waits exactly its countdown, in at most 26 hops,
whatever else is pending. There is no head-of-line blocking: every message in queue k
has the same TTL, so the head always expires first. 26 levels reach 2**26 - 1
seconds, about 2.1 years.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from wrkr import InvalidConfig
from wrkr_rabbitmq._client import RabbitMQChannel

DELAY_LEVELS = 26
MAX_COUNTDOWN = 2**DELAY_LEVELS - 1
CHAIN = "wrkr-delay-v1"
CHAIN_END = f"{CHAIN}.due"
MAX_ROUTING_KEY = 255
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


def level(k: int) -> str:
    """Return the exchange and queue name of delay level `k` (2**k seconds)."""
    return f"{CHAIN}.{k}"


@dataclass(frozen=True, slots=True)
class RabbitMQTopology:
    """The names of one wrkr namespace on the broker."""

    prefix: str

    def __post_init__(self) -> None:
        if not _SEGMENT.fullmatch(self.prefix):
            raise InvalidConfig(f"invalid RabbitMQ prefix {self.prefix!r}: expected letters, "
                             "digits, '_' or '-' (one routing-key segment)")

    @property
    def events(self) -> str:
        """The topic exchange every event is published to."""
        return f"{self.prefix}.events"

    @property
    def due(self) -> str:
        """The queue where this namespace's delayed items leave the chain."""
        return f"{self.prefix}.due"

    @property
    def registry(self) -> str:
        """The queue that holds the subscription record."""
        return f"{self.prefix}.registry"

    def queue(self, queue: str) -> str:
        """Return the broker queue of wrkr queue `queue`."""
        return f"{self.prefix}.q.{queue}"

    def failed(self, queue: str) -> str:
        """Return the broker queue holding `queue`'s failed items."""
        return f"{self.prefix}.failed.{queue}"


def countdown_routing_key(countdown: int, prefix: str, destination: str) -> str:
    """Return the delay-chain routing key: 26 binary digits, the namespace, the destination.

    The destination is there for people reading the queues (the forwarder reads it
    from the headers), so it is cut to keep the key within AMQP's 255 bytes.

    Raises:
        ValueError: the countdown is outside 1 .. MAX_COUNTDOWN seconds.
    """
    if not 0 < countdown <= MAX_COUNTDOWN:
        raise ValueError(f"countdown {countdown} s is outside 1 .. {MAX_COUNTDOWN} s")
    key = ".".join(f"{countdown:0{DELAY_LEVELS}b}") + f".{prefix}.{destination}"
    return key.encode()[:MAX_ROUTING_KEY].decode(errors="ignore")


def entry_level(countdown: int) -> int:
    """Return the level to publish a countdown into: its highest set bit (skips hops)."""
    return countdown.bit_length() - 1


def _digit_pattern(k: int, digit: str) -> str:
    """Return the binding key matching `digit` at level k's position (most significant first)."""
    return "*." * (DELAY_LEVELS - 1 - k) + digit + ".#"


async def declare_chain(channel: RabbitMQChannel) -> None:
    """Declare the shared delay chain, end first and level 25 last (idempotent)."""
    await channel.exchange_declare(CHAIN_END, "topic")
    for k in range(DELAY_LEVELS):
        await _declare_level(channel, k)


async def _declare_level(channel: RabbitMQChannel, k: int) -> None:
    """Declare level k: its exchange, its TTL queue, and the bindings for digits 1 and 0."""
    name, below = level(k), level(k - 1) if k else CHAIN_END
    await channel.exchange_declare(name, "topic")
    arguments: dict[str, Any] = {"x-message-ttl": 1000 * 2**k, "x-dead-letter-exchange": below}
    await channel.queue_declare(name, arguments=arguments)
    await channel.queue_bind(name, name, _digit_pattern(k, "1"))
    await channel.exchange_bind(below, name, _digit_pattern(k, "0"))


async def declare_namespace(channel: RabbitMQChannel, topology: RabbitMQTopology) -> None:
    """Declare the events exchange and the due queue fed by the chain (idempotent)."""
    await channel.exchange_declare(topology.events, "topic")
    await channel.queue_declare(topology.due)
    await channel.queue_bind(topology.due, CHAIN_END, "*." * DELAY_LEVELS + f"{topology.prefix}.#")


async def declare_queue(channel: RabbitMQChannel, topology: RabbitMQTopology, queue: str) -> None:
    """Declare wrkr queue `queue` and its failed queue (idempotent)."""
    await channel.queue_declare(topology.queue(queue))
    await channel.queue_declare(topology.failed(queue))


async def delete_namespace(
    channel: RabbitMQChannel, topology: RabbitMQTopology, queues: list[str]
) -> None:
    """Delete every exchange and queue of the namespace (tests, teardown); the chain stays."""
    wrkr_queues = [name for q in queues for name in (topology.queue(q), topology.failed(q))]
    for queue in [topology.due, topology.registry, *wrkr_queues]:
        await channel.queue_delete(queue)
    await channel.exchange_delete(topology.events)
