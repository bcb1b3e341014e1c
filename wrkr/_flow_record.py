"""A flow as stored: its steps, its jobs' items and their outcomes, and how it moves on.

The record is the core's: a store keeps it as an opaque document (`encode` / `decode`)
and changes it only through the core (`_flow_driver`), inside one atomic step under the
flow's lock. Everything here is pure: settling an item, ending the flow, telling
whether the current step is over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from wrkr._types import ErrorRecord, Message

__all__ = ["CANCELLED", "COMPLETED", "FAILED", "RUNNING", "FlowRecord", "ItemRecord",
           "JobRecord"]

RUNNING, COMPLETED, FAILED, CANCELLED = "running", "completed", "failed", "cancelled"
OPEN, DONE = "open", "done"  # an item's outcome in the record (also FAILED, CANCELLED)


@dataclass(slots=True)
class ItemRecord:
    """One queue's copy of a job's event, and what became of it."""

    id: str
    state: str = OPEN
    queue: str | None = None
    attempts: int = 0
    errors: list[ErrorRecord] = field(default_factory=list)
    result: Any = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form."""
        return {"id": self.id, "state": self.state, "queue": self.queue,
                "attempts": self.attempts, "errors": [e.to_dict() for e in self.errors],
                "result": self.result}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ItemRecord:
        """Rebuild what `to_dict` wrote."""
        return cls(data["id"], data["state"], data["queue"], data["attempts"],
                   [ErrorRecord.from_dict(e) for e in data["errors"]], data["result"])


@dataclass(slots=True)
class JobRecord:
    """One job: the event it publishes when its step starts, and the items it made."""

    name: str
    tid: str | None
    payload: dict[str, Any]
    delay: float  # seconds after its step starts that it falls due
    placed: bool = False  # its step started: `items` are all it made
    items: list[ItemRecord] = field(default_factory=list)

    def message(self, now: datetime) -> Message:
        """Return the event to publish as the step starts at `now`."""
        return Message(self.name, self.tid, orjson.dumps(self.payload),
                       now + timedelta(seconds=self.delay), now)

    def place(self, item_ids: list[str]) -> None:
        """Record the items its event made (none: no queue is subscribed)."""
        self.placed = True
        self.items = [ItemRecord(item_id) for item_id in item_ids]

    @property
    def result(self) -> Any:
        """Return the job's result: its one item's, or a dict by queue for several."""
        done = [item for item in self.items if item.state == DONE]
        if not done:
            return None
        if len(self.items) == 1:
            return done[0].result
        return {item.queue: item.result for item in done}

    @property
    def done(self) -> bool:
        """Tell whether every item it made was acked (a job reaching no queue is done)."""
        return self.placed and all(item.state == DONE for item in self.items)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form."""
        return {"name": self.name, "tid": self.tid, "payload": self.payload,
                "delay": self.delay, "placed": self.placed,
                "items": [item.to_dict() for item in self.items]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        """Rebuild what `to_dict` wrote."""
        return cls(data["name"], data["tid"], data["payload"], data["delay"], data["placed"],
                   [ItemRecord.from_dict(item) for item in data["items"]])


@dataclass(slots=True)
class FlowRecord:
    """A flow as stored: `step` is the index of the step under way (-1 before the first)."""

    id: str
    name: str
    tid: str | None
    payload: dict[str, Any]
    steps: list[list[JobRecord]]
    created: datetime
    state: str = RUNNING
    step: int = -1
    error: ErrorRecord | None = None
    finished: datetime | None = None

    # -- reading -----------------------------------------------------------------------

    def find(self, item_id: str) -> tuple[int, JobRecord, ItemRecord] | None:
        """Return the step index, job and item record of `item_id`, if it is the flow's."""
        for index, jobs in enumerate(self.steps):
            for job in jobs:
                for item in job.items:
                    if item.id == item_id:
                        return index, job, item
        return None

    def results(self, before: int | None = None) -> dict[str, Any]:
        """Return each done job's result by job name (of the steps before `before`)."""
        steps = self.steps if before is None else self.steps[:before]
        return {job.name: job.result for jobs in steps for job in jobs if job.done}

    def step_over(self) -> bool:
        """Tell whether no item of the step under way is still open (or none started)."""
        if self.step < 0:
            return True
        return all(item.state != OPEN for job in self.steps[self.step] for item in job.items)

    def open_items(self) -> list[str]:
        """Return the ids of the items of the step under way not settled yet."""
        if not 0 <= self.step < len(self.steps):
            return []
        return [item.id for job in self.steps[self.step] for item in job.items
                if item.state == OPEN]

    # -- changing ----------------------------------------------------------------------

    def settle(self, item_id: str, *, queue: str, done: bool, attempts: int,
               errors: list[ErrorRecord], result: Any, now: datetime) -> None:
        """Record an item acked (`done`) or failed; a failure fails a running flow."""
        found = self.find(item_id)
        if found is None:
            return
        _, _, item = found
        item.state, item.queue, item.attempts = (DONE if done else FAILED), queue, attempts
        item.errors, item.result = errors, result
        if not done and self.state == RUNNING:
            self.end(FAILED, now, errors[-1] if errors else None)

    def cancelled(self, item_ids: set[str]) -> None:
        """Record that these open items were removed before a worker took them."""
        for jobs in self.steps:
            for job in jobs:
                for item in job.items:
                    if item.id in item_ids and item.state == OPEN:
                        item.state = CANCELLED

    def cancel_item(self, item_id: str) -> None:
        """Record that a settled item was removed (a retry after the flow ended)."""
        found = self.find(item_id)
        if found is not None:
            found[2].state = CANCELLED

    def end(self, state: str, now: datetime, error: ErrorRecord | None = None) -> None:
        """End the flow: completed, failed (with the error that failed it) or cancelled."""
        self.state, self.finished, self.error = state, now, error

    def ended_message(self, now: datetime) -> Message:
        """Return `<name>.completed` or `<name>.failed` (cancelled too), tid the flow id."""
        suffix = "completed" if self.state == COMPLETED else "failed"
        payload = {"flow": self.id, "name": self.name, "state": self.state,
                   "results": self.results(),
                   "error": None if self.error is None else self.error.to_dict()}
        return Message(f"{self.name}.{suffix}", self.id, orjson.dumps(payload), now, now)

    # -- storing -----------------------------------------------------------------------

    def encode(self) -> bytes:
        """Return the document a store keeps."""
        return orjson.dumps({
            "id": self.id, "name": self.name, "tid": self.tid, "payload": self.payload,
            "steps": [[job.to_dict() for job in jobs] for jobs in self.steps],
            "created": self.created.isoformat(), "state": self.state, "step": self.step,
            "error": None if self.error is None else self.error.to_dict(),
            "finished": None if self.finished is None else self.finished.isoformat()})

    @classmethod
    def decode(cls, document: bytes) -> FlowRecord:
        """Rebuild a record from what `encode` returned."""
        data = orjson.loads(document)
        return cls(
            data["id"], data["name"], data["tid"], data["payload"],
            [[JobRecord.from_dict(job) for job in jobs] for jobs in data["steps"]],
            datetime.fromisoformat(data["created"]), data["state"], data["step"],
            None if data["error"] is None else ErrorRecord.from_dict(data["error"]),
            None if data["finished"] is None else datetime.fromisoformat(data["finished"]))
