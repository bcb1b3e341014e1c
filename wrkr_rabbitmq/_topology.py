"""Names and declarations of everything wrkr creates in RabbitMQ, and the delay-level chain.

One namespace (the `prefix` option, default ``wrkr``; one topic segment) holds:

    {p}.events          durable topic exchange; routing key = event name
    {p}.q.{queue}       one durable queue per wrkr queue, bound to {p}.events by each
                        subscription pattern
    {p}.failed.{queue}  the queue's parked (failed) items, error history in headers
    {p}.due             items whose delay has (nearly) elapsed; the forwarder holds the
                        sub-second remainder, then routes them to their destination
    {p}.registry        one message: the subscription record (see _registry.py)
    {p}.registry.changes  fanout exchange: each new version of the record, to every
                        publisher's exclusive queue (see _view.py)

and every namespace of a vhost with the same queue type shares one delay chain
(declared once, never deleted), ``{c}`` = ``wrkr-delay-quorum-v1`` or ``wrkr-delay-v1``:

    {c}.{k}             k = 0..25: a topic exchange and a queue whose messages live
                        2**k seconds, then dead-letter into level k-1
    {c}.due             where level 0 dead-letters; routes to each namespace's {p}.due
    {c}.unrouted        (quorum) the chain end's alternate exchange: what no
                        namespace's {p}.due takes goes there, since at-least-once
                        dead-lettering would otherwise keep and retry it for ever
    {c}.limbo           (quorum) the queue bound to it. Every forwarder consumes it and
                        moves each message to its namespace's {p}.due, dropping it only
                        when that queue does not exist (a deleted namespace). A broker
                        that is booting recovers queues before bindings, so an item can
                        reach the chain end before its {p}.due binding is back; a sink
                        here (earlier versions kept a TTL-0 queue) would lose it.

Queue types (the `queue_type` option). ``quorum``, the default: every queue above is a
quorum queue (``x-queue-type: quorum``, replicated by Raft on a cluster) with
``x-overflow: reject-publish`` (a length limit set by a policy refuses publishes, which
wrkr reports, instead of dropping the oldest message), and the chain's queues
dead-letter ``at-least-once``: a message leaves a level only once the next one has it,
so a node failing mid-hop loses nothing (RabbitMQ 3.10+). ``classic``: durable classic
queues, dead-lettering at most once, the chain ``wrkr-delay-v1`` of wrkr before quorum
queues. A queue declared earlier with the other type makes the broker refuse the
declaration (PRECONDITION_FAILED); that is `InvalidConfig` saying how to migrate.

Quorum queues set no ``x-delivery-limit``: on RabbitMQ 3.10 (tested here) there is none
by default. RabbitMQ 4.0 gives quorum queues a default limit of 20 deliveries, which
would drop a message wrkr takes back often (the subscription record, read by taking it;
failed items, listed the same way): on 4.x raise that limit by policy, or use classic
queues. Untested there.

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from wrkr import InvalidConfig
from wrkr_rabbitmq._client import RabbitMQChannel, RabbitMQChannelClosed

DELAY_LEVELS = 26
MAX_COUNTDOWN = 2**DELAY_LEVELS - 1
QUEUE_TYPES = ("quorum", "classic")
CHAINS = {"quorum": "wrkr-delay-quorum-v1", "classic": "wrkr-delay-v1"}
MAX_ROUTING_KEY = 255
PRECONDITION_FAILED = 406
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


def level(k: int, chain: str = CHAINS["quorum"]) -> str:
    """Return the exchange and queue name of delay level `k` (2**k seconds) of `chain`."""
    return f"{chain}.{k}"


@dataclass(frozen=True, slots=True)
class RabbitMQTopology:
    """The names of one wrkr namespace on the broker, and the type of its queues."""

    prefix: str
    queue_type: str = "quorum"

    def __post_init__(self) -> None:
        if not _SEGMENT.fullmatch(self.prefix):
            raise InvalidConfig(f"invalid RabbitMQ prefix {self.prefix!r}: expected letters, "
                             "digits, '_' or '-' (one routing-key segment)")
        if self.queue_type not in QUEUE_TYPES:
            raise InvalidConfig(f"invalid RabbitMQ queue_type {self.queue_type!r}: expected "
                                f"{' or '.join(map(repr, QUEUE_TYPES))}")

    @property
    def counts_deliveries(self) -> bool:
        """Tell whether the broker counts deliveries (``x-delivery-count``: quorum queues)."""
        return self.queue_type == "quorum"

    @property
    def chain(self) -> str:
        """The name of the delay chain this namespace's queue type uses."""
        return CHAINS[self.queue_type]

    @property
    def limbo(self) -> str:
        """The chain's queue for what reached its end unrouted (quorum chains only)."""
        return f"{self.chain}.limbo"

    @property
    def chain_probe(self) -> str:
        """The queue `declare_chain` declares last: if it exists, the chain is complete."""
        return self.limbo if self.counts_deliveries else self.level(DELAY_LEVELS - 1)

    @property
    def chain_end(self) -> str:
        """The exchange where the chain's level 0 dead-letters."""
        return f"{self.chain}.due"

    def level(self, k: int) -> str:
        """Return the exchange and queue name of this chain's level `k`."""
        return level(k, self.chain)

    def arguments(self, **extra: Any) -> dict[str, Any]:
        """Return the declaration arguments of a queue of this type, `extra` added."""
        if self.queue_type == "classic":
            return extra
        return {"x-queue-type": "quorum", "x-overflow": "reject-publish", **extra}

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

    @property
    def registry_changes(self) -> str:
        """The fanout exchange each new version of the subscription record goes to."""
        return f"{self.prefix}.registry.changes"

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


@contextmanager
def _declaring(name: str, topology: RabbitMQTopology) -> Iterator[None]:
    """Turn the broker refusing a queue declared with other arguments into `InvalidConfig`.

    The broker names the first argument that differs (``x-queue-type``, ``x-overflow``...);
    a queue declared with the other `queue_type` differs in several.

    Raises:
        InvalidConfig: the queue exists with other arguments; says how to migrate.
    """
    try:
        yield
    except RabbitMQChannelClosed as exc:
        if exc.reply_code != PRECONDITION_FAILED or "inequivalent arg" not in str(exc):
            raise
        wanted = topology.queue_type
        other = next(kind for kind in QUEUE_TYPES if kind != wanted)
        said = str(exc).split("PRECONDITION_FAILED - ", 1)[-1].removesuffix(")").removesuffix('"')
        raise InvalidConfig(
            f"RabbitMQ queue {name!r} exists with other arguments than a {wanted} queue of "
            f"wrkr's (queue_type={wanted}; the broker says: {said}). If it was declared with "
            f"queue_type={other}, connect with ?queue_type={other} to keep using it, or "
            f"migrate: stop wrkr's workers and publishers, let the queue drain, delete it "
            f"(rabbitmqctl delete_queue {name}) and let wrkr declare it again") from exc


async def declare(channel: RabbitMQChannel, topology: RabbitMQTopology, name: str,
                  **arguments: Any) -> int:
    """Declare a durable queue of the namespace's type; return how many messages it holds.

    Raises:
        InvalidConfig: the queue exists with the other type (the channel is closed then).
    """
    with _declaring(name, topology):
        return await channel.queue_declare(name, arguments=topology.arguments(**arguments))


async def declare_chain(channel: RabbitMQChannel, topology: RabbitMQTopology) -> None:
    """Declare the namespace type's delay chain, end first, `chain_probe` last (idempotent)."""
    alternate: dict[str, Any] = {}
    unrouted = f"{topology.chain}.unrouted"
    if topology.counts_deliveries:  # quorum: at-least-once needs a route for everything
        await channel.exchange_declare(unrouted, "fanout")
        alternate = {"alternate-exchange": unrouted}
    await channel.exchange_declare(topology.chain_end, "topic", arguments=alternate)
    for k in range(DELAY_LEVELS):
        await _declare_level(channel, topology, k)
    if topology.counts_deliveries:
        await declare(channel, topology, topology.limbo)
        await channel.queue_bind(topology.limbo, unrouted, "")
        # The TTL-0 sink queue earlier versions bound there dropped what it got: delete it
        # (and so its binding) only now that the limbo queue takes everything. Deleting a
        # queue that is gone already is a no-op.
        await channel.queue_delete(unrouted)


async def _declare_level(channel: RabbitMQChannel, topology: RabbitMQTopology, k: int) -> None:
    """Declare level k: its exchange, its TTL queue, and the bindings for digits 1 and 0."""
    name, below = topology.level(k), topology.level(k - 1) if k else topology.chain_end
    await channel.exchange_declare(name, "topic")
    arguments: dict[str, Any] = {"x-message-ttl": 1000 * 2**k, "x-dead-letter-exchange": below}
    if topology.counts_deliveries:
        arguments["x-dead-letter-strategy"] = "at-least-once"
    await declare(channel, topology, name, **arguments)
    await channel.queue_bind(name, name, _digit_pattern(k, "1"))
    await channel.exchange_bind(below, name, _digit_pattern(k, "0"))


async def declare_namespace(channel: RabbitMQChannel, topology: RabbitMQTopology) -> None:
    """Declare the events exchange and the due queue fed by the chain (idempotent)."""
    await channel.exchange_declare(topology.events, "topic")
    await channel.exchange_declare(topology.registry_changes, "fanout")
    await declare(channel, topology, topology.due)
    await channel.queue_bind(topology.due, topology.chain_end,
                             "*." * DELAY_LEVELS + f"{topology.prefix}.#")


async def declare_queue(channel: RabbitMQChannel, topology: RabbitMQTopology, queue: str) -> None:
    """Declare wrkr queue `queue` and its failed queue (idempotent)."""
    await declare(channel, topology, topology.queue(queue))
    await declare(channel, topology, topology.failed(queue))


async def delete_namespace(
    channel: RabbitMQChannel, topology: RabbitMQTopology, queues: list[str]
) -> None:
    """Delete every exchange and queue of the namespace (tests, teardown); the chain stays."""
    wrkr_queues = [name for q in queues for name in (topology.queue(q), topology.failed(q))]
    for queue in [topology.due, topology.registry, *wrkr_queues]:
        await channel.queue_delete(queue)
    await channel.exchange_delete(topology.events)
    await channel.exchange_delete(topology.registry_changes)
