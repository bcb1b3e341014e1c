"""RabbitMQBackend: wrkr on RabbitMQ (3.10 or later, no plugins needed).

URL:
    ``amqp://user:password@host:5672/vhost?prefix=wrkr`` (``amqps://`` for TLS). The
    vhost is the URL path (``/`` or ``%2F`` for the default one). Options, as query
    parameters or keyword arguments of `Wrkr.from_url` / `RabbitMQBackend`:

    prefix  the namespace of every exchange and queue wrkr creates (default ``wrkr``);
            two apps see each other's events only within one namespace.

    pika's own query parameters (``heartbeat``, ``connection_attempts``, ``ssl_options``...)
    pass through.

Capabilities:
    DELAY       any delay from a millisecond to two years and beyond, held by the broker
                (a TTL delay-level chain, see _topology.py) and a sub-second in-process
                hold (see _forwarder.py); durable across broker restarts.
    WILDCARDS   AMQP topic patterns, matched by the broker.
    FAILED      per-queue failed queues: list them (`items(state=FAILED)`), `retry` them.
    Not QUERY, CANCEL, ONCE_EVERY or ARCHIVE: a broker cannot look items up by name or
    tid, delete them in place, or keep acked ones. Those raise `NotSupported`.

Topology (one namespace, see _topology.py): a durable topic exchange ``{p}.events``,
routing key = event name; per wrkr queue a durable queue ``{p}.q.{queue}`` bound by
each subscription pattern and a ``{p}.failed.{queue}``; ``{p}.due`` where delayed items
leave the delay chain; the subscription record ``{p}.registry`` (see _registry.py: AMQP
cannot list bindings). The delay chain itself (``wrkr-delay-v1.*``) is shared by every
namespace of the vhost, declared once and never deleted.

Guarantees and limits:
    * Messages are persistent. One message is published with a publisher confirm; a
      batch of several is one AMQP transaction (publishes, then tx.commit) on a
      transactional channel of its own, so no half of a batch is stored: the broker
      holds the publishes until tx.commit and drops them if the channel or connection
      closes first; a client-side failure before tx.commit rolls them back. Then
      `BackendUnavailable` is raised, nothing stored. Messages that reach no queue come
      back as basic.return before commit-ok, so their ids are left out.
    * The window that remains is tx.commit itself: a connection lost after tx.commit
      was sent and before commit-ok arrived leaves the outcome unknown (the broker may
      have committed), and `BackendUnavailable` says so; publishing the batch again may
      store it twice. RabbitMQ also documents that a broker failing during tx.commit
      may leave a transaction's effects in some of its queues only.
    * Fan-out happens when an item becomes due: a delayed event reaches the queues
      subscribed at its due time. One item id per published event, shared by its copies.
    * The lease is the consumer's channel: unacked items return the moment the
      connection dies. RabbitMQ's ``consumer_timeout`` (default 30 minutes, a server
      setting; 3.10 has no per-queue override) closes a channel whose delivery stays
      unacked longer: keep handler timeouts below it, or raise it in rabbitmq.conf
      (``consumer_timeout = 7200000`` for two hours).
    * Retries (`nack`) and released items go to the one queue they came from, through
      the delay chain when they are due later.
    * Consumers and the forwarder reconnect by themselves (0.1 s doubling to 2 s).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Self

from yarl import URL

from wrkr._errors import BackendUnavailable, ItemNotFound, LeaseLost, NotStarted, NotSupported
from wrkr.backend import (
    Backend,
    Capability,
    Delivery,
    ErrorRecord,
    Item,
    ItemFilter,
    Message,
    State,
    new_item_id,
    redact,
)
from wrkr_rabbitmq._client import RabbitMQChannel, RabbitMQChannelClosed
from wrkr_rabbitmq._connection import DRIVER_ERRORS, RabbitMQConnector, unavailable
from wrkr_rabbitmq._failed import list_failed, retry_failed
from wrkr_rabbitmq._forwarder import RabbitMQForwarder
from wrkr_rabbitmq._messages import RabbitMQEnvelope, envelope_for, to_micros
from wrkr_rabbitmq._registry import RabbitMQRegistry, RabbitMQSubscriptions
from wrkr_rabbitmq._routing import send, send_batch
from wrkr_rabbitmq._stream import RabbitMQConsumerSession, RabbitMQReceipt, consume
from wrkr_rabbitmq._topology import (
    DELAY_LEVELS,
    RabbitMQTopology,
    declare_chain,
    declare_namespace,
    declare_queue,
    level,
)
from wrkr_rabbitmq._topology import delete_namespace as delete_topology

logger = logging.getLogger("wrkr.rabbitmq")

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
CONSUMER_TIMEOUT = timedelta(minutes=30)
NOT_FOUND = 404
#: Batches published at once, each in a transaction on a channel of its own.
TRANSACTIONS = 16


class RabbitMQBackend(Backend):
    """Stores subscriptions as bindings and items as persistent messages in RabbitMQ."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.DELAY, Capability.WILDCARDS, Capability.FAILED})

    def __init__(self, url: str = DEFAULT_URL, *, prefix: str = "wrkr") -> None:
        parsed = URL(url)
        self.url = parsed.with_query({k: v for k, v in parsed.query.items() if k != "prefix"})
        self.topology = RabbitMQTopology(prefix)
        self._registry = RabbitMQRegistry(self.topology.registry)
        self._connector: RabbitMQConnector | None = None
        self._forwarder: RabbitMQForwarder | None = None
        self._channels: dict[str, RabbitMQChannel] = {}
        self._channel_lock = asyncio.Lock()
        self._idle_transactional: list[RabbitMQChannel] = []
        self._transactions = asyncio.Semaphore(TRANSACTIONS)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build a backend from ``amqp://user:password@host:port/vhost?prefix=...``."""
        prefix = str(options.pop("prefix", URL(url).query.get("prefix", "wrkr")))
        return cls(url, prefix=prefix, **options)

    def __repr__(self) -> str:
        return f"RabbitMQBackend({redact(str(self.url))!r}, prefix={self.topology.prefix!r})"

    # -- lifecycle ---------------------------------------------------------------

    async def connect(self) -> None:
        """Connect and declare the events exchange, the delay chain and the registry."""
        self._connector = RabbitMQConnector(self.url)
        self._forwarder = RabbitMQForwarder(self._connector, self.topology)
        await self._ensure_chain()
        channel = await self._channel("admin")
        with unavailable("declare the wrkr exchanges and queues", self.url):
            await declare_namespace(channel, self.topology)
            await self._registry.ensure(channel)

    async def _ensure_chain(self) -> None:
        """Declare the shared delay chain unless its last-declared queue exists already."""
        probe = await self._require().channel()
        with unavailable("declare the delay chain", self.url):
            try:
                await probe.queue_declare(level(DELAY_LEVELS - 1), passive=True)
                await probe.close()
            except RabbitMQChannelClosed as exc:
                if exc.reply_code != NOT_FOUND:
                    raise
                chain = await self._require().channel()
                await declare_chain(chain)
                await chain.close()

    async def disconnect(self) -> None:
        """Stop the forwarder and close the connection: unacked deliveries return."""
        if self._forwarder is not None:
            await self._forwarder.stop()
        if self._connector is not None:
            await self._connector.close()
        self._channels.clear()
        self._idle_transactional.clear()

    async def drop_connection(self) -> None:
        """Close the connection as a crash would (tests); consumers then reconnect."""
        await self._require().drop()

    async def delete_namespace(self) -> None:
        """Delete every exchange and queue of this namespace, subscriptions included."""
        record = await self._read_registry()
        channel = await self._channel("admin")
        with unavailable("delete the namespace", self.url):
            await delete_topology(channel, self.topology, sorted(record.queues))

    def _require(self) -> RabbitMQConnector:
        if self._connector is None or self._connector.closed:
            raise NotStarted("the RabbitMQ backend is not open: call open() first")
        return self._connector

    async def _channel(self, role: str) -> RabbitMQChannel:
        """Return the shared channel for `role` ("publish" or "admin"), reopened if closed."""
        async with self._channel_lock:
            channel = self._channels.get(role)
            if channel is None or channel.is_closed:
                channel = self._channels[role] = await self._require().channel()
            return channel

    async def _scratch(self, action: str, work: Callable[[RabbitMQChannel], Awaitable[Any]]) -> Any:
        """Run `work` on a channel of its own (it holds messages unacked), then close it."""
        channel = await self._require().channel()
        with unavailable(action, self.url):
            try:
                return await work(channel)
            finally:
                await channel.close()

    # -- subscriptions -------------------------------------------------------------

    async def subscribe(self, queue: str, pattern: str) -> None:
        """Declare the queue, bind it to the events exchange, record the subscription."""
        channel = await self._channel("admin")
        with unavailable(f"subscribe {queue!r} to {pattern!r}", self.url):
            await declare_queue(channel, self.topology, queue)
            await channel.queue_bind(self.topology.queue(queue), self.topology.events, pattern)
            await self._registry.change(channel, lambda r: _add(r, queue, pattern))

    async def unsubscribe(self, queue: str, pattern: str) -> None:
        """Unbind the pattern; the queue and its items stay."""
        channel = await self._channel("admin")
        with unavailable(f"unsubscribe {queue!r} from {pattern!r}", self.url):
            await channel.queue_unbind(self.topology.queue(queue), self.topology.events, pattern)
            await self._registry.change(channel, lambda r: _remove(r, queue, pattern))

    async def queues_for(self, name: str) -> list[str]:
        """Return the queues whose recorded patterns match `name`."""
        return (await self._read_registry()).queues_for(name)

    async def _read_registry(self) -> RabbitMQSubscriptions:
        channel = await self._channel("admin")
        with unavailable("read the subscription record", self.url):
            return await self._registry.read(channel)

    # -- publishing -----------------------------------------------------------------

    async def enqueue(self, messages: Sequence[Message], *, connection: Any = None) -> list[str]:
        """Publish one message confirmed, or a batch as one transaction: all or nothing."""
        envelopes = [envelope_for(message, new_item_id()) for message in messages]
        now = to_micros(self.now())
        if len(envelopes) > 1:
            routed = await self._transact(envelopes, now)
        elif envelopes:
            channel = await self._channel("publish")
            with unavailable("publish", self.url):
                routed = [await send(channel, self.topology, envelopes[0], now, mandatory=True)]
        else:
            return []
        return [e.item_id for e, ok in zip(envelopes, routed, strict=True) if ok]

    async def _transact(self, envelopes: list[RabbitMQEnvelope], now: int) -> list[bool]:
        """Publish a batch in one transaction on an idle transactional channel.

        A channel is used by one batch at a time (a transaction spans its channel); it
        goes back to the idle ones afterwards unless it closed.
        """
        async with self._transactions:
            channel = await self._transactional_channel()
            try:
                with unavailable(f"publish a batch of {len(envelopes)}", self.url):
                    return await send_batch(channel, self.topology, envelopes, now)
            finally:
                if not channel.is_closed:
                    self._idle_transactional.append(channel)

    async def _transactional_channel(self) -> RabbitMQChannel:
        """Return an idle transactional channel, or open one (tx.select, once per channel)."""
        while self._idle_transactional:
            channel = self._idle_transactional.pop()
            if not channel.is_closed:
                return channel
        return await self._require().channel(transactional=True)

    async def _send(self, envelope: RabbitMQEnvelope) -> bool:
        """Publish one envelope towards its destination, confirmed."""
        channel = await self._channel("publish")
        with unavailable("publish", self.url):
            return await send(channel, self.topology, envelope, to_micros(self.now()))

    async def _park(self, queue: str, envelope: RabbitMQEnvelope) -> None:
        """Publish an envelope to `queue`'s failed queue, confirmed."""
        channel = await self._channel("publish")
        with unavailable("park a failed item", self.url):
            await channel.publish(envelope.body, exchange="",
                                  routing_key=self.topology.failed(queue),
                                  properties=envelope.properties())

    # -- consuming ----------------------------------------------------------------------

    def deliveries(
        self, queue: str, *, worker: str, lease: timedelta, prefetch: int
    ) -> AsyncGenerator[Delivery, None]:
        """Consume `queue` with QoS `prefetch`; also forward due items for the namespace.

        `lease` is not a timer here: a delivery is held for as long as this consumer's
        channel lives (RabbitMQ's `consumer_timeout` aside), and returns to the queue
        the moment the connection dies.
        """
        connector = self._require()
        if lease > CONSUMER_TIMEOUT:
            logger.warning("lease %s exceeds RabbitMQ's default consumer_timeout (%s): "
                           "raise consumer_timeout on the server", lease, CONSUMER_TIMEOUT)
        assert self._forwarder is not None
        self._forwarder.start()

        async def open_session(channel: RabbitMQChannel) -> RabbitMQConsumerSession:
            session = RabbitMQConsumerSession(channel, queue, worker, self._send, self._park,
                                              self.now)
            admin = await self._channel("admin")
            with unavailable(f"record queue {queue!r}", self.url):
                await self._registry.change(admin, lambda r: _add_queue(r, queue))
            await session.start(self.topology)
            return session

        return consume(connector, open_session, prefetch)

    async def ack(
        self, delivery: Delivery, *, keep: bool = False, expires: datetime | None = None
    ) -> None:
        """Ack the message: the item is gone."""
        if keep:
            raise NotSupported(f"RabbitMQBackend does not support '{Capability.ARCHIVE}'")
        await self._settle(delivery, None)

    async def nack(self, delivery: Delivery, *, due: datetime, error: ErrorRecord) -> None:
        """Republish to the item's own queue, due at `due`, error recorded; then ack."""
        queue, receipt = delivery.item.queue, _receipt(delivery)
        envelope = receipt.envelope.add_error(error).with_changes(
            attempts=delivery.item.attempts, due=to_micros(due), to=f"q:{queue}")
        await self._settle(delivery, lambda: self._send(envelope))

    async def fail(self, delivery: Delivery, *, error: ErrorRecord) -> None:
        """Republish to the queue's failed queue with the error history; then ack."""
        receipt = _receipt(delivery)
        envelope = receipt.envelope.add_error(error).with_changes(attempts=delivery.item.attempts)
        await self._settle(delivery, lambda: self._park(delivery.item.queue, envelope))

    async def release(self, delivery: Delivery) -> None:
        """Republish unchanged (this attempt uncounted) to the item's queue; then ack."""
        envelope = _receipt(delivery).envelope.with_changes(
            attempts=delivery.item.attempts - 1, to=f"q:{delivery.item.queue}")
        await self._settle(delivery, lambda: self._send(envelope))

    async def _settle(
        self, delivery: Delivery, republish: Callable[[], Awaitable[Any]] | None
    ) -> None:
        """Republish (if asked), then ack on the delivery's own channel.

        Raises:
            LeaseLost: that channel closed, so the broker has requeued the message.
        """
        receipt = _receipt(delivery)
        channel = receipt.session.channel
        if channel.is_closed:
            raise LeaseLost(f"item {delivery.item.id} went back to {delivery.item.queue!r} "
                            "when its channel closed")
        try:
            if republish is not None:
                await republish()  # BackendUnavailable if it fails: the item stays claimed
            channel.ack(receipt.delivery_tag)
        except BackendUnavailable:
            raise
        except DRIVER_ERRORS as exc:
            raise LeaseLost(f"item {delivery.item.id}: its channel closed") from exc
        finally:
            receipt.session.settled()

    # -- failed items ---------------------------------------------------------------------

    async def items(self, where: ItemFilter) -> list[Item]:
        """Return failed items (`state=FAILED`), oldest due first; other states: QUERY."""
        if where.state != State.FAILED:
            raise NotSupported(f"RabbitMQBackend does not support '{Capability.QUERY}': "
                               "only items(state=FAILED) can be listed")
        queues = [where.queue] if where.queue else sorted((await self._read_registry()).queues)
        found: list[Item] = []
        for queue in queues:
            found += await self._scratch("list failed items", functools.partial(
                list_failed, topology=self.topology, queue=queue, where=where, now=self.now()))
        found.sort(key=lambda item: item.due)
        return found[:where.limit] if where.limit is not None else found

    async def retry(self, item_id: str) -> None:
        """Move the failed item(s) with this id back to their queue, ready now."""
        moved = 0
        for queue in sorted((await self._read_registry()).queues):
            moved += await self._scratch("retry a failed item", functools.partial(
                retry_failed, topology=self.topology, queue=queue, item_id=item_id,
                send=self._send, now=self.now()))
        if not moved:
            raise ItemNotFound(f"no failed item has id {item_id!r}")


def _receipt(delivery: Delivery) -> RabbitMQReceipt:
    receipt = delivery.receipt
    assert isinstance(receipt, RabbitMQReceipt), "not a RabbitMQ delivery"
    return receipt


def _add(record: RabbitMQSubscriptions, queue: str, pattern: str) -> bool:
    """Add a subscription to the record; tell whether it changed."""
    before = (len(record.subscriptions), len(record.queues))
    record.subscriptions.add((queue, pattern))
    record.queues.add(queue)
    return before != (len(record.subscriptions), len(record.queues))


def _add_queue(record: RabbitMQSubscriptions, queue: str) -> bool:
    """Record a queue consumed without a subscription, so `retry` looks through it too."""
    if queue in record.queues:
        return False
    record.queues.add(queue)
    return True


def _remove(record: RabbitMQSubscriptions, queue: str, pattern: str) -> bool:
    """Remove a subscription from the record (the queue stays known); tell whether it changed."""
    if (queue, pattern) not in record.subscriptions:
        return False
    record.subscriptions.discard((queue, pattern))
    return True
