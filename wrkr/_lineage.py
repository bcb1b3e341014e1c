"""Lineage: which item's handler published an event, and the tree a chain of handlers makes.

The consumer sets `HANDLING` to the item whose handler runs (a context variable, so the
tasks and threads a handler starts see it too); `publish` reads it, and every message it
builds records that item as `parent` and the item's `root` as its own root. A message
published outside a handler is a root: each stored copy's root is its own id.
"""

from __future__ import annotations

from contextvars import ContextVar
from operator import attrgetter

from wrkr._types import Item

__all__ = ["HANDLING", "in_creation_order", "parent_and_root"]

HANDLING: ContextVar[Item | None] = ContextVar("wrkr_handling", default=None)
"""The item whose handler is running in this context, or None."""


def parent_and_root() -> tuple[str | None, str | None]:
    """Return (parent, root) for what is published now: the handled item's, or (None, None)."""
    item = HANDLING.get()
    if item is None:
        return None, None
    return item.id, item.root or item.id


def in_creation_order(items: list[Item]) -> list[Item]:
    """Sort a tree's items by creation time; ties keep the store's (due, publishing) order."""
    return sorted(items, key=attrgetter("created"))
