"""RabbitMQBroker: the `Broker` primitives on RabbitMQ, through pika (see _client.py).

One connection per broker, opened by `connect` (again by `BrokerBackend` after it was
lost), with a few long-lived channels: "admin" for declarations and the registry,
"publish" for confirmed single publishes, idle transactional ones for batches, "view"
for the gets that keep the publisher's view of the subscriptions fresh (_view.py), and
one per consumer (see _consumer.py). Failed-item listings take a scratch channel each.

A publish returns one item id per (message, queue): the queues from that view, as
fresh as the publish, each copy named `copy_id(message id, queue)` as its consumer
names it. A subscription made while a publish runs may get a copy whose id the publish
did not return; one removed meanwhile may leave a returned id without a copy.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, ClassVar

from wrkr import BackendUnavailable, ItemNotFound, NotSupported
from wrkr.backend import (
    Broker,
    Capability,
    Item,
    ItemFilter,
    Message,
    Settle,
    Settlement,
    State,
    copy_id,
    new_item_id,
    redact,
    to_micros,
)
from wrkr_rabbitmq._client import RabbitMQChannel, RabbitMQChannelClosed, RabbitMQConnection
from wrkr_rabbitmq._connection import DRIVER_ERRORS, broker_url, open_connection, unavailable
from wrkr_rabbitmq._consumer import RabbitMQConsumer, RabbitMQReceipt
from wrkr_rabbitmq._failed import list_failed, retry_failed
from wrkr_rabbitmq._forwarder import FORWARD_PREFETCH, RabbitMQForwarder
from wrkr_rabbitmq._messages import RabbitMQEnvelope, envelope_for
from wrkr_rabbitmq._registry import RabbitMQRegistry, RabbitMQSubscriptions
from wrkr_rabbitmq._routing import send, send_batch
from wrkr_rabbitmq._topology import (
    RabbitMQTopology,
    declare_chain,
    declare_namespace,
    declare_queue,
)
from wrkr_rabbitmq._topology import delete_namespace as delete_topology
from wrkr_rabbitmq._view import RabbitMQSubscriptionView

logger = logging.getLogger("wrkr.rabbitmq")

CONSUMER_TIMEOUT = timedelta(minutes=30)
NOT_FOUND = 404
#: Batches published at once, each in a transaction on a channel of its own.
TRANSACTIONS = 16


class RabbitMQBroker(Broker[RabbitMQReceipt]):
    """Keeps subscriptions as bindings and items as persistent messages in RabbitMQ.

    Raises:
        InvalidConfig: the URL has an unknown or unusable option, `prefix` is not one
            routing-key segment, or `queue_type` is neither "quorum" nor "classic".
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.DELAY, Capability.WILDCARDS, Capability.FAILED})

    def __init__(self, url: str, *, prefix: str = "wrkr", queue_type: str = "quorum") -> None:
        self.url = broker_url(url)
        self.topology = RabbitMQTopology(prefix, queue_type)
        self._registry = RabbitMQRegistry(self.topology)
        self._view = RabbitMQSubscriptionView(self.topology.registry_changes)
        self._forwarder = RabbitMQForwarder(self.topology)
        self._connection: RabbitMQConnection | None = None
        self._channels: dict[str, RabbitMQChannel] = {}
        self._channel_lock = asyncio.Lock()
        self._idle_transactional: list[RabbitMQChannel] = []
        self._transactions = asyncio.Semaphore(TRANSACTIONS)

    def __repr__(self) -> str:
        return (f"RabbitMQBroker({redact(str(self.url))!r}, prefix={self.topology.prefix!r}, "
                f"queue_type={self.topology.queue_type!r})")

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """Tell whether the connection is open right now."""
        return self._connection is not None and not self._connection.is_closed

    async def connect(self) -> None:
        """Connect and declare the events exchange, the delay chain and the registry."""
        await self.disconnect()  # what the lost connection left
        self._connection = await open_connection(self.url)
        try:
            await self._ensure_chain()
            channel = await self._channel("admin")
            with unavailable("declare the wrkr exchanges and queues", self.url):
                await declare_namespace(channel, self.topology)
                await self._registry.ensure(channel)
                await self._view.bind(await self._channel("view"))
                self._view.reset(await self._registry.read(channel))
        except BaseException:
            await self.disconnect()
            raise

    async def _ensure_chain(self) -> None:
        """Declare the shared delay chain unless its last-declared queue exists already."""
        probe = await self._open_channel()
        with unavailable("declare the delay chain", self.url):
            try:
                await probe.queue_declare(self.topology.chain_probe, passive=True)
                await probe.close()
            except RabbitMQChannelClosed as exc:
                if exc.reply_code != NOT_FOUND:
                    raise
                chain = await self._open_channel()
                await declare_chain(chain, self.topology)
                await chain.close()

    async def disconnect(self) -> None:
        """Close the connection: unacked deliveries return. Idempotent."""
        connection, self._connection = self._connection, None
        self._channels.clear()
        self._idle_transactional.clear()
        if connection is not None and not connection.is_closed:
            try:
                with unavailable("close the connection", self.url):
                    await connection.close()
            except (BackendUnavailable, TimeoutError) as exc:
                logger.debug("closing the RabbitMQ connection: %s", exc)

    async def serve(self) -> None:
        """Forward the namespace's delayed items when due, on a channel of their own."""
        channel = await self._open_channel(prefetch=FORWARD_PREFETCH)
        with unavailable("forward delayed items", self.url):
            await self._forwarder.run(channel)

    async def delete_namespace(self) -> None:
        """Delete every exchange and queue of this namespace, subscriptions included."""
        record = await self._read_registry()
        channel = await self._channel("admin")
        with unavailable("delete the namespace", self.url):
            await delete_topology(channel, self.topology, sorted(record.queues))

    def connection(self) -> RabbitMQConnection:
        """Return the open connection (tests cut it as a failing network would)."""
        if self._connection is None:
            raise BackendUnavailable(f"RabbitMQ at {redact(str(self.url))}: not connected")
        return self._connection

    async def _open_channel(self, *, prefetch: int | None = None,
                            transactional: bool = False) -> RabbitMQChannel:
        """Open a channel with confirms, or transactions (and QoS `prefetch` if given)."""
        with unavailable("open a channel", self.url):
            channel = await self.connection().channel(transactional=transactional)
            if prefetch is not None:
                await channel.qos(prefetch)
            return channel

    async def _channel(self, role: str) -> RabbitMQChannel:
        """Return the shared channel for `role` ("publish" or "admin"), reopened if closed."""
        async with self._channel_lock:
            channel = self._channels.get(role)
            if channel is None or channel.is_closed:
                channel = self._channels[role] = await self._open_channel()
            return channel

    async def _scratch(self, action: str, work: Callable[[RabbitMQChannel], Awaitable[Any]]) -> Any:
        """Run `work` on a channel of its own (it holds messages unacked), then close it."""
        channel = await self._open_channel()
        with unavailable(action, self.url):
            try:
                return await work(channel)
            finally:
                await channel.close()

    # -- subscriptions -------------------------------------------------------------------

    async def subscribe(self, queue: str, pattern: str) -> None:
        """Declare the queue, bind it to the events exchange, record the subscription."""
        channel = await self._channel("admin")
        with unavailable(f"subscribe {queue!r} to {pattern!r}", self.url):
            await declare_queue(channel, self.topology, queue)
            await channel.queue_bind(self.topology.queue(queue), self.topology.events, pattern)
            await self._registry.change(channel, lambda r: r.add(queue, pattern))

    async def unsubscribe(self, queue: str, pattern: str) -> None:
        """Unbind the pattern; the queue and its items stay."""
        channel = await self._channel("admin")
        with unavailable(f"unsubscribe {queue!r} from {pattern!r}", self.url):
            await channel.queue_unbind(self.topology.queue(queue), self.topology.events, pattern)
            await self._registry.change(channel, lambda r: r.remove(queue, pattern))

    async def queues_for(self, name: str) -> list[str]:
        """Return the queues whose recorded patterns match `name`."""
        return (await self._read_registry()).queues_for(name)

    async def subscriptions(self) -> list[tuple[str, str]]:
        """Return the recorded (queue, pattern) pairs, sorted."""
        return sorted((await self._read_registry()).subscriptions)

    async def _read_registry(self) -> RabbitMQSubscriptions:
        channel = await self._channel("admin")
        with unavailable("read the subscription record", self.url):
            return await self._registry.read(channel)

    # -- publishing ----------------------------------------------------------------------

    async def publish(self, messages: Sequence[Message]) -> list[str]:
        """Publish one message confirmed, or a batch as one transaction: all or nothing.

        Returns one id per (message, queue the view finds), for the messages routed.
        """
        envelopes = [envelope_for(message, new_item_id()) for message in messages]
        now = to_micros(self.clock.now())
        view = await self._channel("view")
        with unavailable("refresh the subscription view", self.url):
            fresh = self._view.fresh(view)
        if len(envelopes) > 1:
            routed = await self._transact(envelopes, now)
        else:
            channel = await self._channel("publish")
            with unavailable("publish", self.url):
                routed = [await send(channel, self.topology, envelopes[0], now, mandatory=True)]
        with unavailable("refresh the subscription view", self.url):
            await fresh
        queues_for = self._view.queues_for
        return [copy_id(e.item_id, queue) for e, ok in zip(envelopes, routed, strict=True)
                if ok for queue in queues_for(e.meta["name"])]

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
        return await self._open_channel(transactional=True)

    async def _send(self, envelope: RabbitMQEnvelope) -> bool:
        """Publish one envelope towards its destination, confirmed."""
        channel = await self._channel("publish")
        with unavailable("publish", self.url):
            return await send(channel, self.topology, envelope, to_micros(self.clock.now()))

    async def _park(self, queue: str, envelope: RabbitMQEnvelope) -> None:
        """Publish an envelope to `queue`'s failed queue, confirmed."""
        channel = await self._channel("publish")
        with unavailable("park a failed item", self.url):
            await channel.publish(envelope.body, exchange="",
                                  routing_key=self.topology.failed(queue),
                                  properties=envelope.properties())

    # -- consuming and settling ------------------------------------------------------------

    async def consume(self, queue: str, *, worker: str, prefetch: int,
                      lease: timedelta) -> RabbitMQConsumer:
        """Consume `queue` on a channel of its own with QoS `prefetch`.

        `lease` is not a timer here: a delivery is held for as long as the channel lives
        (RabbitMQ's `consumer_timeout` aside).
        """
        if lease > CONSUMER_TIMEOUT:
            logger.warning("lease %s exceeds RabbitMQ's default consumer_timeout (%s): "
                           "raise consumer_timeout on the server", lease, CONSUMER_TIMEOUT)
        consumer = RabbitMQConsumer(await self._open_channel(prefetch=prefetch), queue, worker,
                                    self._send, self._park, self.clock.now,
                                    counted=self.topology.counts_deliveries)
        admin = await self._channel("admin")
        with unavailable(f"consume {queue!r}", self.url):
            await self._registry.change(admin, lambda r: r.add_queue(queue))
            await consumer.start(self.topology)
        return consumer

    async def settle(self, settlement: Settlement[RabbitMQReceipt]) -> bool:
        """Republish where the settlement sends the item (if anywhere), then ack."""
        receipt = settlement.delivery.receipt
        channel = receipt.channel
        if channel.is_closed:
            return False
        if settlement.how is Settle.RELEASE:
            # A release comes with a stop. Stop consuming first: otherwise the copy
            # republished below can reach this consumer, stopped meanwhile, and come back
            # when its channel closes as a delivery (counted) that no handler saw.
            await receipt.consumer.stop()
        await self._republish(settlement)
        try:
            if settlement.how is Settle.ABANDON:
                channel.reject(receipt.delivery_tag, requeue=True)  # redelivered: counted
            else:
                channel.ack(receipt.delivery_tag)
        except DRIVER_ERRORS:
            return False
        return True

    async def _republish(self, settlement: Settlement[RabbitMQReceipt]) -> None:
        """Publish the item's next copy: back to its queue (NACK, RELEASE) or parked (FAIL)."""
        how, item = settlement.how, settlement.delivery.item
        envelope = settlement.delivery.receipt.envelope
        if settlement.error is not None:
            envelope = envelope.add_error(settlement.error)
        if how is Settle.NACK and settlement.due is not None:
            await self._send(envelope.with_changes(
                attempts=item.attempts, due=to_micros(settlement.due), to=f"q:{item.queue}"))
        elif how is Settle.FAIL:
            await self._park(item.queue, envelope.with_changes(attempts=item.attempts))
        elif how is Settle.RELEASE:
            await self._send(envelope.with_changes(attempts=item.attempts - 1,
                                                   to=f"q:{item.queue}"))

    # -- failed items ----------------------------------------------------------------------

    async def items(self, where: ItemFilter) -> list[Item]:
        """Return failed items (`state=FAILED`), oldest due first; other states: QUERY."""
        if where.state != State.FAILED:
            raise NotSupported(f"RabbitMQBackend does not support '{Capability.QUERY}': "
                               "only items(state=FAILED) can be listed")
        queues = [where.queue] if where.queue else sorted((await self._read_registry()).queues)
        found: list[Item] = []
        for queue in queues:
            found += await self._scratch("list failed items", functools.partial(
                list_failed, topology=self.topology, queue=queue, where=where,
                now=self.clock.now()))
        found.sort(key=lambda item: item.due)
        return found[:where.limit] if where.limit is not None else found

    async def retry(self, item_id: str) -> None:
        """Move the failed item(s) with this id back to their queue, ready now."""
        moved = 0
        for queue in sorted((await self._read_registry()).queues):
            moved += await self._scratch("retry a failed item", functools.partial(
                retry_failed, topology=self.topology, queue=queue, item_id=item_id,
                send=self._send, now=self.clock.now()))
        if not moved:
            raise ItemNotFound(f"no failed item has id {item_id!r}")
