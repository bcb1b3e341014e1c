"""RabbitMQSubscriptionView: a publisher's copy of the subscription record, fresh per publish.

A publish returns one item id per queue its message reaches, so the publisher must know
the queues; reading the record itself (_registry.py) takes a lock every process shares.
Instead each writer of the record also publishes the new version to the fanout exchange
``{p}.registry.changes``, confirmed, before its change returns. Every connected broker
binds an exclusive queue of its own there that keeps only the newest version
(``x-max-length: 1``): bound first, then the record read once, so no change is missed.

Each publish asks for one ``basic.get`` of that queue sent after the publish began, and
sent at once, beside the publish itself: a subscription any process completed before
the publish is in the view the publish's ids come from, at the cost of a round trip that
overlaps the confirm. Publishes running together share one get, provided it was sent
after they began; pika allows one get in flight per channel, and more are not needed.
"""

from __future__ import annotations

import asyncio

from wrkr_rabbitmq._client import RabbitMQChannel, RabbitMQIncoming
from wrkr_rabbitmq._registry import RabbitMQSubscriptions

#: Event names whose queues are remembered per version (a bound on the cache).
CACHED_NAMES = 10_000


class RabbitMQSubscriptionView:
    """The newest subscription record this process has seen, and the queues per event."""

    def __init__(self, exchange: str) -> None:
        self._exchange = exchange
        self._record = RabbitMQSubscriptions()
        self._queue = ""
        self._queues: dict[str, list[str]] = {}
        self._waiting: asyncio.Future[None] | None = None  # for a get not yet sent
        self._getting: RabbitMQChannel | None = None  # the channel a get is in flight on

    async def bind(self, channel: RabbitMQChannel) -> None:
        """Bind this connection's change queue on `channel` (the gets go there too).

        Call `reset` with the record read after this: changes from then on are queued.
        """
        self._queue = await channel.queue_declare_exclusive(
            {"x-max-length": 1, "x-overflow": "drop-head"})
        await channel.queue_bind(self._queue, self._exchange, "")

    def reset(self, record: RabbitMQSubscriptions) -> None:
        """Hold `record`, whatever its version (a namespace deleted and made again restarts)."""
        self._record, self._queues = record, {}

    def apply(self, record: RabbitMQSubscriptions) -> None:
        """Take `record` if it is newer than the one held."""
        if record.version > self._record.version:
            self.reset(record)

    def queues_for(self, name: str) -> list[str]:
        """Return the sorted queues event `name` reaches, as far as this view knows."""
        queues = self._queues.get(name)
        if queues is None:
            if len(self._queues) >= CACHED_NAMES:
                self._queues.clear()
            queues = self._queues[name] = self._record.queues_for(name)
        return queues

    def fresh(self, channel: RabbitMQChannel) -> asyncio.Future[None]:
        """Return a future done once a get sent from now on has been applied.

        Raises:
            RabbitMQChannelClosed: the channel is closed (from the future, or at once).
        """
        waiting = self._waiting
        if waiting is None:
            waiting = self._waiting = asyncio.get_running_loop().create_future()
            waiting.add_done_callback(_retrieved)  # a failed publish may not await it
            if self._getting is None or self._getting.is_closed:
                self._get(channel)
        return waiting

    def _get(self, channel: RabbitMQChannel) -> None:
        """Send a get for everyone waiting so far."""
        answered, self._waiting = self._waiting, None
        assert answered is not None
        try:
            request = channel.get_soon(self._queue, auto_ack=True)
        except Exception as exc:  # closed, or pika refusing it: the publishes fail with it
            answered.set_exception(exc)
            return
        self._getting = channel
        request.add_done_callback(lambda done: self._got(done, answered, channel))

    def _got(self, request: asyncio.Future[RabbitMQIncoming | None],
             answered: asyncio.Future[None], channel: RabbitMQChannel) -> None:
        """Apply a get's answer, tell its waiters, and send the next get if anyone waits.

        A get on a channel that closed fails its waiters, and the next one's (the
        publishes fail too: their connection is gone).
        """
        if self._getting is channel:
            self._getting = None
        if request.cancelled():
            answered.cancel()
        elif (error := request.exception()) is not None:
            answered.set_exception(error)
        else:
            message = request.result()
            if message is not None:
                self.apply(RabbitMQSubscriptions.decode(message.body))
            answered.set_result(None)
        if self._waiting is not None and self._getting is None:
            self._get(channel)


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
