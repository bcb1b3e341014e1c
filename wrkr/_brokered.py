"""`BrokerBackend`: a `Backend` assembled from a `Broker`.

What every broker-backed backend would otherwise write itself lives here once:

* reconnecting after a lost connection, with one `Backoff`: lazily before any
  operation, and by each delivery stream and the broker's background work, which
  ride an outage out instead of ending;
* the deliveries handed out and the consumer holding each, so that `renew` answers
  without a round trip (True while that consumer's channel is open: there is no
  lease timer to extend) and a settlement of a delivery no longer held raises
  `LeaseLost` without touching the broker;
* a stopped consumer's channel closed only once its last delivery is settled, since
  closing it earlier would hand those back as lost;
* giving back on close what was received but not handed out.

A broker-backed backend is a subclass that builds its broker::

    class MQTTBackend(BrokerBackend[MQTTReceipt]):
        capabilities = MQTTBroker.capabilities

        def __init__(self, url: str) -> None:
            super().__init__(MQTTBroker(url))

Pairing a broker with a store (a later issue): the broker delivers, a `Store` keeps
what a broker cannot (items scheduled far ahead and cancellable, `dedupe` checks,
queries). The seam is here: a `store=` argument of `__init__`, added then, makes
`enqueue` split those messages off to the store, runs a `StoreStream` over it (with
the background work) that publishes each item to the broker as it falls due, and
sends `items`, `get` and `cancel` to the store. Consuming and settling stay as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from datetime import timedelta
from typing import Any, Generic, TypeVar

from wrkr._backoff import Backoff
from wrkr._broker import Broker, BrokerConsumer
from wrkr._errors import BackendUnavailable, LeaseLost, NotStarted, NotSupported
from wrkr._settling import SettlingBackend
from wrkr._store import Settlement
from wrkr._types import Capability, Delivery, Item, ItemFilter, Message

__all__ = ["BrokerBackend"]

logger = logging.getLogger("wrkr")
R = TypeVar("R")
RECONNECT_FIRST, RECONNECT_MOST = 0.1, 2.0  # seconds: a restarting broker is not hammered
SERVED_LONG = 1.0  # seconds of background work that prove a connection worked: back off anew


class BrokerBackend(SettlingBackend[R], Generic[R]):
    """Delivers a `Broker`'s messages; see the module docstring.

    Args:
        broker: where subscriptions and items live. Its clock is the backend's clock.
    """

    def __init__(self, broker: Broker[R]) -> None:
        self.broker = broker
        self.clock = broker.clock
        self.is_connected = False
        self._ever_connected = False
        self._connecting = asyncio.Lock()
        self._held: dict[int, tuple[Delivery[R], BrokerConsumer[R]]] = {}
        self._outstanding: dict[BrokerConsumer[R], int] = {}  # consumer -> deliveries held
        self._stopped: set[BrokerConsumer[R]] = set()  # close each once nothing is held
        self._serving: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.broker!r})"

    # -- lifecycle ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect the broker (it declares what is missing)."""
        self.is_connected = self._ever_connected = True
        try:
            await self._reach()
        except BaseException:
            self.is_connected = False
            raise

    async def disconnect(self) -> None:
        """Stop the background work, give back what no worker got, then close.

        Deliveries still held go back when the connection closes, counted as lost leases.
        """
        self.is_connected = False  # streams and background work end
        if self._serving is not None:
            self._serving.cancel()
            with contextlib.suppress(asyncio.CancelledError, BackendUnavailable):
                await self._serving
            self._serving = None
        await asyncio.gather(*(consumer.stop() for consumer in list(self._outstanding)))
        self._held.clear()
        self._outstanding.clear()
        self._stopped.clear()
        async with self._connecting:  # a reconnect under way finishes first, then closes
            await self.broker.disconnect()

    async def _reach(self) -> Broker[R]:
        """Return the broker connected, reconnecting it first if its connection was lost.

        Raises:
            NotStarted: the backend is not open.
            BackendUnavailable: the broker cannot be reached.
        """
        broker = self._open_broker()
        if not broker.is_connected:
            async with self._connecting:  # one reconnect for everyone who finds it lost
                if not broker.is_connected and self.is_connected:
                    await broker.connect()
        return broker

    def _open_broker(self) -> Broker[R]:
        """Return the broker, connected or not; raise `NotStarted` if the backend is closed."""
        if not self.is_connected:
            raise self._not_started(self._ever_connected)
        return self.broker

    # -- background work -------------------------------------------------------------------

    def _serve_in_background(self) -> None:
        """Start the broker's background work unless it runs already."""
        if self._serving is None or self._serving.done():
            self._serving = asyncio.create_task(self._serve(), name="wrkr-broker-serve")

    async def _serve(self) -> None:
        """Run `broker.serve()` until it is done, reconnecting after each lost connection."""
        backoff = Backoff(RECONNECT_FIRST, RECONNECT_MOST)
        while self.is_connected:
            started = time.monotonic()
            try:
                await (await self._reach()).serve()
                return
            except BackendUnavailable as exc:
                logger.info("broker background work lost the broker (%s); reconnecting", exc)
            except NotStarted:
                return
            if time.monotonic() - started >= SERVED_LONG:
                backoff.reset()
            await backoff.wait()

    # -- subscriptions -----------------------------------------------------------------

    async def subscribe(self, queue: str, pattern: str) -> None:
        """Bind `pattern` to `queue`; see `Backend.subscribe`."""
        await (await self._reach()).subscribe(queue, pattern)

    async def unsubscribe(self, queue: str, pattern: str) -> None:
        """Unbind `pattern` from `queue`; see `Backend.unsubscribe`."""
        await (await self._reach()).unsubscribe(queue, pattern)

    async def queues_for(self, name: str) -> list[str]:
        """Return the queues `name` reaches; see `Backend.queues_for`."""
        return await (await self._reach()).queues_for(name)

    async def subscriptions(self) -> list[tuple[str, str]]:
        """Return every (queue, pattern); see `Backend.subscriptions`."""
        return await (await self._reach()).subscriptions()

    # -- publishing and consuming ---------------------------------------------------------

    async def enqueue(self, messages: Sequence[Message], *, connection: Any = None) -> list[str]:
        """Publish a batch with confirms, all or nothing; see `Backend.enqueue`.

        The seam for a paired store: messages it should keep are split off here.
        """
        if connection is not None:
            raise NotSupported(f"{type(self).__name__} does not support "
                               f"'{Capability.TRANSACTIONAL}'")
        if not messages:
            return []
        return await (await self._reach()).publish(messages)

    def deliveries(
        self, queue: str, *, worker: str, lease: timedelta, prefetch: int
    ) -> AsyncGenerator[Delivery[R], None]:
        """Yield `queue`'s deliveries across reconnections; see `Backend.deliveries`."""
        self._open_broker()
        self._serve_in_background()
        return self._stream(queue, worker, lease, max(1, prefetch))

    async def _stream(self, queue: str, worker: str, lease: timedelta,
                      prefetch: int) -> AsyncGenerator[Delivery[R], None]:
        """Consume on one channel after another until the backend closes."""
        backoff = Backoff(RECONNECT_FIRST, RECONNECT_MOST)
        while self.is_connected:
            try:
                consumer = await (await self._reach()).consume(
                    queue, worker=worker, prefetch=prefetch, lease=lease)
            except BackendUnavailable as exc:
                logger.info("consumer of %s cannot reach the broker (%s); retrying", queue, exc)
                await backoff.wait()
                continue
            except NotStarted:
                return
            self._outstanding[consumer] = 0
            lost = False
            try:
                while (delivery := await consumer.next()) is not None:
                    if backoff.failures:
                        backoff.reset()  # a delivery proves the connection works
                    self._hand_out(delivery, consumer)
                    yield delivery
            except BackendUnavailable as exc:
                logger.info("consumer of %s lost the broker (%s); reconnecting", queue, exc)
                lost = True
            finally:
                await self._stop(consumer)
            if lost:
                await backoff.wait()

    def _hand_out(self, delivery: Delivery[R], consumer: BrokerConsumer[R]) -> None:
        self._held[id(delivery)] = (delivery, consumer)
        self._outstanding[consumer] += 1

    async def _stop(self, consumer: BrokerConsumer[R]) -> None:
        """Stop a consumer; close its channel now, or after its last settlement."""
        await consumer.stop()
        if not self._outstanding.get(consumer):
            self._outstanding.pop(consumer, None)
            await consumer.close()
        else:
            self._stopped.add(consumer)

    def _settled(self, consumer: BrokerConsumer[R]) -> bool:
        """Count one of `consumer`'s deliveries settled; tell if it is stopped and now idle."""
        left = self._outstanding.get(consumer, 1) - 1
        if left > 0 or consumer not in self._stopped:
            if consumer in self._outstanding:
                self._outstanding[consumer] = left
            return False
        self._outstanding.pop(consumer, None)
        self._stopped.discard(consumer)
        return True

    async def renew(self, deliveries: Sequence[Delivery[Any]], lease: timedelta) -> list[bool]:
        """Answer, per delivery, whether its channel still holds it; see `Backend.renew`.

        The broker holds a delivery for as long as its channel lives: nothing to extend.
        """
        held = self._held
        return [(entry := held.get(id(d))) is not None and entry[1].is_open
                for d in deliveries]

    async def _settle(self, settlement: Settlement[R]) -> None:
        """Settle on the delivery's channel; a lost connection is not reconnected for it,
        since the broker has given the delivery back already."""
        broker = self._open_broker()
        delivery = settlement.delivery
        entry = self._held.pop(id(delivery), None)
        try:
            held = entry is not None and entry[1].is_open and await broker.settle(settlement)
        finally:
            if entry is not None and self._settled(entry[1]):
                await entry[1].close()
        if not held:
            raise LeaseLost(f"item {delivery.item.id} of queue {delivery.item.queue!r} is no "
                            "longer held by this delivery: its channel closed, so the broker "
                            "gave it back, or it was settled already")

    # -- inspection and control ------------------------------------------------------------

    async def items(self, where: ItemFilter) -> list[Item]:
        """Return the matching items; see `Backend.items`."""
        return await (await self._reach()).items(where)

    async def get(self, item_id: str) -> Item:
        """Return one item by id; see `Backend.get`."""
        return await (await self._reach()).get(item_id)

    async def cancel(self, where: ItemFilter) -> int:
        """Delete the pending matches, whatever `where.state` and `where.limit` say."""
        return await (await self._reach()).cancel(ItemFilter(where.queue, where.name, where.tid))

    async def retry(self, item_id: str) -> None:
        """Move a failed item back to ready now; see `Backend.retry`."""
        await (await self._reach()).retry(item_id)
