"""The memory backend's flows: each flow's document by id, and its `FlowTransaction`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from wrkr.backend import FlowTransaction, Message, Settlement

if TYPE_CHECKING:
    from wrkr_memory._store import MemoryStore


class MemoryFlows:
    """Every flow's stored document, by flow id."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}


class MemoryFlowTransaction(FlowTransaction[Any]):
    """A change to one flow, made in place: nothing in it awaits, so nothing interleaves."""

    def __init__(self, store: MemoryStore, flow_id: str) -> None:
        self.store = store
        self.flow_id = flow_id
        self.document = store.flows.documents.get(flow_id)

    async def settle(self, settlement: Settlement[Any]) -> bool:
        """Settle the item; see `FlowTransaction.settle`."""
        return self.store.settle_nowait(settlement)

    async def put(self, messages: Sequence[Message], *, tagged: bool) -> list[str]:
        """Store items; see `FlowTransaction.put`."""
        return self.store.enqueue(messages, self.flow_id if tagged else None)

    async def cancel(self, item_ids: Sequence[str]) -> set[str]:
        """Delete the pending ones; see `FlowTransaction.cancel`."""
        return self.store.cancel_ids(item_ids)

    async def save(self, document: bytes, *, state: str) -> None:
        """Keep the document; see `FlowTransaction.save`."""
        self.store.flows.documents[self.flow_id] = document
