"""How an item travels as an MQTT 5 message (wire format v1).

The payload is the item's JSON payload as published. wrkr's own fields travel in one
MQTT 5 user property, ``x-wrkr``, holding a JSON object:

    v          1, the version of this format
    id         the item id; on a fan-out message (with copy_ids) the message's id, from
               which each queue's copy takes its own
    copy_ids   only on a message published to an event topic: "sha256", the rule
               naming each copy, ``copy_id(id, queue)`` (see wrkr.backend). A consumer
               of queue Q reports that id, and writes it as ``id``, without copy_ids,
               when it sends the item on to Q alone (a retry, a failure)
    name, tid  the event name and target id (tid null when None)
    due        when the item becomes ready, integer microseconds since the epoch
    created    when the event was published, same unit
    attempts   attempts already made (the delivery under way is not counted yet)
    errors     the error history, a list of `ErrorRecord.to_dict()`
    parent     only on items a handler published: the id of the item it was handling
    root       only there too: the first item of that chain (a root's root is its id)
    trace      only on traced items: the publisher's W3C traceparent

A message without ``x-wrkr`` on an event topic is a foreign event (any MQTT client may
publish a JSON object to ``<prefix>/user/added``): it is consumed as an event named
after its topic, with a fresh id, due now; a user property ``tid`` gives its tid.
A payload that is not JSON cannot be handed to a handler: it is parked as failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
import paho.mqtt.client as paho
from paho.mqtt.properties import Properties, VariableByteIntegers

from wrkr.backend import (
    COPY_IDS,
    COPY_RULE,
    ErrorRecord,
    Item,
    Message,
    State,
    copy_metadata,
    from_micros,
    new_item_id,
    to_micros,
)

HEADER = "x-wrkr"
VERSION = 1
_REQUIRED = ("id", "name", "due", "created", "attempts", "errors")


class MalformedMessage(ValueError):
    """A message wrkr cannot hand to a handler (its payload is not JSON, or x-wrkr is bad)."""


@dataclass(frozen=True, slots=True)
class MQTTEnvelope:
    """An item's metadata (``x-wrkr``, decoded) and payload."""

    meta: dict[str, Any]
    body: bytes

    @property
    def item_id(self) -> str:
        """The item id."""
        return str(self.meta["id"])

    @property
    def name(self) -> str:
        """The event name."""
        return str(self.meta["name"])

    @property
    def due_micros(self) -> int:
        """When the item is due, microseconds since the epoch."""
        return int(self.meta["due"])

    @property
    def attempts(self) -> int:
        """Attempts made before this delivery."""
        return int(self.meta["attempts"])

    def properties(self) -> Properties:
        """Return the PUBLISH properties carrying the metadata (packed already)."""
        return cast(Properties, PackedProperties(orjson.dumps(self.meta)))

    def in_queue(self, queue: str) -> MQTTEnvelope:
        """Return the envelope of this message's copy in `queue`, with that copy's own id.

        A message published before copy_ids existed keeps the id its publisher returned.
        """
        meta = copy_metadata(self.meta, queue)
        return self if meta is None else MQTTEnvelope(meta, self.body)

    def with_changes(self, **changes: Any) -> MQTTEnvelope:
        """Return a copy with some metadata fields replaced."""
        return MQTTEnvelope({**self.meta, **changes}, self.body)

    def add_error(self, error: ErrorRecord) -> MQTTEnvelope:
        """Return a copy with `error` appended to the history."""
        return self.with_changes(errors=[*self.meta["errors"], error.to_dict()])


def _utf8(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


class PackedProperties:
    """PUBLISH properties (Content Type and the ``x-wrkr`` user property), packed once.

    paho's `Properties` took 0.3 ms of Python per message to build and pack, a fifth of
    wrkr's publish path (cProfile of bench_mqtt); paho only calls `pack()` on the
    properties of a publish, so this stands in for it.
    """

    __slots__ = ("_packed",)
    _CONTENT_TYPE = b"\x03" + _utf8(b"application/json")  # property 0x03: Content Type

    def __init__(self, meta: bytes) -> None:
        body = self._CONTENT_TYPE + b"\x26" + _utf8(HEADER.encode()) + _utf8(meta)  # 0x26: pair
        length = VariableByteIntegers.encode(len(body))  # type: ignore[no-untyped-call]
        self._packed: bytes = bytes(length) + body

    def pack(self) -> bytes:
        """Return the properties as they go on the wire (length first)."""
        return self._packed


def envelope_for(message: Message, item_id: str) -> MQTTEnvelope:
    """Return the envelope of a newly published message."""
    meta: dict[str, Any] = {
        "v": VERSION, "id": item_id, "name": message.name, "tid": message.tid,
        "due": to_micros(message.due), "created": to_micros(message.created),
        "attempts": 0, "errors": [], COPY_IDS: COPY_RULE,
    }
    for key, value in (("parent", message.parent), ("root", message.root),
                       ("trace", message.trace)):
        if value is not None:  # a root published untraced, the usual one: a short header
            meta[key] = value
    return MQTTEnvelope(meta, bytes(message.payload))


def _user_properties(message: paho.MQTTMessage) -> dict[str, str]:
    properties = getattr(message, "properties", None)
    pairs = getattr(properties, "UserProperty", None) or []
    return dict(pairs)


def received_envelope(message: paho.MQTTMessage, name: str | None,
                      now: datetime) -> MQTTEnvelope:
    """Return the envelope of a received message; a foreign event gets a fresh one.

    Args:
        message: what the broker delivered.
        name: the event name its topic maps to (None on a direct topic).
        now: the due and created time of a foreign event.

    Raises:
        MalformedMessage: the payload is not JSON, or ``x-wrkr`` is not wrkr's.
    """
    try:
        orjson.loads(message.payload)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"the payload on {message.topic!r} is not JSON") from exc
    user = _user_properties(message)
    raw = user.get(HEADER)
    if raw is None:
        if name is None:
            raise MalformedMessage(f"a message on {message.topic!r} lacks {HEADER!r}")
        return MQTTEnvelope({
            "v": VERSION, "id": new_item_id(), "name": name, "tid": user.get("tid"),
            "due": to_micros(now), "created": to_micros(now), "attempts": 0, "errors": [],
        }, bytes(message.payload))
    try:
        meta = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"{HEADER!r} on {message.topic!r} is not JSON") from exc
    if not isinstance(meta, dict) or any(key not in meta for key in _REQUIRED):
        raise MalformedMessage(f"{HEADER!r} on {message.topic!r} lacks one of {_REQUIRED}")
    return MQTTEnvelope(meta, bytes(message.payload))


def foreign_envelope(message: paho.MQTTMessage, name: str | None, reason: str,
                     now: datetime) -> MQTTEnvelope:
    """Return a parkable envelope for a message wrkr cannot handle, the reason recorded."""
    error = ErrorRecord(at=now, attempt=0, type="MalformedMessage", message=reason)
    return MQTTEnvelope({
        "v": VERSION, "id": new_item_id(), "name": name or message.topic, "tid": None,
        "due": to_micros(now), "created": to_micros(now), "attempts": 0,
        "errors": [error.to_dict()],
    }, bytes(message.payload))


def item_of(envelope: MQTTEnvelope, queue: str, attempts: int, worker: str) -> Item:
    """Return the item an envelope describes, processing in `queue` for `worker`."""
    meta = envelope.meta
    return Item(id=envelope.item_id, queue=queue, name=envelope.name, tid=meta.get("tid"),
                payload=envelope.body, due=from_micros(envelope.due_micros),
                created=from_micros(int(meta["created"])), state=State.PROCESSING,
                attempts=attempts, errors=ErrorRecord.history(meta["errors"]), worker=worker,
                parent=_text(meta.get("parent")),
                root=_text(meta.get("root")) or envelope.item_id, trace=_text(meta.get("trace")))


def _text(value: object) -> str | None:
    """Return an optional field as a str (a foreign writer may put anything there)."""
    return None if value is None else str(value)
