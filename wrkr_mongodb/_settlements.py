"""Settling deliveries: a batch of settlements is one `bulk_write`, each write fenced.

A write whose fence no longer matches changes nothing. When the server reports fewer
writes done than asked, one query reads back which: every update stamps `settled` with
a mark of its own, and a delete that was done leaves no document behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo import DeleteOne, UpdateOne
from pymongo.errors import BulkWriteError

from wrkr.backend import Settle, Settlement, State
from wrkr_mongodb._claims import MongoDBReceipt
from wrkr_mongodb._documents import NOT_LEASED, error_document, stored_due

Write = DeleteOne | UpdateOne


class MongoDBSettler:
    """Carries out settlements on the items collection.

    Args:
        items: the items collection.
    """

    def __init__(self, items: Any) -> None:
        self.items = items

    async def settle(self, settlements: Sequence[Settlement[MongoDBReceipt]],
                     now: datetime, *, session: Any = None) -> list[bool]:
        """Carry out `settlements` in one call; tell, per settlement, whether it held.

        With `session`, inside its transaction (a flow's change).
        """
        given = {} if session is None else {"session": session}
        batch = uuid.uuid4().hex
        marks = [f"{batch}:{index}" for index in range(len(settlements))]
        writes = [_write(settlement, mark, now)
                  for settlement, mark in zip(settlements, marks, strict=True)]
        try:
            result = await self.items.bulk_write(writes, ordered=False, **given)
            if result.matched_count + result.deleted_count == len(writes):
                return [True] * len(writes)
            deleted = result.deleted_count > 0
        except BulkWriteError as exc:
            # The only write that can fail is a `$push` onto a history another tool
            # wrote as a non-array: wrap it in a list and push again (else the item
            # could never be settled, and would be claimed and fail forever).
            failed = [error["index"] for error in exc.details.get("writeErrors", [])]
            if not failed or not await self._repair_histories(
                    [settlements[index] for index in failed], given):
                raise
            await self.items.bulk_write([writes[index] for index in failed], ordered=False,
                                        **given)
            deleted = exc.details.get("nRemoved", 0) > 0
        ids = [settlement.delivery.receipt.item_id for settlement in settlements]
        found = self.items.find({"_id": {"$in": ids}}, {"settled": 1}, **given)
        documents = {row["_id"]: row async for row in found}
        # A delete was done if its document is gone and the batch deleted any -- another
        # worker's ack (after this lease ran out) may have deleted one of them instead,
        # and then which is unknown; the item is gone either way, as the ack asked.
        return [documents.get(item_id, {}).get("settled") == mark
                if isinstance(write, UpdateOne) else deleted and item_id not in documents
                for item_id, mark, write in zip(ids, marks, writes, strict=True)]

    async def _repair_histories(self, settlements: Sequence[Settlement[MongoDBReceipt]],
                                given: dict[str, Any]) -> bool:
        """Make each held item's `errors` a list (the old value its first entry); tell if any.

        `given` holds the flow's session, when the settlements are part of its transaction.
        """
        repaired = False
        for settlement in settlements:
            fence = settlement.delivery.receipt.fence()
            document = await self.items.find_one(fence, {"errors": 1}, **given)
            if document is not None and not isinstance(document.get("errors", []), list):
                await self.items.update_one(fence, {"$set": {"errors": [document["errors"]]}},
                                            **given)
                repaired = True
        return repaired


def _write(settlement: Settlement[MongoDBReceipt], mark: str, now: datetime) -> Write:
    """Return the fenced write that carries out `settlement`."""
    fence = settlement.delivery.receipt.fence()
    how = settlement.how
    if how is Settle.ACK and not settlement.keep:
        return DeleteOne(fence)
    update: dict[str, Any] = {"$set": {"settled": mark}}
    if how is Settle.ACK:
        update["$set"].update(state=State.DONE.value, finished=now)
        if settlement.expires is not None:
            update["$set"]["expires"] = settlement.expires
    elif how is Settle.FAIL:
        update["$set"].update(state=State.FAILED.value, finished=now)
    else:  # back to the queue
        update["$set"]["lease"] = NOT_LEASED
        if how is Settle.NACK:
            assert settlement.due is not None
            update["$set"]["due"] = stored_due(settlement.due, now)
        elif how is Settle.RELEASE:
            update["$inc"] = {"attempts": -1}
    if settlement.error is not None:
        update["$push"] = {"errors": error_document(settlement.error)}
    return UpdateOne(fence, update)
