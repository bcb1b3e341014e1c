"""`FlowTransaction`: what a store offers the core while it holds one flow's lock (FLOWS).

A store keeps each flow as an opaque document (the core's `FlowRecord`, encoded). Every
change to a flow -- starting it, an item of it acked or failed, a cancel -- runs as one
`Store.flow_transaction(flow_id, work)`: the store locks the flow (a row lock, a write
conflict, or nothing to do in one process), the core's `work` reads the document, settles,
publishes and cancels through the transaction and saves the new document, and the store
commits it all at once. However many workers settle a step's last items together, their
transactions run one after another, so exactly one of them starts the next step.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Generic, TypeVar

from wrkr._store import Settlement
from wrkr._types import Message

__all__ = ["FlowTransaction"]

R = TypeVar("R")


class FlowTransaction(abc.ABC, Generic[R]):
    """One atomic change to a flow, under its lock; nothing is visible before it ends.

    Attributes:
        flow_id: the flow this transaction holds.
        document: the flow's stored document when the lock was taken; None if there is
            none (a new flow, or one that was removed).
    """

    flow_id: str
    document: bytes | None

    @abc.abstractmethod
    async def settle(self, settlement: Settlement[R]) -> bool:
        """Carry out `settlement` (an ack or fail of one of the flow's items), fenced
        by its lease as `Store.settle` is; tell whether the delivery still held."""

    @abc.abstractmethod
    async def put(self, messages: Sequence[Message], *, tagged: bool) -> list[str]:
        """Store items as `Store.put` does; with `tagged`, each item's `flow` is the flow's id."""

    @abc.abstractmethod
    async def cancel(self, item_ids: Sequence[str]) -> set[str]:
        """Delete those of `item_ids` that are pending (scheduled or ready); return them."""

    @abc.abstractmethod
    async def save(self, document: bytes, *, state: str) -> None:
        """Store `document` as the flow's (created if new); `state` is its state, for
        stores that keep it beside the document."""

