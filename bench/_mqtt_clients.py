"""Raw MQTT clients under wrkr's workload: QoS 1 publish -> receive -> manual ack.

Each run subscribes one persistent MQTT 5 session to a fresh topic, publishes COUNT
messages of 200 bytes at QoS 1 (every PUBACK awaited, at most WINDOW unacknowledged
at once) while receiving them, and acks each received message by hand (a PUBACK sent
only after the "handler" ran: what wrkr needs). It returns the seconds from the first
publish to the last message received.

* paho-mqtt 2, its network loop in its own thread (`loop_start`), bridged to asyncio
  with `call_soon_threadsafe` (what wrkr_mqtt does);
* aiomqtt 2.x over paho on the asyncio loop: it has no public manual-ack API, so it is
  run with its automatic acks (acked on receipt, before any handler);
* zmqtt, pure asyncio (FastStream's MQTT client), with `auto_ack=False` and `ack()`.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HOST, PORT = "127.0.0.1", 1883
WINDOW = 100  # publishes in flight at once
PAYLOAD = b'{"payload": "' + b"x" * 184 + b'"}'


def _topic() -> str:
    return f"bench-{secrets.token_hex(4)}/x"


def _paho(client_id: str, *, manual_ack: bool) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=paho.MQTTv5, manual_ack=manual_ack)
    client.max_inflight_messages_set(WINDOW)
    return client


def _connect(client: paho.Client) -> None:
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 60
    client.connect(HOST, PORT, clean_start=False, properties=properties)


async def paho_threaded(count: int) -> float:
    """paho with `loop_start()`: callbacks on paho's thread, handed to asyncio."""
    loop = asyncio.get_running_loop()
    topic, done = _topic(), loop.create_future()
    received = 0
    consumer = _paho(f"bench-c-{secrets.token_hex(4)}", manual_ack=True)

    def handle(message: paho.MQTTMessage) -> None:
        nonlocal received
        consumer.ack(message.mid, message.qos)
        received += 1
        if received == count and not done.done():
            done.set_result(None)

    consumer.on_message = lambda _c, _u, message: loop.call_soon_threadsafe(handle, message)
    _connect(consumer)
    consumer.loop_start()
    subscribed = loop.create_future()
    consumer.on_subscribe = lambda *_: loop.call_soon_threadsafe(subscribed.set_result, None)
    consumer.subscribe(topic, qos=1)
    await subscribed
    publisher = _paho(f"bench-p-{secrets.token_hex(4)}", manual_ack=False)
    _connect(publisher)
    publisher.loop_start()
    window = asyncio.Semaphore(WINDOW)
    publisher.on_publish = lambda *_: loop.call_soon_threadsafe(window.release)
    start = time.perf_counter()
    for _ in range(count):
        await window.acquire()
        publisher.publish(topic, PAYLOAD, qos=1)
    await done
    elapsed = time.perf_counter() - start
    for client in (publisher, consumer):
        client.disconnect()
        client.loop_stop()
    return elapsed


async def aiomqtt_auto(count: int) -> float:
    """aiomqtt 2.x: paho on the asyncio loop, acks sent by paho on receipt."""
    import aiomqtt

    topic = _topic()
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 60
    async with aiomqtt.Client(HOST, PORT, identifier=f"bench-c-{secrets.token_hex(4)}",
                              protocol=aiomqtt.ProtocolVersion.V5, clean_start=False,
                              properties=properties) as consumer, \
            aiomqtt.Client(HOST, PORT, protocol=aiomqtt.ProtocolVersion.V5,
                           max_inflight_messages=WINDOW) as publisher:
        await consumer.subscribe(topic, qos=1)

        async def receive() -> None:
            received = 0
            async for _message in consumer.messages:
                received += 1
                if received == count:
                    return

        start = time.perf_counter()
        receiving = asyncio.create_task(receive())
        window = asyncio.Semaphore(WINDOW)

        async def send() -> None:
            async with window:
                await publisher.publish(topic, PAYLOAD, qos=1)

        await asyncio.gather(*(send() for _ in range(count)))
        await receiving
        return time.perf_counter() - start


async def zmqtt_manual(count: int) -> float:
    """zmqtt, pure asyncio, `auto_ack=False` and `await message.ack()`."""
    import zmqtt

    topic = _topic()
    consumer = zmqtt.MQTTClient(HOST, PORT, client_id=f"bench-c-{secrets.token_hex(4)}",
                                version="5.0", clean_session=False,
                                session_expiry_interval=60)
    publisher = zmqtt.MQTTClient(HOST, PORT, version="5.0")
    async with consumer, publisher, consumer.subscribe(
            topic, qos=zmqtt.QoS.AT_LEAST_ONCE, auto_ack=False,
            receive_buffer_size=count) as subscription:

        async def receive() -> None:
            received = 0
            async for message in subscription:
                await message.ack()
                received += 1
                if received == count:
                    return

        start = time.perf_counter()
        receiving = asyncio.create_task(receive())
        window = asyncio.Semaphore(WINDOW)

        async def send() -> None:
            async with window:
                await publisher.publish(topic, PAYLOAD, qos=zmqtt.QoS.AT_LEAST_ONCE)

        await asyncio.gather(*(send() for _ in range(count)))
        await receiving
        return time.perf_counter() - start


RAW_CLIENTS: dict[str, Callable[[int], Awaitable[float]]] = {
    "paho-mqtt 2, loop thread bridged to asyncio, manual acks": paho_threaded,
    "aiomqtt 2.5 (paho on the asyncio loop), automatic acks": aiomqtt_auto,
    "zmqtt 0.2 (pure asyncio), manual acks": zmqtt_manual,
}
