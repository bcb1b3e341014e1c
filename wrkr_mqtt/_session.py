"""One persistent MQTT session of a wrkr queue, held by a consumer.

A queue's sessions are numbered (client id ``{p}.q.<queue>.<n>``). Each subscribes the
queue's direct topic and one shared subscription per pattern filter, with at most
`prefetch` unacknowledged messages (the CONNECT's Receive Maximum). While a consumer
holds one, its presence record says ``online``; its will says ``offline`` should the
connection die; a clean close says ``offline`` with the packet ids it had handed to
workers, the only resends its next holder counts as attempts (see _registry.py).
Its record is read afresh before the session connects (`refresh`): the broker's live
view may not have seen the last holder's will yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable

import paho.mqtt.client as paho

from wrkr import BackendUnavailable
from wrkr_mqtt._client import MQTTAddress, MQTTConnection, MQTTWill
from wrkr_mqtt._registry import OFFLINE, ONLINE, MQTTRegistry, claim_record, presence
from wrkr_mqtt._topics import DIRECT_ID, MQTTTopics, mqtt_filter, subscription_id

CLAIM_SETTLE = 0.1  # seconds between writing a claim and reading it back


class SessionTaken(BackendUnavailable):
    """Another consumer holds, or has just claimed, the session: take another one."""


def filters_of(patterns: set[str]) -> set[str]:
    """Return the distinct MQTT filters (without root) of `patterns`."""
    return {mqtt_filter(p) for p in patterns}


class MQTTSession:
    """Session `number` of `queue`, connected by `start`."""

    def __init__(self, address: MQTTAddress, topics: MQTTTopics, registry: MQTTRegistry,
                 queue: str, number: int,
                 on_message: Callable[[MQTTSession, paho.MQTTMessage], None]) -> None:
        self.queue, self.number = queue, number
        self._topics, self._registry = topics, registry
        self.connection = MQTTConnection(address, topics.session(queue, number),
                                         on_message=lambda m: on_message(self, m),
                                         manual_ack=True)
        self.handed: set[int] = set()  # packet ids handed to a worker, not settled yet
        #: resends to count as attempts (None: all); see MQTTRegistry.counted
        self.counted: set[int] | None = None
        self._filters: set[str] = set()

    def __repr__(self) -> str:
        return f"MQTTSession({self.connection.client_id!r})"

    @property
    def is_open(self) -> bool:
        """Tell whether the connection is up: while it is, it holds what it gave."""
        return self.connection.is_open

    async def start(self, *, prefetch: int, expiry: int,
                    refresh: Callable[[str, int], Awaitable[None]],
                    publish: Callable[[str, bytes], Awaitable[None]]) -> None:
        """Claim the session, connect, say it is held, subscribe.

        Args:
            prefetch: the Receive Maximum: unacknowledged messages at most.
            expiry: the session expiry, seconds.
            refresh: reads a session's presence record into the registry, fresh.
            publish: publishes a retained record (on the control connection).

        Raises:
            SessionTaken: another consumer holds or claimed it first.
        """
        key, slot = (self.queue, self.number), self._topics.slot(self.queue, self.number)
        await refresh(*key)
        if not self._registry.is_free(*key):
            raise SessionTaken(f"session {self.number} of {self.queue!r} is held")
        self.counted = self._registry.counted.get(key)
        token = secrets.token_hex(8)
        await publish(slot, claim_record(token))
        await asyncio.sleep(CLAIM_SETTLE)
        await refresh(*key)
        if self._registry.claims.get(key, ("", 0.0))[0] != token:
            raise SessionTaken(f"session {self.number} of {self.queue!r} was claimed first")
        await self.connection.open(clean_start=False, expiry=expiry, receive_maximum=prefetch,
                                   will=MQTTWill(slot, presence(OFFLINE)))
        await self.connection.publish(slot, presence(ONLINE), retain=True)
        self._registry.set_slot(self.queue, self.number, ONLINE, None)
        await self.connection.subscribe([(self._topics.shared_direct(self.queue), DIRECT_ID)])
        await self.follow()

    async def follow(self) -> None:
        """Subscribe the queue's current pattern filters, unsubscribe the removed ones."""
        wanted = filters_of(self._registry.patterns.get(self.queue, set()))
        added, removed = wanted - self._filters, self._filters - wanted
        self._filters = wanted
        root = f"$share/{self.queue}/{self._topics.prefix}"
        await self.connection.subscribe([(f"{root}/{f}", subscription_id(f)) for f in added])
        await self.connection.unsubscribe([f"{root}/{f}" for f in removed])

    def counts(self, message: paho.MQTTMessage) -> bool:
        """Tell whether a received message is a resend that counts as an attempt."""
        return bool(message.dup) and (self.counted is None or message.mid in self.counted)

    def hand_out(self, mid: int) -> None:
        """Note that a worker got the message `mid`."""
        self.handed.add(mid)

    def ack(self, mid: int) -> bool:
        """PUBACK message `mid`; False when the connection is gone."""
        self.handed.discard(mid)
        return self.connection.ack(mid)

    async def close(self, *, as_crash: bool = False) -> None:
        """Say the session is free (unless `as_crash`: the will says it) and disconnect."""
        if self.connection.is_open and not as_crash:
            with contextlib.suppress(BackendUnavailable):
                await self.connection.publish(self._topics.slot(self.queue, self.number),
                                              presence(OFFLINE, self.handed), retain=True)
                self._registry.set_slot(self.queue, self.number, OFFLINE, set(self.handed))
        await self.connection.close(as_crash=as_crash)

