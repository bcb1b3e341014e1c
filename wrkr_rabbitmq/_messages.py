"""How an item travels as an AMQP message: body = the encoded payload, the rest in one header.

The header ``x-wrkr`` holds a JSON object (one string: pika encodes and decodes a
single string several times faster than a table of typed fields):

    id         the item id (also the AMQP message-id); on a fan-out message (with
               copy_ids) the message's id, from which each queue's copy takes its own
    copy_ids   only on a message published to the events exchange: "sha256", the rule
               naming each copy, ``copy_id(id, queue)`` (see wrkr.backend). A consumer
               of queue Q reports that id, and writes it as ``id``, without copy_ids,
               when it sends the item on to Q alone (a retry, a release, a failure)
    name, tid  the event name and target id (tid null when None)
    due        when the item becomes ready, integer microseconds since the epoch
    created    when the event was published, same unit
    attempts   attempts already made (the delivery under way is not counted yet)
    errors     the error history, a list of `ErrorRecord.to_dict()`
    to         where the item goes once due: ``e:<event name>`` (fan-out through the
               events exchange) or ``q:<queue>`` (one queue: retries, released items)
    parent     only on items a handler published: the id of the item it was handling
    root       only there too: the first item of that chain (a root's root is its id)
    trace      only on traced items: the publisher's W3C traceparent

A broker keeps no index of its messages, so lineage travels with each item (the handler
sees `event.parent` and `event.root`) but `lineage()` cannot be answered here.

A message without the ``x-wrkr`` header comes from another program: see _foreign.py
(adopted as an event, or parked). One whose header is not as above, or whose body is not
JSON, is malformed: the consumer parks it in the failed queue with the reason. The
format is specified in docs/wire-format.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pika.spec  # type: ignore[import-untyped]

from wrkr.backend import (
    COPY_IDS,
    COPY_RULE,
    ErrorRecord,
    Item,
    Message,
    State,
    copy_metadata,
    from_micros,
    to_micros,
)
from wrkr_rabbitmq._client import RabbitMQIncoming

PERSISTENT = 2
HEADER = "x-wrkr"
_REQUIRED = ("id", "name", "due", "created", "attempts", "errors", "to")


class MalformedMessage(ValueError):
    """A message in a wrkr queue that wrkr did not write (or that was damaged)."""


@dataclass(frozen=True, slots=True)
class RabbitMQEnvelope:
    """An item's metadata (the ``x-wrkr`` header, decoded) and body."""

    meta: dict[str, Any]
    body: bytes

    @property
    def item_id(self) -> str:
        """The item id."""
        return str(self.meta["id"])

    @property
    def due_micros(self) -> int:
        """When the item is due, microseconds since the epoch."""
        return int(self.meta["due"])

    @property
    def attempts(self) -> int:
        """Attempts made before this delivery."""
        return int(self.meta["attempts"])

    @property
    def destination(self) -> str:
        """``e:<name>`` or ``q:<queue>``."""
        return str(self.meta["to"])

    def properties(self) -> pika.spec.BasicProperties:
        """Return persistent AMQP properties carrying the metadata header."""
        return pika.spec.BasicProperties(
            delivery_mode=PERSISTENT, message_id=self.item_id, content_type="application/json",
            headers={HEADER: orjson.dumps(self.meta).decode()})

    def in_queue(self, queue: str) -> RabbitMQEnvelope:
        """Return the envelope of this message's copy in `queue`, with that copy's own id.

        A message published before copy_ids existed keeps the id its publisher returned.
        """
        meta = copy_metadata(self.meta, queue)
        return self if meta is None else RabbitMQEnvelope(meta, self.body)

    def with_changes(self, **changes: Any) -> RabbitMQEnvelope:
        """Return a copy with some metadata fields replaced."""
        return RabbitMQEnvelope({**self.meta, **changes}, self.body)

    def add_error(self, error: ErrorRecord) -> RabbitMQEnvelope:
        """Return a copy with `error` appended to the history."""
        kept = self.meta["errors"]  # a list, unless a foreign publisher wrote something else
        return self.with_changes(
            errors=[*(kept if isinstance(kept, list) else [kept]), error.to_dict()])


def envelope_for(message: Message, item_id: str) -> RabbitMQEnvelope:
    """Return the envelope of a newly published message (fan-out on arrival)."""
    meta: dict[str, Any] = {
        "id": item_id, "name": message.name, "tid": message.tid,
        "due": to_micros(message.due), "created": to_micros(message.created),
        "attempts": 0, "errors": [], "to": f"e:{message.name}", COPY_IDS: COPY_RULE,
    }
    for key, value in (("parent", message.parent), ("root", message.root),
                       ("trace", message.trace)):
        if value is not None:  # a root published untraced, the usual one: a short header
            meta[key] = value
    return RabbitMQEnvelope(meta, message.payload)


def received_envelope(message: RabbitMQIncoming) -> RabbitMQEnvelope:
    """Return the envelope of a received wrkr message, checked.

    Raises:
        MalformedMessage: the header is missing or wrong, or the body is not JSON.
    """
    raw = message.headers.get(HEADER)
    if raw is None:
        raise MalformedMessage(f"not a wrkr message: header {HEADER!r} is missing")
    try:
        meta = orjson.loads(raw)
        orjson.loads(message.body)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage("not a wrkr message: the header or body is not JSON") from exc
    if not isinstance(meta, dict) or any(key not in meta for key in _REQUIRED):
        raise MalformedMessage(f"not a wrkr message: {HEADER!r} lacks one of {_REQUIRED}")
    return RabbitMQEnvelope(meta, message.body)


def item_of(envelope: RabbitMQEnvelope, queue: str, state: State, attempts: int,
            worker: str | None = None) -> Item:
    """Return the item an envelope describes, as seen in `queue` in `state`."""
    meta = envelope.meta
    return Item(id=envelope.item_id, queue=queue, name=str(meta["name"]), tid=meta.get("tid"),
                payload=envelope.body, due=from_micros(envelope.due_micros),
                created=from_micros(int(meta["created"])), state=state, attempts=attempts,
                errors=ErrorRecord.history(meta["errors"]), worker=worker,
                parent=_text(meta.get("parent")), root=_text(meta.get("root")) or envelope.item_id,
                trace=_text(meta.get("trace")))


def _text(value: object) -> str | None:
    """Return an optional header field as a str (a foreign writer may put anything)."""
    return None if value is None else str(value)


def foreign_envelope(message: RabbitMQIncoming, reason: str, now: datetime) -> RabbitMQEnvelope:
    """Return a parkable envelope for a foreign message: its body kept, the reason recorded."""
    error = ErrorRecord(at=now, attempt=0, type="MalformedMessage", message=reason)
    return RabbitMQEnvelope({
        "id": message.message_id or f"foreign-{to_micros(now)}",
        "name": message.routing_key or "?", "tid": None, "due": to_micros(now),
        "created": to_micros(now), "attempts": 0, "errors": [error.to_dict()], "to": "",
    }, message.body)
