"""Workflows as users see them: `Flow`, `Job`, `FlowContext`, and the checks of
`app.start_flow`'s arguments.

A flow is steps run in order, each of jobs run in parallel; a job is an event, and every
queue item it fans out to is part of its step. The stored form and its transitions are
`_flow_record`'s; the transactions that change it, `_flow_driver`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from wrkr._errors import InvalidEvent, quote
from wrkr._event import encode_payload
from wrkr._flow_record import CANCELLED, DONE, OPEN, RUNNING, FlowRecord, ItemRecord, JobRecord
from wrkr._names import check_name
from wrkr._types import ErrorRecord, Item, State, new_item_id
from wrkr._when import parse_when

__all__ = [
    "Flow",
    "FlowContext",
    "Job",
    "context_of",
    "encode_result",
    "item_ids",
    "new_flow_record",
    "view",
]

_JOB_FIELDS = frozenset({"name", "tid", "payload", "when"})
# The job's state when its items differ: the first of these any item is in wins.
_PRECEDENCE = ("failed", "processing", "ready", "scheduled", "cancelled", "done")


@dataclass(frozen=True, slots=True)
class FlowContext:
    """What a job's handler knows of its flow (`event.flow`).

    Attributes:
        id, name, payload: the flow's.
        step: the index of the job's step, from 0.
        results: each job of an earlier step by name -> its result (a dict by queue
            name for a job whose event reached several queues).
    """

    id: str
    name: str
    payload: dict[str, Any]
    step: int
    results: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Job:
    """One job of a flow: its items, state ("cancelled" or an item state), attempts
    over its items, result and every attempt's error."""

    name: str
    item_ids: tuple[str, ...]
    state: str
    attempts: int = 0
    result: Any = None
    errors: tuple[ErrorRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class Flow:
    """A flow as `app.flow(id)` shows it.

    Attributes:
        state: "queued" (no job started yet), "running", "completed", "failed" or
            "cancelled".
        steps: the jobs of each step, in order.
        results: each done job's result by job name.
        error: the error that failed the flow, else None.
    """

    id: str
    name: str
    tid: str | None
    state: str
    steps: tuple[tuple[Job, ...], ...]
    results: dict[str, Any] = field(default_factory=dict)
    error: ErrorRecord | None = None
    created: datetime | None = None
    finished: datetime | None = None


def new_flow_record(name: str, tid: str | None, payload: object,
                 steps: Sequence[Sequence[Mapping[str, Any]]], now: datetime) -> FlowRecord:
    """Check `app.start_flow`'s arguments and return the new flow's record.

    Raises:
        InvalidEvent: naming the bad value (a name, tid, payload, step or job).
    """
    check_name(name)
    check_name(f"{name}.completed")
    _check_tid(tid, "flow")
    flow_payload = orjson.loads(encode_payload(payload))
    if isinstance(steps, str | bytes) or not isinstance(steps, Sequence) or not steps:
        raise InvalidEvent(f"invalid steps {quote(steps)}: expected a non-empty list of steps")
    jobs = [[_job(job, tid, now) for job in _step(step, index)]
            for index, step in enumerate(steps)]
    names = [job.name for step in jobs for job in step]
    twice = sorted({job for job in names if names.count(job) > 1})
    if twice:
        raise InvalidEvent(f"job name(s) {quote(twice)} appear twice in flow {quote(name)}: "
                           "results are passed on by job name")
    return FlowRecord(new_item_id(), name, tid, flow_payload, jobs, now)


def _step(step: object, index: int) -> Sequence[Any]:
    if isinstance(step, str | bytes | Mapping) or not isinstance(step, Sequence) or not step:
        raise InvalidEvent(f"invalid step {index} {quote(step)}: expected a non-empty list "
                           "of jobs")
    return step


def _job(job: object, flow_tid: str | None, now: datetime) -> JobRecord:
    if not isinstance(job, Mapping) or "name" not in job:
        raise InvalidEvent(f"invalid job {quote(job)}: expected a dict with a 'name'")
    unknown = sorted(set(job) - _JOB_FIELDS, key=str)
    if unknown:
        raise InvalidEvent(f"unknown job field(s) {quote(unknown)} in {quote(dict(job))}")
    name = check_name(job["name"])
    tid = job.get("tid", flow_tid)
    _check_tid(tid, f"job {name!r}")
    payload = orjson.loads(encode_payload(job.get("payload")))
    delay = 0.0
    if job.get("when") is not None:
        delay = max(0.0, (parse_when(job["when"], now=now) - now).total_seconds())
    return JobRecord(name, tid, payload, delay)


def _check_tid(tid: object, what: str) -> None:
    if tid is not None and not isinstance(tid, str):
        raise InvalidEvent(f"invalid tid {quote(tid)} of {what}: expected a str or None")


def item_ids(record: FlowRecord) -> list[str]:
    """Return the ids of the record's open items (whose live state `view` needs)."""
    return [item.id for jobs in record.steps for job in jobs for item in job.items
            if item.state == OPEN]


def view(record: FlowRecord, live: Mapping[str, Item]) -> Flow:
    """Return the `Flow` users see: the record, with open items' live state from `live`."""
    steps = tuple(tuple(_job_view(job, record, live) for job in jobs) for jobs in record.steps)
    state = record.state
    if state == RUNNING:
        started = any(job.state not in ("ready", "scheduled") or job.attempts
                      for jobs in steps for job in jobs if job.item_ids)
        state = "running" if record.step > 0 or started else "queued"
    return Flow(record.id, record.name, record.tid, state, steps, record.results(),
                record.error, record.created, record.finished)


def _job_view(job: JobRecord, record: FlowRecord, live: Mapping[str, Item]) -> Job:
    ids = tuple(item.id for item in job.items)
    if not job.placed:
        unreached = "scheduled" if record.state == RUNNING else CANCELLED
        return Job(job.name, ids, unreached)
    states, attempts, errors = [], 0, []
    for item in job.items:
        state, tries, item_errors = _item_view(item, live.get(item.id))
        states.append(state)
        attempts += tries
        errors.extend(item_errors)
    state = next((s for s in _PRECEDENCE if s in states), DONE)
    return Job(job.name, ids, state, attempts, job.result, tuple(errors))


def _item_view(item: ItemRecord, live: Item | None) -> tuple[str, int, list[ErrorRecord]]:
    if item.state != OPEN:
        return item.state, item.attempts, item.errors
    if live is None:  # settled between the two reads, or not visible: as if ready
        return State.READY.value, 0, []
    return live.state.value, live.attempts, list(live.errors)


def context_of(record: FlowRecord, item_id: str) -> FlowContext:
    """Return what the handler of `item_id`, one of the flow's items, sees as `event.flow`."""
    found = record.find(item_id)
    step = record.step if found is None else found[0]
    return FlowContext(record.id, record.name, record.payload, step, record.results(step))


def encode_result(result: object) -> bytes:
    """Return a job handler's return value as JSON.

    Raises:
        InvalidEvent: it is not JSON (a job's result is passed on as JSON).
    """
    try:
        return orjson.dumps(result, option=orjson.OPT_PASSTHROUGH_DATETIME
                            | orjson.OPT_PASSTHROUGH_DATACLASS)
    except (orjson.JSONEncodeError, TypeError) as exc:
        raise InvalidEvent(f"the handler returned {quote(result)}, which is not JSON ({exc}): "
                           "a job's result is passed on as JSON") from exc
