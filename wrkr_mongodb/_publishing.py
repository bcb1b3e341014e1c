"""Fan-out and insertion of published items, with the atomic `once_every` dedupe.

With transactions (a replica set or sharded cluster), a batch of more than one document
is inserted in one transaction: stored whole or not at all. A single document needs
none (one insert is atomic). Without transactions (a standalone server, the mock) a
batch that fails midway is undone as far as possible: a server lost mid-batch can
leave part of it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pymongo.errors import BulkWriteError, PyMongoError

from wrkr.backend import Message
from wrkr_mongodb._documents import MongoDBSequence, new_item_document, pending_filter
from wrkr_mongodb._routes import MongoDBRoutes
from wrkr_mongodb._transactions import in_transaction

DUPLICATE_KEY = 11000

Key = tuple[str, str, str | None]


def _key(document: dict[str, Any]) -> Key:
    return document["queue"], document["name"], document["tid"]


def _turned_away(exc: BulkWriteError, documents: list[dict[str, Any]]) -> set[str] | None:
    """Return the ids of `once_every` documents the unique index refused, or None.

    None when some other write error happened too: then the failure is not a dedupe.
    """
    errors = exc.details.get("writeErrors", [])
    turned_away = {documents[error["index"]]["_id"] for error in errors
                   if error.get("code") == DUPLICATE_KEY and "once" in documents[error["index"]]}
    return turned_away if len(turned_away) == len(errors) else None


class MongoDBDedupeConflict(Exception):
    """A `once_every` document lost the race on the unique index inside a transaction.

    The server aborts the transaction on any write error, so the batch is tried again
    without these documents.
    """

    def __init__(self, ids: set[str]) -> None:
        super().__init__(f"{len(ids)} once_every item(s) already pending")
        self.ids = ids


class MongoDBPublisher:
    """Turns messages into item documents and stores them, all or nothing.

    Args:
        items: the items collection.
        routes: the cached subscriptions that decide the fan-out.
        client: the client to start transactions on; None where the server has none.
    """

    def __init__(self, items: Any, routes: MongoDBRoutes, client: Any = None) -> None:
        self.items = items
        self.routes = routes
        self.client = client
        self._sequence = MongoDBSequence()

    async def enqueue(self, messages: Sequence[Message], now: datetime) -> list[dict[str, Any]]:
        """Store one document per (message, matching queue); return those stored, in order."""
        routes = await self.routes.fresh()
        documents = [new_item_document(message, queue, self._sequence.take(), now)
                     for message in messages for queue in routes.lookup(message.name)]
        if self.client is not None and len(documents) > 1:
            return await self._enqueue_in_transaction(documents, now)
        documents = await self._without_pending_duplicates(documents, now)
        if not documents:
            return []
        skipped = await self._insert(documents)
        return [document for document in documents if document["_id"] not in skipped]

    async def _enqueue_in_transaction(
        self, documents: list[dict[str, Any]], now: datetime
    ) -> list[dict[str, Any]]:
        # Each round that loses a dedupe race drops at least one document: bounded.
        while True:
            try:
                return await in_transaction(
                    self.client, functools.partial(self._insert_in, documents=documents, now=now))
            except MongoDBDedupeConflict as conflict:
                documents = [d for d in documents if d["_id"] not in conflict.ids]

    async def _insert_in(
        self, session: Any, documents: list[dict[str, Any]], now: datetime
    ) -> list[dict[str, Any]]:
        """Insert `documents` in `session`'s transaction, pending duplicates left out."""
        documents = await self._without_pending_duplicates(documents, now, session)
        if documents:
            try:
                await self.items.insert_many(documents, ordered=False, session=session)
            except BulkWriteError as exc:
                turned_away = _turned_away(exc, documents)
                if turned_away is None:
                    raise
                raise MongoDBDedupeConflict(turned_away) from exc
        return documents

    async def _without_pending_duplicates(
        self, documents: list[dict[str, Any]], now: datetime, session: Any = None
    ) -> list[dict[str, Any]]:
        # `once_every` skips a queue already holding a pending item with the same name
        # and tid. This check spares a failed insert in the common case; the unique
        # partial index settles the race between concurrent `once_every` publishers.
        wanted = [document for document in documents if "once" in document]
        if not wanted:
            return documents
        query = {"$or": [{"queue": q, "name": n, "tid": t} for q, n, t in map(_key, wanted)],
                 **pending_filter(now)}
        found = self.items.find(query, {"_id": 0, "queue": 1, "name": 1, "tid": 1},
                                session=session)
        seen = {_key(row) async for row in found}
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
            turned_away = _turned_away(exc, documents)
            if turned_away is not None:
                return turned_away
            await self._undo(documents)
            raise
        except PyMongoError:
            await self._undo(documents)
            raise
        return set()

    async def _undo(self, documents: list[dict[str, Any]]) -> None:
        # No transactions (a standalone server): take back what part of the batch landed.
        with contextlib.suppress(PyMongoError):
            await self.items.delete_many({"_id": {"$in": [d["_id"] for d in documents]}})
