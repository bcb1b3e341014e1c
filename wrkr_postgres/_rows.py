"""Rows of ``items`` into the contract's types, and receipts that fence settlements."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from wrkr.backend import Delivery, ErrorRecord, Item, State


@dataclass(frozen=True, slots=True)
class PostgresReceipt:
    """Which row a delivery claimed (`seq`) and under which lease token.

    Every claim draws a new token; a settlement only touches the row while it still
    carries that token, so a worker whose lease expired cannot ack another's claim.
    """

    seq: int
    lease: uuid.UUID


def to_item(row: tuple[Any, ...]) -> Item:
    """Build an `Item` from a row selected with the ``{columns}`` list of queries.sql."""
    (item_id, queue, name, tid, payload, due, created, state, attempts, errors, worker,
     finished) = row[:12]
    parent, root, trace = row[15:18]
    return Item(
        id=item_id.hex, queue=queue, name=name, tid=tid, payload=bytes(payload), due=due,
        created=created, state=State(state), attempts=attempts,
        errors=ErrorRecord.history(errors), worker=worker,
        finished=finished, flow=row[14], parent=parent, root=root or item_id.hex, trace=trace)


def to_delivery(row: tuple[Any, ...]) -> Delivery[PostgresReceipt]:
    """Build a `Delivery` from a claimed row (columns 12 and 13: seq and lease)."""
    return Delivery(to_item(row), PostgresReceipt(row[12], row[13]))


def error_json(error: ErrorRecord) -> str:
    """Return `error` as a one-element JSON array, to append to an item's history."""
    return orjson.dumps([error.to_dict()]).decode()


def parse_item_id(item_id: str) -> uuid.UUID | None:
    """Return the UUID an item id (32 hex digits) stands for, or None if it is not one."""
    try:
        return uuid.UUID(hex=item_id)
    except (ValueError, TypeError, AttributeError):
        return None
