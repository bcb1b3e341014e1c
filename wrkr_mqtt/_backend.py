"""MQTTBackend: wrkr on an MQTT 5 broker (Mosquitto 2 here), through paho-mqtt 2.

URL:
    ``mqtt://user:password@host:1883?prefix=wrkr&session_expiry=604800`` (``mqtts://``
    for TLS, port 8883 by default). Options, as query parameters or keyword arguments
    of `Wrkr.from_url` / `MQTTBackend`:

    prefix          the namespace: the root of event topics (``wrkr/user/added``) and
                    of wrkr's own topics (default ``wrkr``).
    session_expiry  seconds a queue's persistent session, and what waits in it,
                    outlives its last connection (default 7 days).

    An unknown or unusable option raises `InvalidConfig` naming it.

Capabilities:
    WILDCARDS   patterns become MQTT filters (``*`` -> ``+``, ``#`` -> ``#``); a ``#``
                before the last word subscribes the filter cut there and the consumer
                drops what the pattern does not match.
    Not DELAY, QUERY, CANCEL, ONCE_EVERY, ARCHIVE, FAILED, EXCLUSIVE, RATE or
    SCHEDULES: an MQTT broker holds no message for later, and cannot look one up,
    delete it in place or keep it once acknowledged. Those raise `NotSupported`; they
    need a store beside the broker (see `BrokerBackend`).

Layout (see _topics.py): events on ``{p}/<name with dots as slashes>``; a wrkr queue is
the shared subscription ``$share/<queue>/<filter>`` of its numbered persistent sessions
(client ids ``{p}.q.<queue>.<n>``), plus ``{p}.direct/<queue>`` for its retries;
failed items go to ``{p}.failed/<queue>``, kept by the session ``{p}.failed.<queue>``;
subscriptions and session presence are retained records (_registry.py). The wire
format is in _messages.py. Each queue's copy of an event has its own item id,
`copy_id(message id, queue)`: a publish brings the view of the records up to date (a
marker round trip beside its PUBACKs) and returns one id per queue the view finds.

Guarantees and limits:
    * MQTT 5, QoS 1, clean_start=False: a queue's session keeps its messages while no
      consumer is connected, for `session_expiry` and as long as the broker keeps them
      (Mosquitto: only with ``max_queued_messages 0`` or large enough, and to disk only
      at its autosave; scripts/services/mosquitto.conf).
    * A consumer takes the lowest free session of its queue, so a crashed consumer's
      session, with what it held, is taken by the next consumer that starts. Mosquitto
      deals a shared subscription's messages round-robin to its sessions, connected or
      not: what falls to the session of a consumer that is gone waits there until a
      consumer takes that session again.
    * Retries are an acknowledgement plus a new publish (MQTT has no nack, and a
      broker resends only on reconnect). Without a store, a retry's backoff is held by
      the consumer that receives the retried copy, unacknowledged until due (it counts
      against `prefetch`); a future `when` raises `NotSupported`.
    * A batch is published message by message (no transactions in MQTT); every PUBACK
      is awaited. Messages that reach no queue are not published and get no id.
    * Delivery is at least once: a consumer that loses its connection gets
      `LeaseLost` on settling, and the item comes back with one more attempt.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, unquote, urlsplit

from wrkr import InvalidConfig
from wrkr.backend import BrokerBackend, Capability, redact
from wrkr_mqtt._broker import MQTTBroker, delete_namespace
from wrkr_mqtt._client import MQTTAddress
from wrkr_mqtt._consumer import MQTTReceipt
from wrkr_mqtt._topics import MQTTTopics

DEFAULT_URL = "mqtt://127.0.0.1:1883"
OPTIONS = ("prefix", "session_expiry")


def parse_address(url: str) -> tuple[MQTTAddress, dict[str, str]]:
    """Return the broker address of an ``mqtt://`` or ``mqtts://`` URL, and its options.

    Raises:
        InvalidConfig: another scheme, a bad port, or a repeated option.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise InvalidConfig(f"not an MQTT URL: {redact(url)} (mqtt:// or mqtts://)")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError as exc:
        raise InvalidConfig(f"bad port in {redact(url)}") from exc
    query = parse_qs(parts.query, keep_blank_values=True)
    if any(len(values) > 1 for values in query.values()):
        raise InvalidConfig(f"an option is repeated in {redact(url)}")
    address = MQTTAddress(parts.hostname or "127.0.0.1", port, parts.scheme == "mqtts",
                          unquote(parts.username) if parts.username else None,
                          unquote(parts.password) if parts.password else None)
    return address, {key: values[0] for key, values in query.items()}


class MQTTBackend(BrokerBackend[MQTTReceipt]):
    """wrkr on MQTT: an `MQTTBroker` assembled by `BrokerBackend`.

    Raises:
        InvalidConfig: the URL has an unknown or unusable option.
    """

    capabilities: ClassVar[frozenset[Capability]] = MQTTBroker.capabilities
    broker: MQTTBroker

    def __init__(self, url: str = DEFAULT_URL, *, prefix: str = "wrkr",
                 session_expiry: int = 7 * 86_400) -> None:
        address, _ = parse_address(url)
        if session_expiry < 1:
            raise InvalidConfig(f"MQTT session_expiry must be at least 1 s: {session_expiry}")
        super().__init__(MQTTBroker(address, prefix=prefix, session_expiry=session_expiry))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build a backend from ``mqtt://user:password@host:port?prefix=...``."""
        _, query = parse_address(url)
        merged: dict[str, Any] = {**query, **options}
        unknown = sorted(set(merged) - set(OPTIONS))
        if unknown:
            raise InvalidConfig(f"unknown MQTT option(s) {', '.join(unknown)} for "
                                f"{redact(url)}: valid options: {', '.join(OPTIONS)}")
        try:
            expiry = int(merged.get("session_expiry", 7 * 86_400))
        except ValueError as exc:
            raise InvalidConfig(f"MQTT session_expiry must be whole seconds: "
                                f"{merged['session_expiry']!r}") from exc
        return cls(url, prefix=str(merged.get("prefix", "wrkr")), session_expiry=expiry)

    def __repr__(self) -> str:
        return f"MQTTBackend({str(self.broker.address)!r}, prefix={self.topics.prefix!r})"

    @property
    def topics(self) -> MQTTTopics:
        """The topics and client ids of this backend's namespace."""
        return self.broker.topics

    async def drop_connections(self) -> None:
        """Cut every connection as a crash would (wills published, nothing given back);
        see `Backend.drop_connections`."""
        await self.broker.disconnect(as_crash=True)

    async def delete_namespace(self) -> None:
        """Delete the namespace's records and end its sessions (what waits in them goes)."""
        await delete_namespace(self.broker)
