"""Durable subscriptions and the cached routing table publishers read them through."""

from __future__ import annotations

import time
from typing import Any

from wrkr.backend import is_wildcard, matches


class MongoDBRoutes:
    """The (queue, pattern) pairs of the subscriptions collection, kept in memory.

    Publishing reads routes from here, so it does not cost a query per event. The
    table is reloaded when it is older than `ttl` seconds or after `invalidate()`
    (a local subscribe / unsubscribe, or a change-stream event from another process).
    A `ttl` of 0 reloads it for every publish.

    Args:
        collection: the subscriptions collection (an `AsyncCollection`).
        ttl: how many seconds a loaded table is trusted (0: not at all).
    """

    def __init__(self, collection: Any, ttl: float) -> None:
        self.collection = collection
        self.ttl = ttl
        self._exact: dict[str, set[str]] = {}
        self._wildcards: list[tuple[str, str]] = []
        self._loaded_at: float | None = None
        self._generation = 0

    def invalidate(self) -> None:
        """Make the next lookup reload the table (even one loading right now)."""
        self._loaded_at = None
        self._generation += 1

    async def fresh(self) -> MongoDBRoutes:
        """Reload the table unless it is younger than `ttl`; return it for `lookup`.

        A publish calls this once for all its messages: with `ttl` 0 (the default) every
        publish reads the subscriptions, so a subscription another process has made is
        counted by the next publish anywhere, as on every other store.
        """
        if self._loaded_at is None or time.monotonic() - self._loaded_at >= self.ttl:
            await self._load()
        return self

    def lookup(self, name: str) -> list[str]:
        """Return the sorted, distinct queues an event called `name` reaches, as loaded."""
        queues = set(self._exact.get(name, ()))
        queues.update(queue for queue, pattern in self._wildcards if matches(pattern, name))
        return sorted(queues)

    async def _load(self) -> None:
        started, generation = time.monotonic(), self._generation
        exact: dict[str, set[str]] = {}
        wildcards: list[tuple[str, str]] = []
        async for row in self.collection.find({}, {"_id": 0, "queue": 1, "pattern": 1}):
            queue, pattern = str(row["queue"]), str(row["pattern"])
            if is_wildcard(pattern):
                wildcards.append((queue, pattern))
            else:
                exact.setdefault(pattern, set()).add(queue)
        self._exact, self._wildcards = exact, wildcards
        if generation == self._generation:  # else a change landed mid-load: reload next time
            self._loaded_at = started
