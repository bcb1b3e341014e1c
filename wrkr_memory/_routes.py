"""Durable subscriptions of the memory backend: which queues an event name reaches."""

from __future__ import annotations

from wrkr.backend import is_wildcard, matches

_MAX_RESOLVED = 10_000
"""Cached resolutions kept at most; event names are few, but nothing enforces it."""


class MemoryRoutes:
    """The (queue, pattern) subscriptions of one store, with a cache of resolved names.

    Exact patterns are found by dictionary lookup; only wildcard patterns are
    matched one by one. Resolutions are cached per event name (publishers reuse a
    few names), and the cache is dropped on every change.
    """

    def __init__(self) -> None:
        self._exact: dict[str, set[str]] = {}
        self._wildcards: dict[str, set[str]] = {}
        self._resolved: dict[str, tuple[str, ...]] = {}

    def add(self, queue: str, pattern: str) -> None:
        """Route `pattern` to `queue`; adding it again changes nothing."""
        table = self._wildcards if is_wildcard(pattern) else self._exact
        table.setdefault(pattern, set()).add(queue)
        self._resolved.clear()

    def remove(self, queue: str, pattern: str) -> None:
        """Stop routing `pattern` to `queue`; unknown pairs are ignored."""
        table = self._wildcards if is_wildcard(pattern) else self._exact
        queues = table.get(pattern, set())
        queues.discard(queue)
        if not queues:
            table.pop(pattern, None)
        self._resolved.clear()

    def pairs(self) -> list[tuple[str, str]]:
        """Return every (queue, pattern) subscription, sorted."""
        return sorted((queue, pattern) for table in (self._exact, self._wildcards)
                      for pattern, queues in table.items() for queue in queues)

    def queues_for(self, name: str) -> tuple[str, ...]:
        """Return the sorted, distinct queues an event called `name` reaches."""
        found = self._resolved.get(name)
        if found is None:
            if len(self._resolved) >= _MAX_RESOLVED:
                self._resolved.clear()
            reached = set(self._exact.get(name, ()))
            for pattern, queues in self._wildcards.items():
                if matches(pattern, name):
                    reached |= queues
            found = self._resolved[name] = tuple(sorted(reached))
        return found
