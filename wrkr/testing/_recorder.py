"""An observer that records what an app handled, and rings when anything settles."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from wrkr import Event, Handled, Observer, Outcome
from wrkr.backend import Message

__all__ = ["Recorder"]

_RAN = frozenset({Outcome.ACKED, Outcome.RETRIED, Outcome.FAILED})
"""Outcomes of a handler that ran to its end (a stop's releases are not handling)."""


class Recorder(Observer):
    """Keeps every settled delivery's report; `changed` is set at each settlement."""

    def __init__(self) -> None:
        self.reports: list[Handled] = []
        self.running: dict[str | None, Event] = {}  # by item id: started, not yet settled
        self.changed = asyncio.Event()

    def started(self, event: Event) -> None:
        """Note a handler that runs, for the message of a drain that times out."""
        self.running[event.id] = event

    def handled(self, report: Handled) -> None:
        """Record the report of a handler that ran to its end; wake the drain."""
        self.running.pop(report.event.id, None)
        if report.outcome in _RAN:
            self.reports.append(report)
        self.changed.set()

    def published(self, messages: Sequence[Message], ids: Sequence[str]) -> None:
        """Wake the drain: new items may be ready."""
        self.changed.set()

    @property
    def handled_events(self) -> list[Event]:
        """Return the events handled, one per delivery, in the order they settled."""
        return [report.event for report in self.reports]

    @property
    def failed_events(self) -> list[Event]:
        """Return the events whose items were parked as failed."""
        return [report.event for report in self.reports if report.outcome is Outcome.FAILED]
