"""Raw RabbitMQ clients doing wrkr's workload, without wrkr: the baselines of bench_rabbitmq.

The workload, alike for every client: one process publishes N persistent 200-byte
messages to a durable queue in batches of BATCH, each batch pipelined and confirmed
as a whole (publisher confirms), while a consumer on a second channel of the same
connection takes them with manual acks and QoS prefetch PREFETCH. The time is from
the first publish to the last ack.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

import aio_pika
import aiormq
import pika  # type: ignore[import-untyped]
from pamqp.commands import Basic
from pika.adapters.asyncio_connection import AsyncioConnection  # type: ignore[import-untyped]

URL = "amqp://guest:guest@127.0.0.1:5672/"
BATCH = 100
PREFETCH = 100
BODY = b'{"payload": "' + b"x" * 184 + b'"}'  # 200 bytes


def queue_name(client: str) -> str:
    """Return a fresh queue name for one run."""
    return f"bench.raw.{client}.{secrets.token_hex(3)}"


async def aiormq_end_to_end(count: int) -> float:
    """Run the workload on aiormq; return the seconds it took."""
    connection = await aiormq.connect(URL)
    publisher, consumer = await connection.channel(), await connection.channel()
    queue = queue_name("aiormq")
    await consumer.queue_declare(queue, durable=True)
    await consumer.basic_qos(prefetch_count=PREFETCH)
    done, seen = asyncio.get_running_loop().create_future(), [0]

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        await consumer.basic_ack(message.delivery_tag, wait=False)  # type: ignore[arg-type]
        seen[0] += 1
        if seen[0] == count:
            done.set_result(None)

    properties = Basic.Properties(delivery_mode=2)
    start = time.perf_counter()
    await consumer.basic_consume(queue, on_message)
    for _ in range(count // BATCH):
        await asyncio.gather(*(publisher.basic_publish(  # type: ignore[call-arg]
            BODY, routing_key=queue, properties=properties, wait=False) for _ in range(BATCH)))
    await done
    elapsed = time.perf_counter() - start
    await consumer.queue_delete(queue)
    await connection.close()
    return elapsed


async def aio_pika_end_to_end(count: int) -> float:
    """Run the workload on aio-pika; return the seconds it took."""
    connection = await aio_pika.connect(URL)
    publisher, consumer = await connection.channel(), await connection.channel()
    await consumer.set_qos(prefetch_count=PREFETCH)
    queue = await consumer.declare_queue(queue_name("aio_pika"), durable=True)
    done, seen = asyncio.get_running_loop().create_future(), [0]

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()
        seen[0] += 1
        if seen[0] == count:
            done.set_result(None)

    start = time.perf_counter()
    await queue.consume(on_message)
    exchange = publisher.default_exchange
    for _ in range(count // BATCH):
        await asyncio.gather(*(exchange.publish(
            aio_pika.Message(BODY, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue.name) for _ in range(BATCH)))
    await done
    elapsed = time.perf_counter() - start
    await queue.delete(if_unused=False, if_empty=False)
    await connection.close()
    return elapsed


async def pika_end_to_end(count: int) -> float:
    """Run the workload on pika's asyncio adapter (callbacks); return the seconds it took."""
    run = _PikaRun(count, asyncio.get_running_loop())
    return await run.finished


class _PikaRun:
    """The workload as pika's callback chain: open, declare, consume, publish batch by batch."""

    def __init__(self, count: int, loop: asyncio.AbstractEventLoop) -> None:
        self.count, self.queue = count, queue_name("pika")
        self.finished: asyncio.Future[float] = loop.create_future()
        self.seen = self.confirmed = self.sent = 0
        self.start = 0.0
        self.connection = AsyncioConnection(pika.URLParameters(URL), custom_ioloop=loop,
                                            on_open_callback=self._opened)

    def _opened(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._consumer_open)

    def _consumer_open(self, channel: Any) -> None:
        self.consumer = channel
        channel.queue_declare(self.queue, durable=True, callback=lambda _: channel.basic_qos(
            prefetch_count=PREFETCH, callback=lambda _: self.connection.channel(
                on_open_callback=self._publisher_open)))

    def _publisher_open(self, channel: Any) -> None:
        self.publisher = channel
        channel.confirm_delivery(self._confirmed, callback=lambda _: self._begin())

    def _begin(self) -> None:
        self.start = time.perf_counter()
        self.consumer.basic_consume(self.queue, self._message)
        self._publish_batch()

    def _publish_batch(self) -> None:
        properties = pika.BasicProperties(delivery_mode=2)
        for _ in range(BATCH):
            self.publisher.basic_publish("", self.queue, BODY, properties)
        self.sent += BATCH

    def _confirmed(self, frame: Any) -> None:
        tag = frame.method.delivery_tag
        self.confirmed = tag if frame.method.multiple else max(self.confirmed, tag)
        if self.confirmed == self.sent and self.sent < self.count:
            self._publish_batch()

    def _message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        channel.basic_ack(method.delivery_tag)
        self.seen += 1
        if self.seen == self.count:
            elapsed = time.perf_counter() - self.start
            self.consumer.queue_delete(self.queue, callback=lambda _: self._close(elapsed))

    def _close(self, elapsed: float) -> None:
        self.connection.close()
        self.finished.set_result(elapsed)


RAW_CLIENTS = {
    "aiormq": aiormq_end_to_end,
    "aio-pika": aio_pika_end_to_end,
    "pika (asyncio adapter)": pika_end_to_end,
}
