"""Recurring schedules on one connection: rows of ``wrkr_schedules`` and firings.

Statements: ``sql/schedules.sql``. A firing's compare-and-set on `next` and the
insert of its items run in one BEGIN IMMEDIATE transaction (the caller's), so of any
number of apps in any number of processes firing one schedule, exactly one publishes,
and a firing is stored whole or not at all.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from wrkr.backend import MICROSECOND, Firing, ScheduleRecord, from_micros, to_micros
from wrkr_sqlite._publish import insert

__all__ = ["fire", "save", "to_record"]



def save(conn: sqlite3.Connection, queries: dict[str, str], record: ScheduleRecord,
         now: datetime) -> bool:
    """Insert or update `record`; tell whether anything changed (see `Store.save_schedule`)."""
    params = {"name": record.name, "cron": record.cron,
              "every": None if record.every is None else record.every // MICROSECOND,
              "tz": record.tz, "tid": record.tid, "payload": record.payload,
              "catch_up": record.catch_up, "next": to_micros(record.next),
              "now": to_micros(now)}
    return bool(conn.execute(queries["save_schedule"], params).rowcount)


def fire(conn: sqlite3.Connection, queries: dict[str, str], firing: Firing,
         now: datetime) -> list[tuple[str, str]] | None:
    """Carry out `firing` if its schedule is still due at `firing.due`.

    Returns (id, queue) of the items published, or None when another app fired it or
    it changed meanwhile (nothing is changed then).
    """
    params = {"name": firing.schedule, "due": to_micros(firing.due),
              "next": to_micros(firing.next), "now": to_micros(now),
              "fired": None if firing.fired is None else to_micros(firing.fired)}
    if not conn.execute(queries["take_firing"], params).rowcount:
        return None
    return insert(conn, queries, firing.messages, now) if firing.messages else []


def to_record(row: tuple[Any, ...]) -> ScheduleRecord:
    """Return the record of one row of the `schedules` statement."""
    name, cron, every, tz, tid, payload, catch_up, upcoming, last = row
    return ScheduleRecord(name, cron, None if every is None else every * MICROSECOND, tz, tid,
                          bytes(payload), catch_up, from_micros(upcoming),
                          None if last is None else from_micros(last))
