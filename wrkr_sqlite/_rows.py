"""Rows of ``wrkr_items`` into the contract's types; times as integer microseconds."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from wrkr.backend import Delivery, ErrorRecord, Item, State, fast_builder, from_micros

# Every claimed row becomes an Item on the event loop; built without the frozen
# __init__'s object.__setattr__ per field (18 of them). (Delivery, a Generic, has
# another layout than its twin would: fast_builder refuses it.)
_new_item = fast_builder(Item)


class SQLiteReceipt(NamedTuple):
    """Which row a delivery claimed (`seq`) and under which lease token.

    Every claim draws a new token; a settlement only touches the row while it still
    carries that token, so a worker whose lease expired cannot ack another's claim.
    """

    seq: int
    lease: int


def to_item(row: tuple[Any, ...]) -> Item:
    """Build an `Item` from a row selected with the ``{columns}`` list of queries.sql.

    Every claimed row passes here (on the event loop), so the common cases skip work:
    no error history yet (``'[]'``) parses nothing, and an item published for now
    (``due == created``) shares one datetime.
    """
    (item_id, queue, name, tid, payload, due, created, state, attempts, errors, worker,
     finished) = row[:12]
    parent, root, trace, flow = row[14:18]
    due_at = from_micros(due)
    return _new_item(
        id=item_id, queue=queue, name=name, tid=tid, payload=payload, due=due_at,
        created=due_at if created == due else from_micros(created), state=State(state),
        attempts=attempts,
        errors=() if errors == "[]" else ErrorRecord.history(_json_or_text(errors)),
        worker=worker, finished=None if finished is None else from_micros(finished),
        parent=parent, root=root or item_id, trace=trace, flow=flow)


def _json_or_text(stored: str) -> Any:
    """The stored JSON, or the text itself where it is not JSON (written by another tool)."""
    try:
        return orjson.loads(stored)
    except orjson.JSONDecodeError:
        return stored


def to_delivery(row: tuple[Any, ...]) -> Delivery[SQLiteReceipt]:
    """Build a `Delivery` from a claimed row (columns 12 and 13: seq and lease)."""
    return Delivery(to_item(row), SQLiteReceipt(row[12], row[13]))


def error_json(error: ErrorRecord) -> str:
    """Return `error` as JSON, to append to an item's history."""
    return orjson.dumps(error.to_dict()).decode()
