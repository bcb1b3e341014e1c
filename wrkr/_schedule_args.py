"""Read `app.schedule`'s arguments into the `ScheduleRecord` a store keeps, and back.

Everything a user can get wrong is refused here, naming the bad value, before any
store is reached: the name, exactly one of cron and every, the cron expression (read
by cronsim, the ``wrkr[cron]`` extra), the time zone, the interval, `catch_up`.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta
from typing import Any

from wrkr._errors import InvalidConfig, InvalidEvent, quote
from wrkr._event import decode_payload, encode_payload
from wrkr._names import check_name
from wrkr._schedules import (
    CATCH_UPS,
    MACROS,
    MIN_EVERY,
    Schedule,
    ScheduleRecord,
    following,
    load_cronsim,
)
from wrkr._when import parse_duration

__all__ = ["build_record", "to_schedule"]


def to_schedule(record: ScheduleRecord) -> Schedule:
    """Return the user's view of a stored schedule (its payload decoded)."""
    payload = decode_payload(record.payload) if record.payload else None
    return Schedule(record.name, record.cron, record.every, record.tz, record.tid, payload,
                    record.next, record.last)


def build_record(
    name: str, *, cron: str | None, every: timedelta | float | str | None, tz: str,
    tid: str | None, payload: dict[str, Any] | None, catch_up: str, now: datetime,
) -> ScheduleRecord:
    """Validate `app.schedule`'s arguments and return the record, first firing included.

    Raises:
        InvalidEvent: a bad name or tid.
        InvalidConfig: neither or both of cron and every, a bad cron expression, time
            zone, interval or catch_up, or cron without the ``wrkr[cron]`` extra.
    """
    check_name(name)
    if (cron is None) == (every is None):
        raise InvalidConfig(f"schedule {quote(name)} needs exactly one of cron= and every=")
    if tid is not None and not isinstance(tid, str):
        raise InvalidEvent(f"invalid tid {quote(tid)} for schedule {quote(name)}: expected "
                           "a str or None")
    if catch_up not in CATCH_UPS:
        raise InvalidConfig(f"invalid catch_up {quote(catch_up)} for schedule {quote(name)}: "
                            "expected 'latest', 'all' or 'none'")
    zone = _zone(tz)
    interval = None if every is None else _interval(every)
    expression = None if cron is None else _check_cron(cron, zone, now)
    encoded = b"" if payload is None else encode_payload(payload)
    start = _floor_ms(now)
    first = start + interval if interval is not None else _first_cron(expression, tz, start)
    return ScheduleRecord(name, expression, interval, tz, tid, encoded,
                          CATCH_UPS[CATCH_UPS.index(catch_up)], first)


def _first_cron(expression: str | None, tz: str, start: datetime) -> datetime:
    probe = ScheduleRecord("probe", expression, None, tz, None, b"", "latest", start)
    return following(probe, start)


def _zone(tz: object) -> zoneinfo.ZoneInfo:
    if not isinstance(tz, str):
        raise InvalidConfig(f"invalid tz {quote(tz)}: expected an IANA time zone name "
                            "such as 'Europe/Amsterdam'")
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidConfig(f"unknown time zone {quote(tz)}: expected an IANA name such as "
                            "'Europe/Amsterdam' or 'UTC'") from None


def _interval(every: timedelta | float | str) -> timedelta:
    interval = parse_duration(every, what="every")
    if interval < MIN_EVERY:
        raise InvalidConfig(f"invalid every {quote(every)}: must be at least {MIN_EVERY}")
    return interval


def _check_cron(cron: object, zone: zoneinfo.ZoneInfo, now: datetime) -> str:
    if not isinstance(cron, str):
        raise InvalidConfig(f"invalid cron {quote(cron)}: expected a str such as '0 9 * * *'")
    cronsim = load_cronsim()
    expression = " ".join(cron.split())
    try:
        cronsim.CronSim(MACROS.get(expression.lower(), expression), now.astimezone(zone))
    except cronsim.CronSimError as exc:
        raise InvalidConfig(f"invalid cron {quote(cron)}: {exc} (expected five fields, "
                            "minute hour day month weekday, or six with seconds first)") from None
    return expression


def _floor_ms(moment: datetime) -> datetime:
    """Whole milliseconds, the precision every store keeps (BSON's is a millisecond)."""
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)
