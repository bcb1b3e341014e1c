"""The `Broker` contract: primitives for backends whose items live on a message broker.

A broker moves messages; it decides nothing. Its channels carry the leases: a delivery
is held while the channel that received it is open, and the broker requeues it the
moment that channel closes. `BrokerBackend` (`_brokered`) assembles a broker into the
`Backend` an app talks to and owns what every broker would otherwise write itself:
reconnecting with one `Backoff` after a lost connection, the deliveries handed out
(so `renew` and settling know whether they still hold), closing a stopped consumer's
channel only once its last delivery is settled, giving back on close.

Every method that reaches the server raises `BackendUnavailable` (never the driver's
own exceptions) when it cannot, and then nothing was changed.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar, Generic, TypeVar

from wrkr._errors import NotSupported
from wrkr._store import Settlement
from wrkr._types import Capability, Clock, Delivery, Item, ItemFilter, Message, SystemClock

__all__ = ["Broker", "BrokerConsumer"]

R = TypeVar("R")


class BrokerConsumer(abc.ABC, Generic[R]):
    """One consumer of one queue on one channel, with at most `prefetch` unsettled messages.

    Made by `Broker.consume`; ends when its channel closes. The core reads it one
    delivery at a time and decides when to stop it and when to close it.
    """

    @property
    @abc.abstractmethod
    def is_open(self) -> bool:
        """Tell whether the channel is open: while it is, every delivery it gave is held."""

    @abc.abstractmethod
    async def next(self) -> Delivery[R] | None:
        """Wait for the next delivery; None once the channel closed or the broker ended
        the consumer (its queue was deleted).

        Raises:
            BackendUnavailable: the broker could not be reached meanwhile.
        """

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop consuming; give back what arrived but was not yielded, its attempt uncounted.

        Deliveries already yielded stay held (the channel stays open) until settled or
        `close()`. Idempotent; never raises (a lost channel has given everything back).
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the channel: what it still holds goes back counted, as a lost lease would.

        Idempotent; never raises.
        """


class Broker(abc.ABC, Generic[R]):
    """Keeps subscriptions as bindings and items as messages; `R` types its receipts.

    Attributes:
        capabilities: what the broker offers beyond the basics (the backend declares them).
        clock: what "now" is for due times (a broker's timers run on the wall clock).
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    clock: Clock = SystemClock()

    # -- lifecycle ---------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool:
        """Tell whether the connection is open right now (the core reconnects when not)."""

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection and declare what is missing (exchanges, queues).

        The core calls it again after the connection was lost, so it starts afresh from
        whatever state the last connection left. If it raises, `is_connected` is False.
        """

    @abc.abstractmethod
    async def disconnect(self) -> None:
        """Close the connection: the broker requeues every unsettled message. Idempotent."""

    async def serve(self) -> None:
        """Do the broker's own background work while consumers run, until it is done.

        RabbitMQ forwards delayed messages here. The core starts it with the first
        consumer, cancels it on close, and after `BackendUnavailable` (the connection
        was lost) reconnects and calls it again. The default has nothing to do.
        """

    # -- subscriptions -------------------------------------------------------------------

    @abc.abstractmethod
    async def subscribe(self, queue: str, pattern: str) -> None:
        """Declare `queue` and bind it by `pattern`; durable, idempotent.

        The broker routes by the binding; it also records the subscription, since
        `queues_for` and `subscriptions` must answer and not every broker can list
        bindings.
        """

    @abc.abstractmethod
    async def unsubscribe(self, queue: str, pattern: str) -> None:
        """Remove the binding; the queue and its messages stay. Idempotent."""

    @abc.abstractmethod
    async def queues_for(self, name: str) -> list[str]:
        """Return the sorted, distinct queues an event called `name` would reach now."""

    @abc.abstractmethod
    async def subscriptions(self) -> list[tuple[str, str]]:
        """Return every subscription as (queue, pattern) pairs, sorted."""

    # -- publishing and consuming ----------------------------------------------------------

    @abc.abstractmethod
    async def publish(self, messages: Sequence[Message]) -> list[str]:
        """Publish a batch with confirms, all or nothing as far as the broker allows.

        Returns one item id per (message, queue it reached), in message order: the
        broker routes, so the publisher names each copy `copy_id(message id, queue)`
        for the queues a view of the subscriptions, as fresh as this call, matches,
        and a consumer names the copy it receives by the same rule. (A subscription
        made while the call runs may get a copy whose id is not returned.) A message
        due later is held by the broker and routed when due.

        Raises:
            InvalidEvent: the broker refuses a message for good (too large); nothing
                of the batch was published.
            BackendUnavailable: nothing was published -- unless the message says the
                outcome is unknown (the connection was lost during the commit).
        """

    @abc.abstractmethod
    async def consume(self, queue: str, *, worker: str, prefetch: int,
                      lease: timedelta) -> BrokerConsumer[R]:
        """Start consuming `queue` (declared if missing) on a channel of its own.

        Each delivery is `processing` for `worker` with one more attempt counted.
        `lease` is how long the core may hold one: a broker whose channels time out
        sooner says so (in a log line) rather than lose it silently.
        """

    @abc.abstractmethod
    async def settle(self, settlement: Settlement[R]) -> bool:
        """Carry out one settlement on its delivery's own channel (see `Settle`).

        NACK republishes the item to its own queue due at `due` with `error` recorded,
        FAIL parks it with `error`, RELEASE puts it back uncounted, ABANDON requeues it
        counted; then the delivery is acked. Returns False, having changed nothing, when
        the delivery's channel has closed (the broker has requeued it).

        Raises:
            BackendUnavailable: the republish failed; the delivery is still held.
        """

    # -- inspection and control (optional capabilities) ----------------------------------

    async def items(self, where: ItemFilter) -> list[Item]:
        """Return the matching items, oldest due first (QUERY; FAILED for failed ones)."""
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.QUERY}'")

    async def get(self, item_id: str) -> Item:
        """Return one item by id (QUERY).

        Raises:
            ItemNotFound: no item has that id.
        """
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.QUERY}'")

    async def retry(self, item_id: str) -> None:
        """Move a failed item back to its queue, ready now, attempts reset (FAILED).

        Raises:
            ItemNotFound: no failed item has that id.
        """
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.FAILED}'")

    async def cancel(self, where: ItemFilter) -> int:
        """Delete the pending items matching queue, name and tid; return how many (CANCEL)."""
        raise NotSupported(f"{type(self).__name__} does not support '{Capability.CANCEL}'")
