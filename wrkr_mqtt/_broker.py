"""MQTTBroker: the `Broker` primitives on an MQTT 5 broker, through paho (see _client.py).

One control connection per broker (a clean session) publishes events and keeps the
live view of the subscription and presence records (_registry.py); each consumer has
a persistent session of its queue (_consumer.py). Subscribing records the
subscription, then makes sure the queue's session 0 holds it, so that an event
published while no consumer is connected waits in that session. A session held by a
consumer of another process follows the records itself, a few milliseconds later: an
event published in between reaches the queue's other sessions, or, if it has none, is
not kept. An unsubscribe removes the filter from every idle session too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar

from wrkr import BackendUnavailable
from wrkr.backend import (
    Broker,
    Capability,
    Message,
    Settle,
    Settlement,
    copy_id,
    new_item_id,
    to_micros,
)
from wrkr_mqtt._client import MQTTAddress, MQTTConnection, MQTTWill
from wrkr_mqtt._consumer import MQTTConsumer, MQTTReceipt
from wrkr_mqtt._messages import MQTTEnvelope, envelope_for
from wrkr_mqtt._registry import OFFLINE, ONLINE, MQTTRegistry, presence, subscription_record
from wrkr_mqtt._session import SessionTaken, filters_of
from wrkr_mqtt._topics import DIRECT_ID, MQTTTopics, subscription_id

logger = logging.getLogger("wrkr.mqtt")

#: seconds a session must stay offline before a running consumer adopts it: a session
#: taken over (its will says offline) is online again by then, and is left alone.
ADOPT_AFTER = 0.3


class MQTTBroker(Broker[MQTTReceipt]):
    """Keeps subscriptions as shared subscriptions of persistent sessions on an MQTT broker.

    Args:
        address: the broker.
        prefix: the namespace: the root of event topics and of wrkr's own topics.
        session_expiry: seconds a queue's session (and what waits in it) outlives
            its last connection.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.WILDCARDS})

    def __init__(self, address: MQTTAddress, *, prefix: str = "wrkr",
                 session_expiry: int = 7 * 86_400) -> None:
        self.address = address
        self.topics = MQTTTopics(prefix)
        self.session_expiry = session_expiry
        self.registry = MQTTRegistry(self.topics)
        self.registry.on_change = self._changed
        self._control: MQTTConnection | None = None
        self._consumers: dict[str, list[MQTTConsumer]] = {}
        self._taking = asyncio.Lock()
        self._following: set[asyncio.Task[None]] = set()
        self._failed_sessions: set[str] = set()

    def __repr__(self) -> str:
        return f"MQTTBroker({str(self.address)!r}, prefix={self.topics.prefix!r})"

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """Tell whether the control connection is up."""
        return self._control is not None and self._control.is_open

    async def connect(self) -> None:
        """Open the control connection and read the records."""
        await self.disconnect()
        client_id = f"{self.topics.prefix}.c.{secrets.token_hex(6)}"
        control = MQTTConnection(self.address, client_id, on_message=self.registry.receive)
        await control.open(clean_start=True, expiry=0)
        self._control = control
        try:
            await self.registry.start(control)
        except (BackendUnavailable, TimeoutError) as exc:
            await self.disconnect()
            raise BackendUnavailable(f"MQTT broker at {self.address}: cannot read the "
                                     f"subscription records: {exc}") from exc

    async def disconnect(self, *, as_crash: bool = False) -> None:
        """Close every connection; sessions keep what they held. Idempotent."""
        consumers = [c for group in self._consumers.values() for c in group]
        self._consumers.clear()
        await asyncio.gather(*(c.close(as_crash=as_crash) for c in consumers))
        control, self._control = self._control, None
        if control is not None:
            await control.close()

    def _connection(self) -> MQTTConnection:
        if self._control is None or not self._control.is_open:
            raise BackendUnavailable(f"MQTT broker at {self.address}: not connected")
        return self._control

    # -- subscriptions -------------------------------------------------------------------

    async def subscribe(self, queue: str, pattern: str) -> None:
        """Record the subscription, then make the queue's sessions subscribe it."""
        await self._connection().publish(self.topics.record(queue, pattern),
                                         subscription_record(queue, pattern), retain=True)
        self.registry.patterns[queue].add(pattern)
        await self._settle_sessions(queue)

    async def unsubscribe(self, queue: str, pattern: str) -> None:
        """Delete the record; the queue's sessions drop the filter no pattern needs."""
        await self._connection().publish(self.topics.record(queue, pattern), b"", retain=True)
        self.registry.patterns[queue].discard(pattern)
        await self._settle_sessions(queue, dropped=pattern)

    def _held(self, queue: str) -> set[int]:
        """Return the numbers of `queue`'s sessions this process holds."""
        return {n for c in self._consumers.get(queue, []) for n in c.sessions}

    async def _settle_sessions(self, queue: str, dropped: str | None = None) -> None:
        """Bring this process's sessions of `queue` up to date, and session 0 if free."""
        for consumer in self._consumers.get(queue, []):
            await consumer.follow()
        held = self._held(queue)
        idle = set(self.registry.offline(queue)) - held
        if dropped is None:  # session 0 keeps the queue's events while nobody consumes
            idle = {0} if 0 not in held and self.registry.slots[queue].get(0) != ONLINE else set()
        for number in sorted(idle):  # an unsubscribe reaches every idle session
            await self._update_idle_session(queue, number, dropped)
        await self._ensure_failed_session(queue)

    async def _update_idle_session(self, queue: str, number: int, dropped: str | None) -> None:
        """Connect an idle session of `queue` to change its subscriptions, then leave."""
        slot = self.topics.slot(queue, number)
        session = MQTTConnection(self.address, self.topics.session(queue, number),
                                 on_message=lambda _m: None, manual_ack=True)
        await session.open(clean_start=False, expiry=self.session_expiry,
                           will=MQTTWill(slot, presence(OFFLINE)))
        try:
            patterns = self.registry.patterns.get(queue, set())
            wanted = [(self.topics.shared_direct(queue), DIRECT_ID)]
            wanted += [(f"$share/{queue}/{self.topics.prefix}/{f}", subscription_id(f))
                       for f in filters_of(patterns)]
            await session.subscribe(wanted)
            if dropped is not None:
                gone = filters_of({dropped}) - filters_of(patterns)
                await session.unsubscribe(
                    [f"$share/{queue}/{self.topics.prefix}/{f}" for f in gone])
            await session.publish(slot, presence(OFFLINE, set()), retain=True)
        finally:
            await session.close()

    async def _ensure_failed_session(self, queue: str) -> None:
        """Create the persistent session that keeps `queue`'s failed items, once."""
        if queue in self._failed_sessions:
            return
        session = MQTTConnection(self.address, self.topics.failed_session(queue),
                                 on_message=lambda _m: None, manual_ack=True)
        await session.open(clean_start=False, expiry=self.session_expiry)
        try:
            await session.subscribe([(self.topics.failed(queue), 0)])
        finally:
            await session.close()
        self._failed_sessions.add(queue)

    def _changed(self, queue: str) -> None:
        """Follow a record's change: subscriptions made elsewhere, sessions gone offline."""
        if self._consumers.get(queue):
            task = asyncio.ensure_future(self._follow(queue))
            self._following.add(task)
            task.add_done_callback(self._following.discard)

    async def _follow(self, queue: str) -> None:
        with contextlib.suppress(BackendUnavailable):
            for consumer in list(self._consumers.get(queue, [])):
                await consumer.follow()
            if not self.registry.offline(queue):
                return
            await asyncio.sleep(ADOPT_AFTER)
            async with self._taking:
                for number in set(self.registry.offline(queue)) - self._held(queue):
                    running = [c for c in self._consumers.get(queue, []) if not c.stopped]
                    if running:
                        await running[0].try_adopt(number)

    async def queues_for(self, name: str) -> list[str]:
        """Return the queues whose recorded patterns match `name`."""
        self._connection()
        return self.registry.queues_for(name)

    async def subscriptions(self) -> list[tuple[str, str]]:
        """Return the recorded (queue, pattern) pairs, sorted."""
        self._connection()
        return self.registry.subscriptions()

    # -- publishing ----------------------------------------------------------------------

    async def publish(self, messages: Sequence[Message]) -> list[str]:
        """Publish each message that reaches a queue at QoS 1; wait for every PUBACK.

        MQTT has no transactions: when the connection is lost mid-batch, the messages
        whose PUBACK arrived are published and the others may or may not be.

        Every message is published (the broker drops one that no session subscribes):
        the view of the subscriptions is made fresh beside the PUBACKs, and the ids
        returned are one per (message, queue it finds), `copy_id(message id, queue)`.
        """
        control = self._connection()
        envelopes = [(m, envelope_for(m, new_item_id())) for m in messages]
        try:
            await asyncio.gather(self._fresh(control), *(
                control.publish(self.topics.event(m.name), e.body, properties=e.properties())
                for m, e in envelopes))
        except BackendUnavailable as exc:
            raise BackendUnavailable(f"{exc}; of a batch of {len(envelopes)}, the messages "
                                     "acknowledged before are published, the others may "
                                     "be") from exc
        return [copy_id(e.item_id, queue) for m, e in envelopes
                for queue in self.registry.queues_for(m.name)]

    async def _fresh(self, control: MQTTConnection) -> None:
        """Bring the view of the subscription records up to this moment."""
        try:
            await self.registry.fresh(control)
        except TimeoutError as exc:
            raise BackendUnavailable(f"MQTT broker at {self.address}: the subscription "
                                     f"records did not come back: {exc}") from exc

    async def _send(self, topic: str, envelope: MQTTEnvelope) -> None:
        """Publish an envelope to one of wrkr's own topics, acknowledged."""
        await self._connection().publish(topic, envelope.body, properties=envelope.properties())

    async def _publish(self, topic: str, record: bytes) -> None:
        """Publish a retained record on the control connection."""
        await self._connection().publish(topic, record, retain=True)

    async def _refresh(self, queue: str, number: int) -> None:
        """Read session `number`'s presence record of `queue` afresh into the registry."""
        await self.registry.refresh(self._connection(), self.topics.slot(queue, number))

    # -- consuming and settling ------------------------------------------------------------

    async def consume(self, queue: str, *, worker: str, prefetch: int,
                      lease: timedelta) -> MQTTConsumer:
        """Take the lowest free session of `queue` and consume on it.

        `lease` is not a timer: a delivery is held while the session's connection lives.
        """
        self._connection()
        async with self._taking:  # two local consumers never take the same session
            group = self._consumers.setdefault(queue, [])
            group[:] = [c for c in group if c.sessions]  # closed ones hold nothing
            consumer = MQTTConsumer(self.address, self.topics, self.registry, queue,
                                    worker=worker, prefetch=prefetch,
                                    expiry=self.session_expiry, send=self._send,
                                    refresh=self._refresh, publish=self._publish,
                                    now=self.clock.now)
            group.append(consumer)
            tried: set[int] = set()
            try:
                while True:
                    number = self.registry.free_slot(queue, self._held(queue) | tried)
                    try:
                        await consumer.start(number)
                        break
                    except SessionTaken:
                        tried.add(number)  # another process's consumer has it: the next
            except BaseException:
                group.remove(consumer)
                await consumer.close()
                raise
        self._changed(queue)  # sessions offline now are adopted
        return consumer

    async def settle(self, settlement: Settlement[MQTTReceipt]) -> bool:
        """Publish the item's next copy where the settlement sends it, then PUBACK."""
        receipt = settlement.delivery.receipt
        if not receipt.session.is_open:
            return False
        await self._republish(settlement)
        return receipt.session.ack(receipt.mid)

    async def _republish(self, settlement: Settlement[MQTTReceipt]) -> None:
        """Publish the next copy: back to the queue (NACK, RELEASE, ABANDON) or parked."""
        how, item = settlement.how, settlement.delivery.item
        envelope = settlement.delivery.receipt.envelope
        if settlement.error is not None:
            envelope = envelope.add_error(settlement.error)
        direct = self.topics.direct(item.queue)
        if how is Settle.NACK:
            due = settlement.due or self.clock.now()
            await self._send(direct, envelope.with_changes(attempts=item.attempts,
                                                           due=to_micros(due)))
        elif how is Settle.FAIL:
            await self._send(self.topics.failed(item.queue),
                             envelope.with_changes(attempts=item.attempts))
        elif how is Settle.RELEASE:
            await self._send(direct, envelope.with_changes(attempts=item.attempts - 1))
        elif how is Settle.ABANDON:
            await self._send(direct, envelope.with_changes(attempts=item.attempts))



async def delete_namespace(broker: MQTTBroker) -> None:
    """Delete every record and end every session of `broker`'s namespace that it knows."""
    registry, topics, control = broker.registry, broker.topics, broker._connection()
    queues = set(registry.patterns) | set(registry.slots)
    for queue, patterns in list(registry.patterns.items()):
        for pattern in list(patterns):
            await control.publish(topics.record(queue, pattern), b"", retain=True)
    sessions = [topics.failed_session(q) for q in queues]
    for queue, slots in list(registry.slots.items()):
        for number in list(slots):
            await control.publish(topics.slot(queue, number), b"", retain=True)
            sessions.append(topics.session(queue, number))
    for client_id in sessions:
        session = MQTTConnection(broker.address, client_id, on_message=lambda _m: None)
        with contextlib.suppress(BackendUnavailable):
            await session.open(clean_start=True, expiry=0)
        await session.close()
