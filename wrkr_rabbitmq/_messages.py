"""How an item travels as an AMQP message: body = the encoded payload, the rest in headers.

Headers (all prefixed ``x-wrkr-``):

    id         the item id (also the AMQP message-id); one per published message,
               shared by its fan-out copies
    name, tid  the event name and target id (tid absent when None)
    due        when the item becomes ready, integer microseconds since the epoch
    created    when the event was published, same unit
    attempts   attempts already made (the delivery under way is not counted yet)
    errors     the error history, a JSON list of `ErrorRecord.to_dict()`
    to         where the item goes once due: ``e:<event name>`` (fan-out through the
               events exchange) or ``q:<queue>`` (one queue: retries, released items)

Anything in a wrkr queue without ``id`` and ``name``, or whose body is not JSON, is a
foreign message: the consumer parks it in the failed queue with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pika.spec  # type: ignore[import-untyped]

from wrkr.backend import ErrorRecord, Item, Message, State
from wrkr_rabbitmq._client import RabbitMQIncoming

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PERSISTENT = 2


class MalformedMessage(ValueError):
    """A message in a wrkr queue that wrkr did not write (or that was damaged)."""


def to_micros(moment: datetime) -> int:
    """Return an aware datetime as integer microseconds since the epoch."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """Return the aware UTC datetime of integer microseconds since the epoch."""
    return datetime.fromtimestamp(micros / 1_000_000, UTC)


@dataclass(frozen=True, slots=True)
class RabbitMQEnvelope:
    """An item's headers and body, ready to publish or just received."""

    headers: dict[str, Any]
    body: bytes

    @property
    def item_id(self) -> str:
        """The item id."""
        return str(self.headers["x-wrkr-id"])

    @property
    def due_micros(self) -> int:
        """When the item is due, microseconds since the epoch."""
        return int(self.headers["x-wrkr-due"])

    @property
    def destination(self) -> str:
        """``e:<name>`` or ``q:<queue>``."""
        return str(self.headers["x-wrkr-to"])

    def properties(self) -> pika.spec.BasicProperties:
        """Return persistent AMQP properties carrying the headers."""
        return pika.spec.BasicProperties(delivery_mode=PERSISTENT, message_id=self.item_id,
                                         content_type="application/json", headers=self.headers)

    def with_changes(self, **changes: Any) -> RabbitMQEnvelope:
        """Return a copy with some ``x-wrkr-`` headers replaced (keys without the prefix)."""
        headers = dict(self.headers)
        headers.update({f"x-wrkr-{key}": value for key, value in changes.items()})
        return RabbitMQEnvelope(headers, self.body)

    def add_error(self, error: ErrorRecord) -> RabbitMQEnvelope:
        """Return a copy with `error` appended to the history."""
        errors = orjson.loads(self.headers.get("x-wrkr-errors", "[]"))
        errors.append(error.to_dict())
        return self.with_changes(errors=orjson.dumps(errors).decode())


def envelope_for(message: Message, item_id: str) -> RabbitMQEnvelope:
    """Return the envelope of a newly published message (fan-out on arrival)."""
    headers: dict[str, Any] = {
        "x-wrkr-id": item_id, "x-wrkr-name": message.name,
        "x-wrkr-due": to_micros(message.due), "x-wrkr-created": to_micros(message.created),
        "x-wrkr-attempts": 0, "x-wrkr-errors": "[]", "x-wrkr-to": f"e:{message.name}",
    }
    if message.tid is not None:
        headers["x-wrkr-tid"] = message.tid
    return RabbitMQEnvelope(headers, message.payload)


def received_envelope(message: RabbitMQIncoming) -> RabbitMQEnvelope:
    """Return the envelope of a received wrkr message, checked.

    Raises:
        MalformedMessage: headers are missing or wrong, or the body is not JSON.
    """
    headers = message.headers
    envelope = RabbitMQEnvelope(_decoded(headers), message.body)
    try:
        orjson.loads(envelope.body)
        envelope.item_id, envelope.due_micros, envelope.destination  # noqa: B018
        int(str(headers["x-wrkr-attempts"])), int(str(headers["x-wrkr-created"]))
        str(headers["x-wrkr-name"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedMessage(_reason(exc)) from exc
    return envelope


def _decoded(headers: dict[str, Any]) -> dict[str, Any]:
    """Return the headers with byte strings decoded (pamqp may hand back bytes)."""
    return {key: value.decode() if isinstance(value, bytes) else value
            for key, value in headers.items()}


def _reason(exc: Exception) -> str:
    """Say why a message is not a wrkr message."""
    if isinstance(exc, KeyError):
        return f"not a wrkr message: header {exc.args[0]!r} is missing"
    if isinstance(exc, orjson.JSONDecodeError):
        return "not a wrkr message: the body is not JSON"
    return f"not a wrkr message: {exc}"


def item_of(envelope: RabbitMQEnvelope, queue: str, state: State, attempts: int,
            worker: str | None = None) -> Item:
    """Return the item an envelope describes, as seen in `queue` in `state`."""
    headers = envelope.headers
    errors = tuple(ErrorRecord.from_dict(e) for e in orjson.loads(headers["x-wrkr-errors"]))
    return Item(id=envelope.item_id, queue=queue, name=str(headers["x-wrkr-name"]),
                tid=headers.get("x-wrkr-tid"), payload=envelope.body,
                due=from_micros(envelope.due_micros),
                created=from_micros(int(headers["x-wrkr-created"])),
                state=state, attempts=attempts, errors=errors, worker=worker)


def foreign_envelope(message: RabbitMQIncoming, reason: str, now: datetime) -> RabbitMQEnvelope:
    """Return a parkable envelope for a foreign message: its body kept, the reason recorded."""
    headers = dict(message.headers)
    item_id = str(message.message_id or f"foreign-{to_micros(now)}")
    error = ErrorRecord(at=now, attempt=0, type="MalformedMessage", message=reason)
    headers.update({
        "x-wrkr-id": item_id, "x-wrkr-name": str(message.routing_key or "?"),
        "x-wrkr-due": to_micros(now), "x-wrkr-created": to_micros(now),
        "x-wrkr-attempts": 0, "x-wrkr-errors": orjson.dumps([error.to_dict()]).decode(),
        "x-wrkr-to": "",
    })
    return RabbitMQEnvelope(_decoded(headers), message.body)
