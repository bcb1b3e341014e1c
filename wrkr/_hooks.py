"""Hooks: a typed observer interface through which metrics, dashboards and tests watch an app.

An `Observer` overrides the methods it cares about; the rest do nothing. The core calls
them synchronously on the event loop, at the moment the thing happens, so an observer
must be quick (count, append, set a gauge) and schedule its own task for anything slow.
An observer that raises is logged and never disturbs the item being handled.

When no observer is registered the core skips building the reports altogether: the
hooks cost one attribute test per call site (`Observers.listening`, a plain bool, where
a `__bool__` would be a Python call four times per item).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wrkr._event import Event
    from wrkr.backend import Message

__all__ = ["Handled", "Observer", "Observers", "Outcome"]

logger = logging.getLogger("wrkr")


class Outcome(StrEnum):
    """What became of an item after its handler ran (or could not run)."""

    ACKED = "acked"  # the handler returned (or acked early): the item is done
    RETRIED = "retried"  # it raised or timed out; the item comes back after the backoff
    FAILED = "failed"  # `Fail`, the last attempt, or an undecodable item: parked as failed
    RELEASED = "released"  # a stop interrupted it; the item went back, the attempt uncounted
    LEASE_LOST = "lease_lost"  # the lease was lost: another worker may hold the item now


@dataclass(frozen=True, slots=True)
class Handled:
    """One delivery's story: the event, its outcome, when its handler started, for how long.

    Attributes:
        event: the delivered event (`id`, `queue`, `name`, `tid`, `when` = due, `attempts`).
        outcome: what became of the item.
        started: when the handler started, by the backend's clock.
        duration: seconds the handler ran (0 when it never ran).
        error: what the handler raised (or the timeout), else None.
    """

    event: Event
    outcome: Outcome
    started: datetime
    duration: float
    error: BaseException | None = None

    @property
    def lateness(self) -> float:
        """Return how long after its due time the handler started, in seconds."""
        due = self.event.when
        return (self.started - due).total_seconds() if isinstance(due, datetime) else 0.0


class Observer:
    """Watches what an app does; subclass it and override what you need.

    Register with `app.observe(observer)`. Every method runs on the app's event loop
    and must return quickly.
    """

    def published(self, messages: Sequence[Message], ids: Sequence[str]) -> None:
        """A `publish()` stored `messages` as the items `ids` (fan-out included)."""

    def started(self, event: Event) -> None:
        """A handler is about to run for `event` (lateness: now minus `event.when`)."""

    def handled(self, report: Handled) -> None:
        """A delivery was settled: acked, retried, failed, released or its lease lost."""

    def lease_lost(self, queue: str, item_id: str) -> None:
        """This app no longer holds item `item_id` of `queue`: its handler was stopped."""

    def backend_unavailable(self, where: str, error: BaseException) -> None:
        """The backend could not be reached while doing `where` (it will be tried again)."""

    def backend_recovered(self, where: str) -> None:
        """The backend answers again for `where` after being unavailable."""


class Observers:
    """The observers of one app, called in registration order, each failure contained.

    Its truth value, and `listening` (the same, read without a call: the hot path's
    test), say whether anyone listens, so call sites can skip building a report.
    """

    def __init__(self) -> None:
        self._observers: list[Observer] = []
        self.listening = False

    def __bool__(self) -> bool:
        return self.listening

    def add(self, observer: Observer) -> None:
        """Start calling `observer` (adding one twice calls it once)."""
        if not isinstance(observer, Observer):
            from wrkr._errors import InvalidConfig

            raise InvalidConfig(f"cannot observe with {observer!r}: expected a wrkr.Observer")
        if observer not in self._observers:
            self._observers.append(observer)
        self.listening = True

    def remove(self, observer: Observer) -> None:
        """Stop calling `observer`; unknown observers are ignored."""
        if observer in self._observers:
            self._observers.remove(observer)
        self.listening = bool(self._observers)

    def published(self, messages: Sequence[Message], ids: Sequence[str]) -> None:
        """Tell every observer about a publish."""
        for observer in self._observers:
            _safely(observer.published, messages, ids)

    def started(self, event: Event) -> None:
        """Tell every observer a handler starts."""
        for observer in self._observers:
            _safely(observer.started, event)

    def handled(self, report: Handled) -> None:
        """Tell every observer how a delivery ended."""
        for observer in self._observers:
            _safely(observer.handled, report)

    def lease_lost(self, queue: str, item_id: str) -> None:
        """Tell every observer a lease was lost."""
        for observer in self._observers:
            _safely(observer.lease_lost, queue, item_id)

    def backend_unavailable(self, where: str, error: BaseException) -> None:
        """Tell every observer the backend is unavailable."""
        for observer in self._observers:
            _safely(observer.backend_unavailable, where, error)

    def backend_recovered(self, where: str) -> None:
        """Tell every observer the backend is back."""
        for observer in self._observers:
            _safely(observer.backend_recovered, where)


def _safely(method: object, *args: object) -> None:
    try:
        method(*args)  # type: ignore[operator]
    except Exception:
        logger.exception("observer %r raised", getattr(method, "__self__", method))
