"""Rows of the schedules table, to and from `ScheduleRecord` (statements: sql/schedules.sql)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wrkr.backend import Firing, ScheduleRecord
from wrkr_postgres._db import Row

__all__ = ["firing_params", "record_params", "to_record"]


def record_params(record: ScheduleRecord, now: datetime) -> dict[str, Any]:
    """Return the parameters of `save_schedule` for `record`."""
    return {"name": record.name, "cron": record.cron, "every": record.every, "tz": record.tz,
            "tid": record.tid, "payload": record.payload, "catch_up": record.catch_up,
            "next": record.next, "now": now}


def firing_params(firing: Firing, now: datetime) -> dict[str, Any]:
    """Return the parameters of `take_firing` for `firing`."""
    return {"name": firing.schedule, "due": firing.due, "next": firing.next,
            "fired": firing.fired, "now": now}


def to_record(row: Row) -> ScheduleRecord:
    """Return the record of one row of the `schedules` statement."""
    name, cron, every, tz, tid, payload, catch_up, upcoming, last = row
    return ScheduleRecord(name, cron, every, tz, tid, bytes(payload), catch_up, upcoming, last)
