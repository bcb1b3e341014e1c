"""paho-mqtt 2 bridged to asyncio: one `MQTTConnection` per MQTT connection.

paho runs its network loop in a thread of its own (`loop_start`); every callback is
handed to the asyncio loop with `call_soon_threadsafe`, so all state below is touched
on the loop alone. Measured against aiomqtt and zmqtt under wrkr's workload (QoS 1
publish -> receive -> manual ack), paho on its own thread was the fastest by 2-4x
(bench/README.md). A connection is never reconnected: `BrokerBackend` opens a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from wrkr import BackendUnavailable

logger = logging.getLogger("wrkr.mqtt")

CONNECT_TIMEOUT = 10.0
KEEPALIVE = 15  # seconds: a dead peer is noticed within 1.5 keepalives
DISCONNECT_WITH_WILL = 4  # MQTT 5 reason code: close as a crash would, the will published
PUBLISH_FAILED = 0x80  # PUBACK reason codes from here on are refusals


@dataclass(frozen=True, slots=True)
class MQTTAddress:
    """Where the broker is and how to log in."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class MQTTWill:
    """A retained message the broker publishes if the connection dies without DISCONNECT."""

    topic: str
    payload: bytes


Received = Callable[[paho.MQTTMessage], None]


class MQTTConnection:
    """One MQTT 5 connection, its callbacks on the asyncio loop."""

    def __init__(self, address: MQTTAddress, client_id: str, *, on_message: Received,
                 manual_ack: bool = False) -> None:
        self.address = address
        self.client_id = client_id
        self._loop = asyncio.get_running_loop()
        self._on_message = on_message
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=paho.MQTTv5, manual_ack=manual_ack)
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        if address.username is not None:
            self._client.username_pw_set(address.username, address.password)
        if address.tls:
            self._client.tls_set_context(ssl.create_default_context())
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._connected: asyncio.Future[None] = self._loop.create_future()
        self.closed: asyncio.Future[str] = self._loop.create_future()
        self.session_present = False
        self._wire()

    def _wire(self) -> None:
        """Hand each paho callback (on paho's thread) to the asyncio loop."""
        call = self._loop.call_soon_threadsafe

        def on_connect(_c: Any, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
            call(self._connack, flags, rc)

        def on_disconnect(client: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            # paho's loop would reconnect by itself, and a reconnect with this client id
            # takes the session over from whoever holds it now: a connection ends here.
            client.disconnect()
            call(self._lost, str(rc))

        def on_acknowledged(_c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
            call(self._resolve, mid, rc)

        def on_message(_c: Any, _u: Any, message: paho.MQTTMessage) -> None:
            call(self._on_message, message)

        client = self._client
        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_acknowledged
        client.on_subscribe = on_acknowledged
        client.on_unsubscribe = on_acknowledged
        client.on_message = on_message

    def __repr__(self) -> str:
        return f"MQTTConnection({self.address}, {self.client_id!r})"

    @property
    def is_open(self) -> bool:
        """Tell whether the connection is up."""
        return self._connected.done() and not self.closed.done()

    async def open(self, *, clean_start: bool, expiry: int, receive_maximum: int = 0,
                   will: MQTTWill | None = None) -> None:
        """Connect and wait for CONNACK; `expiry` is the session expiry in seconds.

        Raises:
            BackendUnavailable: the broker is unreachable or refused the connection.
        """
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = expiry
        if receive_maximum:
            properties.ReceiveMaximum = receive_maximum
        if will is not None:
            self._client.will_set(will.topic, will.payload, qos=1, retain=True)
        try:
            await asyncio.to_thread(self._client.connect, self.address.host, self.address.port,
                                    KEEPALIVE, clean_start=clean_start, properties=properties)
            self._client.loop_start()
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await asyncio.shield(self._connected)
        except (OSError, TimeoutError, BackendUnavailable) as exc:
            await self.close()
            raise BackendUnavailable(f"MQTT broker at {self.address}: cannot connect "
                                     f"as {self.client_id!r}: {exc}") from exc

    def _connack(self, flags: Any, rc: ReasonCode) -> None:
        if self._connected.done():
            return
        if rc.is_failure:
            self._connected.set_exception(BackendUnavailable(f"CONNACK {rc}"))
            self._lost(f"refused: {rc}")
            return
        self.session_present = bool(flags.session_present)
        self._connected.set_result(None)

    def _lost(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        if not self._connected.done():
            self._connected.set_exception(BackendUnavailable(reason))
            self._connected.exception()  # retrieved: nobody may wait for it any more
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(self._unavailable(f"connection lost ({reason})"))

    def _resolve(self, mid: int, result: Any) -> None:
        future = self._waiting.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(result)

    def _unavailable(self, what: str) -> BackendUnavailable:
        return BackendUnavailable(f"MQTT broker at {self.address} ({self.client_id!r}): {what}")

    async def _wait(self, action: str, send: Callable[[], tuple[Any, Any]]) -> Any:
        """Send a packet and wait for its acknowledgement on the loop."""
        if not self.is_open:
            raise self._unavailable(f"cannot {action}: not connected")
        rc, mid = send()
        if rc != paho.MQTT_ERR_SUCCESS:
            raise self._unavailable(f"cannot {action}: {paho.error_string(rc)}")
        future = self._waiting[mid] = self._loop.create_future()
        return await future

    async def publish(self, topic: str, payload: bytes, *, properties: Properties | None = None,
                      retain: bool = False) -> None:
        """Publish at QoS 1 and wait for PUBACK.

        Raises:
            BackendUnavailable: not sent, or refused (the reason code is named).
        """
        def send() -> tuple[Any, Any]:
            info = self._client.publish(topic, payload, qos=1, retain=retain,
                                        properties=properties)
            return info.rc, info.mid

        rc: ReasonCode = await self._wait(f"publish to {topic!r}", send)
        if rc.value >= PUBLISH_FAILED:
            raise self._unavailable(f"PUBACK refused the publish to {topic!r}: {rc}")

    def send_at_most_once(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 0: no PUBACK to wait for (the sender sees it arrive, if at all).

        Raises:
            BackendUnavailable: not sent.
        """
        if not self.is_open:
            raise self._unavailable(f"cannot publish to {topic!r}: not connected")
        rc = self._client.publish(topic, payload, qos=0).rc
        if rc != paho.MQTT_ERR_SUCCESS:
            raise self._unavailable(f"cannot publish to {topic!r}: {paho.error_string(rc)}")

    async def subscribe(self, subscriptions: Sequence[tuple[str, int]]) -> None:
        """Subscribe QoS 1 filters, each with its subscription identifier (0: none).

        MQTT 5 carries one identifier per SUBSCRIBE, so each filter is its own packet.
        """
        waits = []
        for topic, identifier in subscriptions:
            properties = None
            if identifier:
                properties = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
                properties.SubscriptionIdentifier = identifier
            options = SubscribeOptions(qos=1)
            waits.append(self._wait(f"subscribe {topic!r}", functools.partial(
                self._client.subscribe, (topic, options), properties=properties)))
        for codes in await asyncio.gather(*waits):
            if any(code.is_failure for code in codes):
                raise self._unavailable(f"SUBACK refused: {codes}")

    async def unsubscribe(self, topics: Sequence[str]) -> None:
        """Unsubscribe filters (a filter not subscribed is no error)."""
        if topics:
            await self._wait("unsubscribe", lambda: self._client.unsubscribe(list(topics)))

    def ack(self, mid: int) -> bool:
        """Send the PUBACK of a received QoS 1 message; False when the connection is gone."""
        if not self.is_open:
            return False
        return self._client.ack(mid, 1) == paho.MQTT_ERR_SUCCESS

    async def close(self, *, as_crash: bool = False) -> None:
        """Disconnect (with the will published when `as_crash`) and stop paho's thread.

        Idempotent; never raises. The session stays on the broker for its expiry.
        """
        with contextlib.suppress(Exception):
            if self.is_open:
                reason = ReasonCode(PacketTypes.DISCONNECT,
                                    identifier=DISCONNECT_WITH_WILL if as_crash else 0)
                self._client.disconnect(reasoncode=reason)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        await asyncio.shield(self.closed)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._client.loop_stop)
        # loop_start's wake-up socket pair is closed only when paho's client is collected,
        # which a reference cycle delays past the sockets' own finalizers (ResourceWarning).
        reset = getattr(self._client, "_reset_sockets", None)
        if reset is not None:
            with contextlib.suppress(Exception):
                reset()
        self._lost("closed")

