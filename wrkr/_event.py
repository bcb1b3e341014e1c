"""The `Event` users publish and handlers receive, and its trip through the backend.

Validation happens here, once, before anything reaches a backend, so that a batch
with one bad event publishes nothing. Payloads are encoded with orjson and stored
as bytes; only JSON types are accepted, so what a handler receives is exactly what
was published.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from wrkr._errors import InvalidEvent, quote
from wrkr._frozen import fast_builder
from wrkr._models import as_payload_dict
from wrkr._names import check_name
from wrkr._when import parse_duration, parse_when
from wrkr.backend import ErrorRecord, Item, Message, State

if TYPE_CHECKING:
    from wrkr._flows import FlowContext

When = datetime | timedelta | float | str | None
"""What `when` accepts: see the `when` grammar in the README."""

# Passthrough makes orjson refuse datetimes, dataclasses and str/int subclasses
# instead of quietly turning them into something that would not round-trip.
_ENCODE_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_FIELDS = frozenset({"name", "tid", "payload", "when", "once_every"})


@dataclass(frozen=True, slots=True)
class Event:
    """An event: what is published, and (with id, queue, state...) what is delivered.

    To publish, set `name` and optionally `tid`, `payload`, `when`, `once_every`.
    Delivered and inspected events also carry the item's `id`, `queue`, `created`,
    `attempts` (this delivery included), `state`, `errors`, `worker` and `finished`;
    `when` is then the due time. A flow's job delivered to its handler carries
    `flow` (see `FlowContext`); other events have None. `parent` is the id of the item
    whose handler published it (None for a root) and `root` the first item of that chain
    (a root's own id).
    """

    name: str
    tid: str | None = None
    payload: Any = field(default_factory=dict)  # a dict; the model, with subscribe(payload=)
    when: When = None
    once_every: timedelta | float | str | None = None
    id: str | None = None
    queue: str | None = None
    created: datetime | None = None
    attempts: int = 0
    state: State | None = None
    errors: tuple[ErrorRecord, ...] = ()
    worker: str | None = None
    finished: datetime | None = None
    flow: FlowContext | None = None
    parent: str | None = None
    root: str | None = None


_new_event = fast_builder(Event)
_new_message = fast_builder(Message)


def to_event(value: object) -> Event:
    """Accept an `Event` or a mapping with event fields; raise `InvalidEvent` otherwise."""
    if isinstance(value, Event):
        return value
    if type(value) is dict and "name" in value and value.keys() <= _FIELDS:
        return _new_event(**value)  # the usual dict: nothing to report, nothing to copy
    if not isinstance(value, Mapping):
        raise InvalidEvent(f"cannot publish {quote(value)}: expected an Event or a dict")
    unknown = sorted(set(value) - _FIELDS, key=str)
    if unknown:
        raise InvalidEvent(f"unknown event field(s) {quote(unknown)} in {quote(dict(value))}")
    if "name" not in value:
        raise InvalidEvent(f"event {quote(dict(value))} has no 'name'")
    return Event(**{key: value[key] for key in _FIELDS if key in value})


def encode_payload(payload: object) -> bytes:
    """Encode a payload dict as JSON bytes; raise `InvalidEvent` naming what is not JSON."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        as_dict = as_payload_dict(payload)
        if as_dict is None:
            raise InvalidEvent(f"invalid payload {quote(payload)}: expected a dict, or a "
                               "dataclass, pydantic or msgspec model instance")
        payload = as_dict
    try:
        data = orjson.dumps(payload, option=_ENCODE_OPTIONS)
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise InvalidEvent(f"payload is not JSON-serializable ({exc}): {quote(payload)}") from exc
    if b"null" in data:  # orjson writes NaN and infinities as null: find any before it does
        _refuse_non_finite(payload, "payload")
    return data


def _refuse_non_finite(value: object, path: str) -> None:
    """Raise `InvalidEvent` naming the first NaN or infinity in `value` (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidEvent(f"invalid {path}: {value!r} is not a JSON number, and would come "
                           "back as null; send None or a string instead")
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_non_finite(item, f"{path}[{key!r}]")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _refuse_non_finite(item, f"{path}[{index}]")


def decode_payload(data: bytes) -> dict[str, Any]:
    """Decode stored payload bytes back to the dict that was published."""
    payload = orjson.loads(data)
    if not isinstance(payload, dict):
        raise ValueError(f"payload is a JSON {type(payload).__name__}, not an object")
    return payload


def to_message(event: Event, now: datetime, parent: str | None = None,
               root: str | None = None, trace: str | None = None) -> Message:
    """Validate `event` and turn it into the `Message` a backend stores.

    `parent` and `root` are the handled item's lineage (see `_lineage`), `trace` the
    publisher's ``traceparent`` (see `_tracing`).
    """
    check_name(event.name)
    if event.tid is not None:
        if not isinstance(event.tid, str):
            raise InvalidEvent(f"invalid tid {quote(event.tid)}: expected a str or None")
        if "\x00" in event.tid:  # PostgreSQL's text refuses it: say so before any backend
            raise InvalidEvent(f"invalid tid {quote(event.tid)}: it contains a NUL "
                               "character (\\x00), which databases cannot store")
    payload = encode_payload(event.payload)
    # `when` omitted means now: skip the parser when `now` is already UTC, as it would.
    due = now if event.when is None and now.tzinfo is UTC else parse_when(event.when, now=now)
    if event.once_every is not None:
        interval = parse_duration(event.once_every, what="once_every", now=now)
        if event.when is None:
            due = now + interval
    return _new_message(event.name, event.tid, payload, due, now, event.once_every is not None,
                        parent, root, trace)


UNDECODABLE = "__undecodable__"
"""Key under which inspection shows a stored payload that is not a JSON object."""


def from_item(item: Item, *, strict: bool = True) -> Event:
    """Build the `Event` a handler (strict) or an inspector (lenient) sees from an item.

    Inspection must show every item, even one a foreign publisher wrote badly: then
    the payload is `{"__undecodable__": <the stored text>}` instead of an error.
    """
    try:
        payload = decode_payload(item.payload)
    except ValueError:
        if strict:
            raise
        payload = {UNDECODABLE: item.payload.decode("utf-8", "replace")}
    return _new_event(  # by position, in `Event`'s field order: keywords cost more
        item.name, item.tid, payload, item.due, None, item.id, item.queue, item.created,
        item.attempts, item.state, item.errors, item.worker, item.finished, None,
        item.parent, item.root or item.id)
