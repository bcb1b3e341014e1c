"""What the broker itself records for wrkr: subscriptions and session presence.

MQTT cannot list subscriptions. Each wrkr subscription is therefore also a retained
message ``{p}.subscriptions/<queue>/<pattern in hex>`` (payload ``{"queue", "pattern"}``;
an empty retained payload deletes it), and each persistent session of a queue has a
retained presence record ``{p}.slots/<queue>/<n>``: ``{"state": "online"}`` while a
consumer holds it, ``{"state": "offline"}`` otherwise, which the session's will
publishes when its connection dies. With persistence on, both survive a broker restart.

Every broker keeps a live view: its control connection subscribes to both and, once
the retained ones have arrived (a marker published after the SUBSCRIBE comes back
after them), answers `queues_for` and `subscriptions` from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time
from collections import defaultdict
from collections.abc import Callable

import orjson
import paho.mqtt.client as paho

from wrkr.backend import matches
from wrkr_mqtt._client import MQTTConnection
from wrkr_mqtt._topics import MQTTTopics

SYNC_TIMEOUT = 10.0
ONLINE, OFFLINE, CLAIMED = "online", "offline", "claimed"
CLAIM_STALE = 10.0  # seconds: a claim never followed by a connection frees the session


class MQTTRegistry:
    """A live view of one namespace's subscription and presence records."""

    def __init__(self, topics: MQTTTopics) -> None:
        self.topics = topics
        self.patterns: dict[str, set[str]] = defaultdict(set)
        self.slots: dict[str, dict[int, str]] = defaultdict(dict)
        #: per (queue, session): the packet ids a holder that closed cleanly had handed
        #: out and not settled, the only resends (DUP) to count as attempts; None when
        #: its connection died (its will says nothing): then every resend counts.
        self.counted: dict[tuple[str, int], set[int] | None] = {}
        #: per (queue, session): the token and time of the last claim (see `claim_record`)
        self.claims: dict[tuple[str, int], tuple[str, float]] = {}
        self._marker = f"{topics.prefix}.sync/{secrets.token_hex(8)}"
        self._syncs: dict[str, asyncio.Future[None]] = {}  # marker topic -> its arrival
        self._count = itertools.count()
        self._syncing = asyncio.Lock()
        self._asked = self._answered = 0  # fresh() calls made, and answered by a sync
        self.on_change: Callable[[str], None] = lambda queue: None

    async def start(self, connection: MQTTConnection) -> None:
        """Subscribe to the records on `connection` and wait until the retained ones arrived."""
        self.patterns.clear()
        self.slots.clear()
        await connection.subscribe([(f"{self._marker}/+", 0), (self.topics.records, 0),
                                    (self.topics.slots, 0)])
        await self._sync(connection)

    async def refresh(self, connection: MQTTConnection, topic: str) -> None:
        """Read one record afresh: subscribing again brings its retained value back."""
        await connection.subscribe([(topic, 0)])
        try:
            await self._sync(connection)
        finally:
            await connection.unsubscribe([topic])

    async def fresh(self, connection: MQTTConnection) -> None:
        """Wait until every record published before this call has arrived.

        Calls running together share one sync, provided it was sent after they began:
        a publish learns of a subscription another process completed before it, at the
        cost of one marker round trip beside its PUBACKs.
        """
        self._asked += 1
        ticket = self._asked
        async with self._syncing:
            if self._answered >= ticket:
                return
            covered = self._asked
            await self._sync(connection, acknowledged=False)
            self._answered = max(self._answered, covered)

    async def _sync(self, connection: MQTTConnection, *, acknowledged: bool = True) -> None:
        """Wait until what the broker sent before a marker published now has arrived.

        Args:
            acknowledged: publish the marker at QoS 1 (else 0: one packet less each way,
                which a publish's sync is worth; a lost marker times out).
        """
        marker = f"{self._marker}/{next(self._count)}"
        arrived = self._syncs[marker] = asyncio.get_running_loop().create_future()
        try:
            if acknowledged:
                await connection.publish(marker, b"")
            else:
                connection.send_at_most_once(marker, b"")
            async with asyncio.timeout(SYNC_TIMEOUT):
                await arrived
        finally:
            self._syncs.pop(marker, None)

    def receive(self, message: paho.MQTTMessage) -> None:
        """Apply one record (or the marker) arriving on the control connection."""
        topic = message.topic
        if topic.startswith(self._marker):
            arrived = self._syncs.get(topic)
            if arrived is not None and not arrived.done():
                arrived.set_result(None)
        elif topic.startswith(f"{self.topics.prefix}.subscriptions/"):
            self._subscription(topic, bytes(message.payload))
        elif topic.startswith(f"{self.topics.prefix}.slots/"):
            self._slot(topic, bytes(message.payload))

    def _subscription(self, topic: str, payload: bytes) -> None:
        queue, _, encoded = topic.split("/", 1)[1].rpartition("/")
        with contextlib.suppress(ValueError):
            pattern = bytes.fromhex(encoded).decode()
            if payload:
                self.patterns[queue].add(pattern)
            else:
                self.patterns[queue].discard(pattern)
            self.on_change(queue)

    def _slot(self, topic: str, payload: bytes) -> None:
        queue, _, number = topic.split("/", 1)[1].rpartition("/")
        with contextlib.suppress(ValueError, orjson.JSONDecodeError, AttributeError):
            record = orjson.loads(payload) if payload else {}
            counted = record.get("counted")
            if record.get("state") == CLAIMED:
                self.claims[queue, int(number)] = (str(record["token"]), float(record["at"]))
            self.set_slot(queue, int(number), str(record.get("state", OFFLINE)),
                          None if counted is None else set(counted))

    def set_slot(self, queue: str, number: int, state: str, counted: set[int] | None) -> None:
        """Record a session's presence (also locally, before the broker echoes it)."""
        self.slots[queue][number] = state
        self.counted[queue, number] = counted if state == OFFLINE else None
        self.on_change(queue)

    # -- answers ----------------------------------------------------------------------

    def queues_for(self, name: str) -> list[str]:
        """Return the sorted queues whose patterns match event `name`."""
        return sorted(q for q, patterns in self.patterns.items()
                      if any(matches(p, name) for p in patterns))

    def subscriptions(self) -> list[tuple[str, str]]:
        """Return every (queue, pattern), sorted."""
        return sorted((q, p) for q, patterns in self.patterns.items() for p in patterns)

    def is_free(self, queue: str, number: int) -> bool:
        """Tell whether nobody holds session `number` of `queue` nor has just claimed it."""
        state = self.slots.get(queue, {}).get(number, OFFLINE)
        if state == CLAIMED:
            _, at = self.claims.get((queue, number), ("", 0.0))
            return time.time() - at > CLAIM_STALE
        return state == OFFLINE

    def offline(self, queue: str) -> list[int]:
        """Return the numbers of `queue`'s sessions nobody holds, lowest first."""
        return sorted(n for n in self.slots.get(queue, {}) if self.is_free(queue, n))

    def free_slot(self, queue: str, taken: set[int]) -> int:
        """Return the lowest session number of `queue` nobody holds (a new one if none)."""
        known = self.slots.get(queue, {})
        for number in sorted(known):
            if number not in taken and self.is_free(queue, number):
                return number
        return max([*known, *taken], default=-1) + 1


def subscription_record(queue: str, pattern: str) -> bytes:
    """Return the retained payload recording a subscription."""
    return orjson.dumps({"queue": queue, "pattern": pattern})


def claim_record(token: str) -> bytes:
    """Return the retained record by which a consumer claims a session before connecting.

    Two consumers of different processes may find one session free at the same moment;
    each writes its claim, waits a little, and reads the record back: the one whose token
    is still there connects, the other tries the next session. (Connecting at once would
    let the later one take the session over, with what the first was handling.)
    """
    return orjson.dumps({"state": CLAIMED, "token": token, "at": time.time()})


def presence(state: str, counted: set[int] | None = None) -> bytes:
    """Return the retained payload of a session's presence record.

    Args:
        state: ONLINE or OFFLINE.
        counted: on a clean close, the packet ids the session had handed to workers
            and not settled: the next holder counts an attempt for their resends only.
            None (a will: the connection died) counts every resend.
    """
    if counted is None:
        return orjson.dumps({"state": state})
    return orjson.dumps({"state": state, "counted": sorted(counted)})
