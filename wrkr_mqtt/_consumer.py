"""Consuming one wrkr queue on persistent MQTT sessions, with manual acks.

A consumer takes the lowest session of its queue that nobody holds (_session.py), so a
stopped or crashed consumer's session is the next one's: what it held comes back (MQTT
resends unacknowledged messages only when the same session reconnects, MQTT 5 section
4.4) and what was queued for it meanwhile is delivered. While it runs it also adopts
any session of its queue that goes offline (a crashed consumer's), since Mosquitto
deals a shared subscription's messages to every session in turn, connected or not.
The lease is the connection: PUBACK is sent only when the core settles a delivery.

A resend that counts (see `MQTTSession.counts`) is republished to the queue's direct
topic with one more attempt and acked. A copy arriving through a second pattern of the
same queue, or through a filter cut at a middle ``#`` that the pattern itself does not
match, is acked and dropped. An item not due yet (a retry's backoff) is held
unacknowledged until it is due.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import paho.mqtt.client as paho

from wrkr import BackendUnavailable
from wrkr.backend import BrokerConsumer, Delivery, matches, to_micros
from wrkr_mqtt._client import MQTTAddress
from wrkr_mqtt._messages import (
    MalformedMessage,
    MQTTEnvelope,
    foreign_envelope,
    item_of,
    received_envelope,
)
from wrkr_mqtt._registry import MQTTRegistry
from wrkr_mqtt._session import MQTTSession, filters_of
from wrkr_mqtt._topics import MQTTTopics, mqtt_filter, subscription_id

logger = logging.getLogger("wrkr.mqtt")

Sender = Callable[[str, MQTTEnvelope], Awaitable[None]]
Refresher = Callable[[str, int], Awaitable[None]]
Publisher = Callable[[str, bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class MQTTReceipt:
    """What settling a delivery needs: the session it came on, its packet id, its envelope."""

    session: MQTTSession
    mid: int
    envelope: MQTTEnvelope


@dataclass(frozen=True, slots=True)
class _Due:
    """A held message whose due time has come."""

    session: MQTTSession
    message: paho.MQTTMessage
    envelope: MQTTEnvelope


_Entry = tuple[MQTTSession, paho.MQTTMessage] | _Due | None


class MQTTConsumer(BrokerConsumer[MQTTReceipt]):
    """One consumer of `queue`: its own session, and the offline ones it adopted."""

    def __init__(self, address: MQTTAddress, topics: MQTTTopics, registry: MQTTRegistry,
                 queue: str, *, worker: str, prefetch: int, expiry: int, send: Sender,
                 refresh: Refresher, publish: Publisher,
                 now: Callable[[], datetime]) -> None:
        self.queue = queue
        self._address, self._topics, self._registry = address, topics, registry
        self._worker, self._prefetch, self._expiry = worker, prefetch, expiry
        self._send, self._refresh, self._publish, self._now = send, refresh, publish, now
        self._buffer: asyncio.Queue[_Entry] = asyncio.Queue()
        self.sessions: dict[int, MQTTSession] = {}
        self._primary: MQTTSession | None = None
        self._stopped = False

    def __repr__(self) -> str:
        return f"MQTTConsumer({self.queue!r}, sessions={sorted(self.sessions)})"

    @property
    def stopped(self) -> bool:
        """Tell whether the consumer stopped handing out deliveries."""
        return self._stopped

    @property
    def is_open(self) -> bool:
        """Tell whether its own session's connection is up."""
        return self._primary is not None and self._primary.is_open

    async def start(self, number: int) -> None:
        """Take session `number` as this consumer's own; the consumer ends with it."""
        session = await self.adopt(number)
        self._primary = session
        session.connection.closed.add_done_callback(lambda _: self._buffer.put_nowait(None))

    async def adopt(self, number: int) -> MQTTSession:
        """Connect session `number` of the queue and consume what it holds too."""
        session = MQTTSession(self._address, self._topics, self._registry, self.queue, number,
                              self._arrive)
        self.sessions[number] = session
        try:
            await session.start(prefetch=self._prefetch, expiry=self._expiry,
                                refresh=self._refresh, publish=self._publish)
        except BaseException:
            self.sessions.pop(number, None)
            await session.close()
            raise
        session.connection.closed.add_done_callback(lambda _: self._drop(session))
        return session

    def _drop(self, session: MQTTSession) -> None:
        if self.sessions.get(session.number) is session and session is not self._primary:
            del self.sessions[session.number]

    async def follow(self) -> None:
        """Bring every session's subscriptions up to date with the queue's patterns."""
        for session in list(self.sessions.values()):
            if session.is_open:
                await session.follow()

    # -- receiving ----------------------------------------------------------------------

    def _arrive(self, session: MQTTSession, message: paho.MQTTMessage) -> None:
        if not self._stopped:
            self._buffer.put_nowait((session, message))

    def _ripe(self, entry: _Due) -> None:
        if not self._stopped:
            self._buffer.put_nowait(entry)

    async def next(self) -> Delivery[MQTTReceipt] | None:
        """Return the next delivery, or None once its own session's connection closed."""
        while (entry := await self._buffer.get()) is not None:
            if isinstance(entry, _Due):
                return self._delivery(entry.session, entry.message, entry.envelope)
            delivery = await self._admit(*entry)
            if delivery is not None:
                return delivery
        return None

    async def _admit(self, session: MQTTSession,
                     message: paho.MQTTMessage) -> Delivery[MQTTReceipt] | None:
        """Turn a message into a delivery; drop extra copies, park malformed, recount."""
        name = self._topics.name_of(message.topic)
        if name is not None and not self._meant_for_us(message, name):
            session.ack(message.mid)
            return None
        try:
            envelope = received_envelope(message, name, self._now()).in_queue(self.queue)
        except MalformedMessage as exc:
            logger.warning("parking a message of queue %r: %s", self.queue, exc)
            await self._send(self._topics.failed(self.queue),
                             foreign_envelope(message, name, str(exc), self._now()))
            session.ack(message.mid)
            return None
        if session.counts(message):
            await self._send(self._topics.direct(self.queue),
                             envelope.with_changes(attempts=envelope.attempts + 1))
            session.ack(message.mid)
            return None
        wait = (envelope.due_micros - to_micros(self._now())) / 1_000_000
        if wait > 0:
            asyncio.get_running_loop().call_later(wait, self._ripe,
                                                  _Due(session, message, envelope))
            return None
        return self._delivery(session, message, envelope)

    def _meant_for_us(self, message: paho.MQTTMessage, name: str) -> bool:
        """Tell whether this copy is the one the queue keeps (one copy per queue)."""
        patterns = self._registry.patterns.get(self.queue, set())
        ids = set(getattr(message.properties, "SubscriptionIdentifier", None) or ())
        via = {f for f in filters_of(patterns) if subscription_id(f) in ids}
        if not via:
            return True  # through a filter unsubscribed since: queued before, still ours
        matching = sorted({mqtt_filter(p) for p in patterns if matches(p, name)})
        return bool(matching) and matching[0] in via

    def _delivery(self, session: MQTTSession, message: paho.MQTTMessage,
                  envelope: MQTTEnvelope) -> Delivery[MQTTReceipt]:
        session.hand_out(message.mid)
        item = item_of(envelope, self.queue, envelope.attempts + 1, self._worker)
        return Delivery(item, MQTTReceipt(session, message.mid, envelope))

    # -- stopping ------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop handing out; what arrived but was not handed out stays in its session.

        MQTT cannot put a message back at the head of a queue, and publishing it anew
        would bring it back here (a shared subscription deals to its sessions in turn).
        So the session keeps it, unacknowledged: `close` records which packet ids were
        handed out, and the session's next holder counts an attempt for those only.
        """
        self._stopped = True
        while not self._buffer.empty():
            self._buffer.get_nowait()

    async def close(self, *, as_crash: bool = False) -> None:
        """Free and disconnect every session: what they hold comes back, counted if it
        was handed out (or, `as_crash`, all of it, as the wills say)."""
        self._stopped = True
        sessions = list(self.sessions.values())
        self.sessions.clear()
        await asyncio.gather(*(s.close(as_crash=as_crash) for s in sessions),
                             return_exceptions=True)

    async def try_adopt(self, number: int) -> None:
        """Adopt an offline session unless stopped; a lost race is no error."""
        if self._stopped or number in self.sessions:
            return
        try:
            await self.adopt(number)
        except BackendUnavailable as exc:
            logger.info("could not adopt session %d of %r: %s", number, self.queue, exc)
