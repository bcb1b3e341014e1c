"""Fan-out and insertion of published items, with the atomic `once_every` dedupe."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo.errors import BulkWriteError, PyMongoError

from wrkr.backend import Message
from wrkr_mongodb._documents import SequenceCounter, new_item_document, pending_filter
from wrkr_mongodb._routing import SubscriptionCache

DUPLICATE_KEY = 11000

Key = tuple[str, str, str | None]


def _key(document: dict[str, Any]) -> Key:
    return document["queue"], document["name"], document["tid"]


class Publisher:
    """Turns messages into item documents and stores them, all or nothing.

    Args:
        items: the items collection.
        routes: the cached subscriptions that decide the fan-out.
    """

    def __init__(self, items: Any, routes: SubscriptionCache) -> None:
        self.items = items
        self.routes = routes
        self._sequence = SequenceCounter()

    async def enqueue(self, messages: Sequence[Message], now: datetime) -> list[dict[str, Any]]:
        """Store one document per (message, matching queue); return those stored, in order."""
        documents = [new_item_document(message, queue, self._sequence.take(), now)
                     for message in messages
                     for queue in await self.routes.queues_for(message.name)]
        documents = await self._without_pending_duplicates(documents, now)
        if not documents:
            return []
        skipped = await self._insert(documents)
        return [document for document in documents if document["_id"] not in skipped]

    async def _without_pending_duplicates(
        self, documents: list[dict[str, Any]], now: datetime
    ) -> list[dict[str, Any]]:
        # `once_every` skips a queue already holding a pending item with the same name
        # and tid. This check spares a failed insert in the common case; the unique
        # partial index settles the race between concurrent `once_every` publishers.
        wanted = [document for document in documents if "once" in document]
        if not wanted:
            return documents
        query = {"$or": [{"queue": q, "name": n, "tid": t} for q, n, t in map(_key, wanted)],
                 **pending_filter(now)}
        seen = {_key(row) async for row in self.items.find(
            query, {"_id": 0, "queue": 1, "name": 1, "tid": 1})}
        kept = []
        for document in documents:
            if "once" in document and _key(document) in seen:
                continue
            seen.add(_key(document))
            kept.append(document)
        return kept

    async def _insert(self, documents: list[dict[str, Any]]) -> set[str]:
        """Insert `documents`; return the ids of `once_every` ones the index turned away."""
        try:
            await self.items.insert_many(documents, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            turned_away = {documents[error["index"]]["_id"] for error in errors
                           if error.get("code") == DUPLICATE_KEY
                           and "once" in documents[error["index"]]}
            if len(turned_away) == len(errors):
                return turned_away
            await self._undo(documents)
            raise
        except PyMongoError:
            await self._undo(documents)
            raise
        return set()

    async def _undo(self, documents: list[dict[str, Any]]) -> None:
        # No transactions on a standalone server: take back what part of the batch landed.
        with contextlib.suppress(PyMongoError):
            await self.items.delete_many({"_id": {"$in": [d["_id"] for d in documents]}})
