"""The durable record of subscriptions, kept in the broker itself.

AMQP 0-9-1 cannot list bindings (only the management plugin's HTTP API can, and it is
disabled on many servers, including this project's). The bindings route the events;
this record answers `queues_for` and lists the queues whose failed items `retry` and
`items` look through.

The record is one persistent message in the durable queue ``{prefix}.registry``,
a JSON object ``{"version": n, "subscriptions": [[queue, pattern], ...],
"queues": [...]}``. Taking the message (``basic.get`` without ack) is the lock: a
writer takes it, publishes the next version with a confirm, then acks the old one;
a reader takes it and rejects it back. If the holder dies, the broker returns the
message at once. While another process holds it, the queue looks empty for a few
milliseconds and the taker tries again (bounded). Should two versions ever coexist
(a writer died between its confirm and its ack), the highest wins. Each new version
is also published, confirmed, to the fanout exchange ``{prefix}.registry.changes``,
before the change returns: that is how publishers keep their view fresh (_view.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
import pika.spec  # type: ignore[import-untyped]

from wrkr import BackendUnavailable
from wrkr.backend import matches
from wrkr_rabbitmq._client import RabbitMQChannel, RabbitMQIncoming
from wrkr_rabbitmq._messages import PERSISTENT
from wrkr_rabbitmq._topology import RabbitMQTopology, declare

TAKE_TIMEOUT = 5.0


@dataclass(slots=True)
class RabbitMQSubscriptions:
    """One version of the subscription record."""

    version: int = 0
    subscriptions: set[tuple[str, str]] = field(default_factory=set)
    queues: set[str] = field(default_factory=set)

    def queues_for(self, name: str) -> list[str]:
        """Return the sorted queues whose patterns match event `name`."""
        return sorted({q for q, pattern in self.subscriptions if matches(pattern, name)})

    def add(self, queue: str, pattern: str) -> bool:
        """Add a subscription (and its queue); tell whether the record changed."""
        before = (len(self.subscriptions), len(self.queues))
        self.subscriptions.add((queue, pattern))
        self.queues.add(queue)
        return before != (len(self.subscriptions), len(self.queues))

    def add_queue(self, queue: str) -> bool:
        """Record a queue consumed without a subscription, so `retry` looks through it too."""
        if queue in self.queues:
            return False
        self.queues.add(queue)
        return True

    def remove(self, queue: str, pattern: str) -> bool:
        """Remove a subscription (the queue stays known); tell whether the record changed."""
        if (queue, pattern) not in self.subscriptions:
            return False
        self.subscriptions.discard((queue, pattern))
        return True

    def encode(self) -> bytes:
        """Return the JSON form stored in the registry queue."""
        return orjson.dumps({"version": self.version, "queues": sorted(self.queues),
                             "subscriptions": sorted(self.subscriptions)})

    @classmethod
    def decode(cls, body: bytes) -> RabbitMQSubscriptions:
        """Rebuild a record from its JSON form."""
        data = orjson.loads(body)
        return cls(int(data["version"]), {(q, p) for q, p in data["subscriptions"]},
                   set(data["queues"]))


class RabbitMQRegistry:
    """Reads and changes the subscription record of one namespace."""

    def __init__(self, topology: RabbitMQTopology) -> None:
        self.queue = topology.registry
        self._topology = topology
        self._lock = asyncio.Lock()  # one taker per process; other processes retry

    async def ensure(self, channel: RabbitMQChannel) -> None:
        """Create the registry queue and an empty record if the queue is new."""
        if await declare(channel, self._topology, self.queue) == 0:
            async with self._lock:
                taken = await self._take(channel, timeout=0.2)
                if not taken:
                    await self._put(channel, RabbitMQSubscriptions())
                await self._settle(channel, taken, keep=True)

    async def read(self, channel: RabbitMQChannel) -> RabbitMQSubscriptions:
        """Return the current record."""
        async with self._lock:
            taken = await self._take(channel, timeout=TAKE_TIMEOUT)
            await self._settle(channel, taken, keep=True)
            return _newest(taken)

    async def change(
        self, channel: RabbitMQChannel, edit: Callable[[RabbitMQSubscriptions], bool]
    ) -> None:
        """Apply `edit` to the record; store a new version when it returns True."""
        async with self._lock:
            taken = await self._take(channel, timeout=TAKE_TIMEOUT)
            record = _newest(taken)
            changed = edit(record)
            if changed:
                record.version += 1
                await self._put(channel, record)
            await self._settle(channel, taken, keep=not changed)
            if changed:
                await self._announce(channel, record)

    async def _take(self, channel: RabbitMQChannel, timeout: float) -> list[RabbitMQIncoming]:
        """Take every version in the queue, retrying while another process holds it."""
        deadline, pause = time.monotonic() + timeout, 0.002
        while True:
            taken = await _drain(channel, self.queue)
            if taken:
                return taken
            if time.monotonic() > deadline:
                if timeout < 1:
                    return []
                raise BackendUnavailable(
                    f"the subscription record {self.queue!r} stayed taken for {timeout} s")
            await asyncio.sleep(pause)
            pause = min(0.1, pause * 2)

    async def _put(self, channel: RabbitMQChannel, record: RabbitMQSubscriptions) -> None:
        """Publish a version, confirmed."""
        properties = pika.spec.BasicProperties(delivery_mode=PERSISTENT,
                                               content_type="application/json")
        await channel.publish(record.encode(), exchange="", routing_key=self.queue,
                              properties=properties)

    async def _announce(self, channel: RabbitMQChannel, record: RabbitMQSubscriptions) -> None:
        """Publish a new version to every publisher's view, confirmed."""
        await channel.publish(record.encode(), exchange=self._topology.registry_changes,
                              routing_key="", properties=pika.spec.BasicProperties(
                                  content_type="application/json"))

    async def _settle(
        self, channel: RabbitMQChannel, taken: list[RabbitMQIncoming], *, keep: bool
    ) -> None:
        """Give the newest version back when `keep`, ack everything else."""
        newest = _newest_message(taken)
        for message in taken:
            if keep and message is newest:
                channel.reject(message.delivery_tag, requeue=True)
            else:
                channel.ack(message.delivery_tag)


async def _drain(channel: RabbitMQChannel, queue: str) -> list[RabbitMQIncoming]:
    """Take (unacked) every message in `queue`."""
    taken: list[RabbitMQIncoming] = []
    while True:
        message = await channel.get(queue)
        if message is None:
            return taken
        taken.append(message)


def _newest_message(taken: list[RabbitMQIncoming]) -> RabbitMQIncoming | None:
    """Return the message holding the highest version."""
    return max(taken, key=lambda m: RabbitMQSubscriptions.decode(m.body).version, default=None)


def _newest(taken: list[RabbitMQIncoming]) -> RabbitMQSubscriptions:
    """Return the highest version taken, or an empty record."""
    newest = _newest_message(taken)
    return RabbitMQSubscriptions() if newest is None else RabbitMQSubscriptions.decode(newest.body)
