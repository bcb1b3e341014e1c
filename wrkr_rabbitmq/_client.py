"""A small awaitable face over pika's asyncio adapter: the one module driving pika's I/O.

Why pika and not aiormq or aio-pika: measured under wrkr's workload on this machine
(bench/README.md, "RabbitMQ"), wrkr on pika's asyncio adapter moved about 2.5 times
as many persistent, confirmed events per second end to end as the same backend on
aiormq, which writes every AMQP frame with a socket send of its own (aio-pika is a
layer over aiormq). This module also makes pika write all frames of one event-loop
turn at once (see `_CoalescingAsyncioConnection`).

pika speaks in callbacks; this module turns each callback pair into a future.

What it offers is what wrkr needs and no more: declare / bind / delete, QoS,
consume with a plain callback, `get`, `publish` with publisher confirms returning
whether the broker routed the message, and `ack` / `nack` / `reject`. A channel opened
with `transactional=True` uses AMQP transactions instead of confirms (RabbitMQ refuses
both on one channel): `publish_in_transaction`, then `commit` or `rollback`.
Every failure surfaces as a pika `AMQPError`, `OSError` or `RabbitMQChannelClosed`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika  # type: ignore[import-untyped]
import pika.channel  # type: ignore[import-untyped]
import pika.exceptions  # type: ignore[import-untyped]
import pika.frame  # type: ignore[import-untyped]
import pika.spec  # type: ignore[import-untyped]
from pika.adapters.asyncio_connection import AsyncioConnection  # type: ignore[import-untyped]


class RabbitMQChannelClosed(ConnectionError):
    """The channel (or its connection) closed: pending operations on it failed."""

    def __init__(self, reason: object) -> None:
        super().__init__(str(reason))
        self.reply_code = int(getattr(reason, "reply_code", 0) or 0)


class RabbitMQCommitUncertain(RabbitMQChannelClosed):
    """The channel closed, not by a broker error, while tx.commit was on its way.

    The broker may have committed the transaction before the connection was lost, or
    not: the client cannot tell which.
    """

    def __init__(self, reason: object) -> None:
        super().__init__(f"the connection was lost during tx.commit, so whether the broker "
                         f"stored the batch is unknown ({reason})")
        self.reply_code = int(getattr(reason, "reply_code", 0) or 0)


@dataclass(frozen=True, slots=True)
class RabbitMQIncoming:
    """A message received by `consume` or `get`."""

    delivery_tag: int
    redelivered: bool
    routing_key: str
    message_id: str | None
    headers: dict[str, Any]
    body: bytes
    exchange: str = ""  # where it was first published ("" for the default exchange)


def _incoming(method: Any, properties: pika.spec.BasicProperties, body: bytes) -> RabbitMQIncoming:
    return RabbitMQIncoming(int(method.delivery_tag), bool(method.redelivered),
                            str(method.routing_key), properties.message_id,
                            dict(properties.headers or {}), body, str(method.exchange))


class RabbitMQChannel:
    """One AMQP channel, with publisher confirms or transactions; every RPC is awaitable."""

    def __init__(self, channel: pika.channel.Channel) -> None:
        loop = asyncio.get_running_loop()
        self._channel = channel
        self._pending: set[asyncio.Future[Any]] = set()
        self._confirms: dict[int, tuple[asyncio.Future[bool], str | None]] = {}
        self._returned: set[str] = set()
        self._tags = itertools.count(1)
        self.closing: asyncio.Future[None] = loop.create_future()
        self._get_reply: Callable[[Any], None] | None = None  # the get in flight (one at most)
        channel.add_on_close_callback(self._on_close)
        channel.add_on_return_callback(self._on_return)
        # Once, not per get: pika's callback registry costs ~30 us a registration.
        channel.add_callback(self._on_get_empty, [pika.spec.Basic.GetEmpty], one_shot=False)

    @property
    def is_closed(self) -> bool:
        """Tell whether the channel can no longer be used."""
        return self.closing.done() or not self._channel.is_open

    def _on_close(self, _channel: object, reason: BaseException) -> None:
        error = RabbitMQChannelClosed(reason)
        for future in [*self._pending, *(f for f, _ in self._confirms.values())]:
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        self._confirms.clear()
        if not self.closing.done():
            self.closing.set_result(None)

    async def _rpc(self, start: Callable[[Callable[[Any], None]], object]) -> Any:
        """Start an operation whose reply comes to a callback; wait for the reply."""
        return await self._start_rpc(start)

    def _start_rpc(self, start: Callable[[Callable[[Any], None]], object]) -> asyncio.Future[Any]:
        """Start an operation whose reply comes to a callback; return the reply's future."""
        if self.is_closed:
            raise RabbitMQChannelClosed("channel is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.add(future)

        def reply(frame: Any) -> None:
            self._pending.discard(future)
            if not future.done():
                future.set_result(frame)

        start(reply)
        return future

    async def enable_confirms(self) -> None:
        """Turn publisher confirms on (done once, by `RabbitMQConnection.channel`)."""
        await self._rpc(lambda cb: self._channel.confirm_delivery(self._on_confirm, callback=cb))

    async def select_transactions(self) -> None:
        """Put the channel in transaction mode (tx.select), for good; no confirms then."""
        await self._rpc(lambda cb: self._channel.tx_select(callback=cb))

    def publish_in_transaction(self, body: bytes, *, exchange: str, routing_key: str,
                               properties: pika.spec.BasicProperties) -> None:
        """Publish, mandatory, into the open transaction: nothing is stored before `commit`.

        Raises:
            RabbitMQChannelClosed: the channel is closed (nothing was sent).
            pika.exceptions.AMQPError: pika cannot encode the message (nothing was sent).
        """
        self._guard()
        self._channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)

    async def commit(self) -> set[str]:
        """Commit the transaction (tx.commit); return the ids of messages that reached no queue.

        RabbitMQ sends a transaction's basic.return frames on commit, before commit-ok,
        so once commit-ok is in, every return of the transaction has been counted.
        """
        await self._rpc(lambda cb: self._channel.tx_commit(callback=cb))
        returned, self._returned = self._returned, set()
        return returned

    async def rollback(self) -> None:
        """Discard what the open transaction published (tx.rollback)."""
        await self._rpc(lambda cb: self._channel.tx_rollback(callback=cb))
        self._returned.clear()

    async def qos(self, prefetch: int) -> None:
        """Let the broker hand this channel at most `prefetch` unacked messages."""
        await self._rpc(lambda cb: self._channel.basic_qos(prefetch_count=prefetch, callback=cb))

    async def exchange_declare(self, name: str, kind: str,
                               arguments: dict[str, Any] | None = None) -> None:
        """Declare a durable exchange."""
        await self._rpc(lambda cb: self._channel.exchange_declare(
            name, exchange_type=kind, durable=True, arguments=arguments, callback=cb))

    async def queue_declare(self, name: str, *, passive: bool = False,
                            arguments: dict[str, Any] | None = None) -> int:
        """Declare a durable queue; return how many ready messages it holds."""
        frame = await self._rpc(lambda cb: self._channel.queue_declare(
            name, passive=passive, durable=True, arguments=arguments, callback=cb))
        return int(frame.method.message_count)

    async def queue_bind(self, queue: str, exchange: str, key: str) -> None:
        """Bind a queue to an exchange."""
        await self._rpc(lambda cb: self._channel.queue_bind(queue, exchange, key, callback=cb))

    async def queue_unbind(self, queue: str, exchange: str, key: str) -> None:
        """Remove a queue's binding."""
        await self._rpc(lambda cb: self._channel.queue_unbind(queue, exchange, key, callback=cb))

    async def exchange_bind(self, destination: str, source: str, key: str) -> None:
        """Bind an exchange to another."""
        await self._rpc(lambda cb: self._channel.exchange_bind(
            destination, source, key, callback=cb))

    async def queue_delete(self, name: str) -> None:
        """Delete a queue (and its messages)."""
        await self._rpc(lambda cb: self._channel.queue_delete(name, callback=cb))

    async def exchange_delete(self, name: str) -> None:
        """Delete an exchange."""
        await self._rpc(lambda cb: self._channel.exchange_delete(name, callback=cb))

    async def consume(self, queue: str, on_message: Callable[[RabbitMQIncoming], None],
                      on_cancel: Callable[[], None] | None = None) -> str:
        """Consume `queue` with manual acks; `on_message` runs in the event loop.

        `on_cancel` runs if the broker cancels the consumer (its queue was deleted).
        """
        def deliver(_ch: object, method: Any, properties: Any, body: bytes) -> None:
            on_message(_incoming(method, properties, body))

        if on_cancel is not None:
            self._channel.add_on_cancel_callback(lambda _frame: on_cancel())

        tags: list[str] = []
        await self._rpc(lambda cb: tags.append(self._channel.basic_consume(
            queue, deliver, callback=cb)))
        return tags[0]

    async def cancel(self, consumer_tag: str) -> None:
        """Stop a consumer; no message arrives for it after this returns."""
        if consumer_tag not in self._channel.consumer_tags:
            return  # the broker cancelled it already

        def start(reply: Callable[[Any], None]) -> None:
            self._channel.basic_cancel(consumer_tag, callback=reply)
            # pika rejects with requeue what arrives between Cancel and Cancel-Ok, which
            # marks it redelivered (an attempt, to wrkr). Keep taking those deliveries
            # instead: the consumer hands them back itself, uncounted.
            self._channel._cancelled.discard(consumer_tag)

        await self._rpc(start)

    async def get(self, queue: str) -> RabbitMQIncoming | None:
        """Take one message, unacked; None when the queue has none ready."""
        result: RabbitMQIncoming | None = await self.get_soon(queue)
        return result

    def get_soon(self, queue: str, *,
                 auto_ack: bool = False) -> asyncio.Future[RabbitMQIncoming | None]:
        """Send a basic.get now (one at a time per channel); return the answer's future.

        Raises:
            RabbitMQChannelClosed: the channel is closed (nothing was sent).
        """
        def start(reply: Callable[[Any], None]) -> None:
            self._channel.basic_get(queue, lambda _ch, m, p, b: reply(_incoming(m, p, b)),
                                    auto_ack=auto_ack)
            self._get_reply = reply

        return self._start_rpc(start)

    def _on_get_empty(self, _frame: object) -> None:
        reply, self._get_reply = self._get_reply, None
        if reply is not None:
            reply(None)

    async def queue_declare_exclusive(self, arguments: dict[str, Any]) -> str:
        """Declare a queue of this connection's alone (the broker names it); return its name."""
        frame = await self._rpc(lambda cb: self._channel.queue_declare(
            "", exclusive=True, arguments=arguments, callback=cb))
        return str(frame.method.queue)

    def publish(self, body: bytes, *, exchange: str, routing_key: str,
                properties: pika.spec.BasicProperties,
                mandatory: bool = False) -> asyncio.Future[bool]:
        """Publish; the future tells, once confirmed, whether the broker routed it anywhere.

        Raises:
            RabbitMQChannelClosed: the channel is closed (nothing was sent).
        """
        if self.is_closed:
            raise RabbitMQChannelClosed("channel is closed")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._channel.basic_publish(exchange, routing_key, body, properties, mandatory)
        self._confirms[next(self._tags)] = (future, properties.message_id if mandatory else None)
        return future

    def _on_return(self, _ch: object, _method: Any, properties: Any, _body: bytes) -> None:
        if properties.message_id:
            self._returned.add(properties.message_id)

    def _on_confirm(self, frame: pika.frame.Method[Any]) -> None:
        method = frame.method
        tags = [t for t in self._confirms if t <= method.delivery_tag] if method.multiple \
            else [method.delivery_tag]
        for tag in tags:
            future, message_id = self._confirms.pop(tag, (None, None))
            if future is None or future.done():
                continue
            if isinstance(method, pika.spec.Basic.Nack):
                future.set_exception(RabbitMQChannelClosed("the broker refused the message"))
            else:
                routed = message_id not in self._returned
                self._returned.discard(message_id or "")
                future.set_result(routed)

    def ack(self, delivery_tag: int) -> None:
        """Ack one message."""
        self._guard()
        self._channel.basic_ack(delivery_tag)

    def nack(self, delivery_tag: int, *, multiple: bool = False, requeue: bool = True) -> None:
        """Nack one message (or every one up to it)."""
        self._guard()
        self._channel.basic_nack(delivery_tag, multiple=multiple, requeue=requeue)

    def reject(self, delivery_tag: int, *, requeue: bool) -> None:
        """Reject one message."""
        self._guard()
        self._channel.basic_reject(delivery_tag, requeue=requeue)

    def _guard(self) -> None:
        if self.is_closed:
            raise RabbitMQChannelClosed("channel is closed")

    async def close(self) -> None:
        """Close the channel; unacked messages go back to their queues. Idempotent."""
        if not self.is_closed:
            self._channel.close()
            await asyncio.shield(self.closing)


class _CoalescingAsyncioConnection(AsyncioConnection):  # type: ignore[misc]
    """pika's asyncio connection, writing what a loop turn produced with one socket send.

    pika hands every frame to the transport as it is made, and the transport sends
    each at once: a publish (method, header and body frames) cost three system calls
    and every ack one more, a third of the whole cost per event. This collects the
    frames of one event-loop turn and writes them together at its end. It overrides
    pika's private `_output_marshaled_frames` (unchanged since pika 1.0).
    """

    _outgoing: list[bytes] | None = None

    def _output_marshaled_frames(self, marshaled_frames: list[bytes]) -> None:
        if self._outgoing is None:
            self._outgoing = []
            asyncio.get_running_loop().call_soon(self._flush_outgoing)
        self._outgoing.extend(marshaled_frames)
        self.frames_sent += len(marshaled_frames)

    def _flush_outgoing(self) -> None:
        data, self._outgoing = b"".join(self._outgoing or ()), None
        self.bytes_sent += len(data)
        if self._transport is not None:  # gone when the connection died meanwhile
            self._adapter_emit_data(data)


class RabbitMQConnection:
    """One AMQP connection over pika's asyncio adapter."""

    def __init__(self, connection: AsyncioConnection) -> None:
        self._connection = connection

    @classmethod
    async def connect(cls, url: str) -> RabbitMQConnection:
        """Open a connection.

        Raises:
            pika.exceptions.AMQPConnectionError: the broker cannot be reached.
        """
        opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def failed(_connection: object, error: BaseException | str) -> None:
            if not opened.done():
                opened.set_exception(error if isinstance(error, BaseException)
                                     else pika.exceptions.AMQPConnectionError(error))

        connection = _CoalescingAsyncioConnection(
            pika.URLParameters(url), on_open_callback=lambda _: opened.set_result(None),
            on_open_error_callback=failed, on_close_callback=failed)
        try:
            await opened
        except asyncio.CancelledError:
            # Cancelled half-way (a backend closing while it reconnects): close the socket
            # pika holds, or it is left open until garbage collection (a ResourceWarning).
            if not (connection.is_closing or connection.is_closed):
                connection.close()
            raise
        return cls(connection)

    @property
    def is_closed(self) -> bool:
        """Tell whether the connection is closed or closing."""
        return not self._connection.is_open

    async def channel(self, *, transactional: bool = False) -> RabbitMQChannel:
        """Open a channel with publisher confirms on, or in transaction mode."""
        opened: asyncio.Future[pika.channel.Channel] = (
            asyncio.get_running_loop().create_future())
        self._connection.channel(on_open_callback=opened.set_result)
        async with asyncio.timeout(30):
            channel = RabbitMQChannel(await opened)
        if transactional:
            await channel.select_transactions()
        else:
            await channel.enable_confirms()
        return channel

    async def close(self) -> None:
        """Close the connection: the broker requeues every unacked message. Idempotent."""
        if self._connection.is_open:
            closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._connection.add_on_close_callback(lambda *_: closed.set_result(None))
            self._connection.close()
            async with asyncio.timeout(10):
                await closed
