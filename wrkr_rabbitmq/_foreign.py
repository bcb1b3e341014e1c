"""Events published by other applications: a plain JSON object, no wrkr header.

Any AMQP client can publish an event to wrkr (docs/wire-format.md, "Publishing from
another language"): the body a JSON object (the payload), published to the events
exchange ``{prefix}.events`` with the event name as routing key, optionally the tid
in the ``x-wrkr-tid`` header (a string). Such a message has no ``x-wrkr`` header; the
consumer adopts it as an event with a fresh item id, due and created now, no attempts.
Anything else without the header (a body that is not a JSON object, a message put
straight into a wrkr queue, a routing key that is not an event name) is malformed and
parked in the failed queue with the reason.

The id is given on arrival: a foreign message that one consumer held when it died
comes back without it and is given another id (its attempts still count on quorum
queues, by ``x-delivery-count``).
"""

from __future__ import annotations

import re
from datetime import datetime

import orjson

from wrkr.backend import new_item_id, to_micros
from wrkr_rabbitmq._client import RabbitMQIncoming
from wrkr_rabbitmq._messages import HEADER, MalformedMessage, RabbitMQEnvelope

TID_HEADER = "x-wrkr-tid"
MAX_NAME_LENGTH = 200
_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number",
               bool: "boolean", type(None): "null"}
_EVENT_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


def is_foreign(message: RabbitMQIncoming) -> bool:
    """Tell whether a message lacks wrkr's header (another application published it)."""
    return HEADER not in message.headers


def adopted_envelope(message: RabbitMQIncoming, events: str, queue: str,
                     now: datetime) -> RabbitMQEnvelope:
    """Return the envelope of a foreign event received from `queue`, with a fresh id.

    Args:
        message: a message without the ``x-wrkr`` header.
        events: the name of the namespace's events exchange.
        queue: the wrkr queue it was received from.
        now: the time of arrival: its due and created time.

    Raises:
        MalformedMessage: it is not a foreign event (see the module docstring); the
            message says why.
    """
    _check_route(message, events)
    _check_body(message.body)
    micros = to_micros(now)
    return RabbitMQEnvelope({
        "id": new_item_id(), "name": message.routing_key, "tid": _tid(message),
        "due": micros, "created": micros, "attempts": 0, "errors": [], "to": f"q:{queue}",
    }, message.body)


def _check_route(message: RabbitMQIncoming, events: str) -> None:
    """Refuse a message not published to the events exchange under an event name."""
    if message.exchange != events:
        where = repr(message.exchange) if message.exchange else "the default exchange"
        raise MalformedMessage(f"not a wrkr message: header {HEADER!r} is missing, and it was "
                               f"published to {where}, not to the events exchange {events!r}")
    name = message.routing_key
    if len(name) > MAX_NAME_LENGTH or not _EVENT_NAME.fullmatch(name):
        raise MalformedMessage(f"foreign message with routing key {name!r}: not an event name "
                               "(dot-separated segments of letters, digits, '_' or '-')")


def _check_body(body: bytes) -> None:
    """Refuse a body that is not one JSON object."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedMessage("foreign message: the body is not JSON "
                               f"(starts with {body[:40]!r})") from None
    if not isinstance(payload, dict):
        kind = _JSON_KINDS.get(type(payload), type(payload).__name__)
        raise MalformedMessage(f"foreign message: the body is a JSON {kind}, not an object")


def _tid(message: RabbitMQIncoming) -> str | None:
    """Return the tid from the ``x-wrkr-tid`` header, if any."""
    tid = message.headers.get(TID_HEADER)
    if tid is None or isinstance(tid, str):
        return tid
    raise MalformedMessage(f"foreign message: header {TID_HEADER!r} must be a string, "
                           f"not {type(tid).__name__} {tid!r}")
