"""Recurring schedules: what a schedule is, when it next fires, and what a firing does.

Pure: the current time is passed in. The scheduler (`_scheduler`) runs these rules on
the store's primitives; stores keep `ScheduleRecord`s and carry out `Firing`s.

Times are by `zoneinfo`. A cron expression is read in the schedule's time zone by
cronsim (the ``wrkr[cron]`` extra), which follows Debian cron across DST changes: a
local time that does not exist fires once, at the first instant after the gap; one
that exists twice fires once, at its first occurrence. `every` counts fixed intervals
from the schedule's creation, in UTC, whatever `tz` says.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from wrkr._errors import InvalidConfig
from wrkr._types import Message

__all__ = ["CatchUp", "Firing", "Schedule", "ScheduleRecord", "following", "plan_firing"]

CatchUp = Literal["latest", "all", "none"]
CATCH_UPS: tuple[CatchUp, ...] = ("latest", "all", "none")
MISSED_AFTER = timedelta(minutes=1)
"""A firing found later than this past its time was missed (no app ran): `catch_up` decides."""
MIN_EVERY = timedelta(seconds=1)
MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@hourly": "0 * * * *"}


@dataclass(frozen=True, slots=True)
class Schedule:
    """A recurring schedule, as `app.schedules()` lists it.

    Attributes:
        name: the event each firing publishes.
        cron: the cron expression (read in `tz`), or None for an `every` schedule.
        every: the fixed interval, or None for a cron schedule.
        tz: the IANA time zone cron times are read in ("UTC" by default).
        tid: the published event's tid.
        payload: the published event's payload.
        next: when it fires next (aware UTC).
        last: when it last fired (aware UTC); None before its first firing.
    """

    name: str
    cron: str | None
    every: timedelta | None
    tz: str
    tid: str | None
    payload: dict[str, Any] | None
    next: datetime
    last: datetime | None


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A schedule as a store keeps it (the payload encoded, as for items).

    Two records have the same *timing* when cron, every and tz agree: then an update
    keeps the stored `next`. `last` is the store's: a save never changes it.
    """

    name: str
    cron: str | None
    every: timedelta | None
    tz: str
    tid: str | None
    payload: bytes
    catch_up: CatchUp
    next: datetime
    last: datetime | None = None

    def same_timing(self, other: ScheduleRecord) -> bool:
        """Tell whether `other` fires at the same times (cron, every and tz agree)."""
        return (self.cron, self.every, self.tz) == (other.cron, other.every, other.tz)

    def same_definition(self, other: ScheduleRecord) -> bool:
        """Tell whether saving `other` over this one would change nothing."""
        return self.same_timing(other) and (self.tid, self.payload, self.catch_up) == (
            other.tid, other.payload, other.catch_up)



@dataclass(frozen=True, slots=True)
class Firing:
    """One step of a schedule, for the store to carry out atomically, or not at all.

    The store does it only if the schedule is still due at `due` (nobody fired or
    changed it since): then `next` becomes its next firing, `fired` (unless None: a
    firing skipped by `catch_up="none"`) its last, and `messages` are stored as by
    `Store.put`. `(schedule, due)` is the firing's key: at most one app consumes it.
    """

    schedule: str
    due: datetime
    next: datetime
    fired: datetime | None
    messages: tuple[Message, ...]


# -- timing --------------------------------------------------------------------------


def load_cronsim() -> Any:
    """Return the cronsim module, or raise `InvalidConfig` naming the extra to install."""
    try:
        import cronsim
    except ImportError:
        raise InvalidConfig('cron schedules need cronsim: pip install "wrkr[cron]" '
                            "(every= needs nothing more)") from None
    return cronsim


def cron_available() -> bool:
    """Tell whether cron schedules can be computed here (the ``wrkr[cron]`` extra)."""
    try:
        load_cronsim()
    except InvalidConfig:
        return False
    return True


def firings_after(record: ScheduleRecord, after: datetime) -> Iterator[datetime]:
    """Yield the schedule's firing times strictly after `after`, in order (aware UTC)."""
    if record.every is not None:
        moment = after + record.every
        while True:
            yield moment
            moment += record.every
    assert record.cron is not None
    cronsim = load_cronsim()
    zone = zoneinfo.ZoneInfo(record.tz)
    expression = MACROS.get(record.cron.lower(), record.cron)
    for moment in cronsim.CronSim(expression, after.astimezone(zone)):
        yield moment.astimezone(UTC)


def following(record: ScheduleRecord, after: datetime) -> datetime:
    """Return the first firing strictly after `after`."""
    return next(firings_after(record, after))


def plan_firing(record: ScheduleRecord, now: datetime) -> Firing | None:
    """Return the step a due schedule takes at `now`, by its `catch_up`; None if not due.

    `all` fires its due time and moves on by one; `latest` fires only the last firing
    due by now; `none` fires that one only if it is not missed (found within
    `MISSED_AFTER` of its time), and otherwise skips to the first firing after now.
    """
    if record.next > now:
        return None
    if record.catch_up == "all":
        return _firing(record, record.next, following(record, record.next), now)
    latest = _latest(record, now)
    upcoming = following(record, latest)
    if record.catch_up == "none" and now - latest > MISSED_AFTER:
        return Firing(record.name, record.next, upcoming, None, ())
    return _firing(record, latest, upcoming, now)


def _latest(record: ScheduleRecord, now: datetime) -> datetime:
    """Return the last firing due by `now` (at least the record's `next`)."""
    if record.every is not None:
        return record.next + record.every * ((now - record.next) // record.every)
    latest = record.next
    for moment in firings_after(record, record.next):
        if moment > now:
            return latest
        latest = moment
    raise AssertionError("unreachable: a cron schedule fires forever")


def _firing(record: ScheduleRecord, at: datetime, upcoming: datetime,
            now: datetime) -> Firing:
    """Publish the event once for the firing at `at` (its due time: `event.when`)."""
    message = Message(record.name, record.tid, record.payload or b"{}", at, now)
    return Firing(record.name, record.next, upcoming, at, (message,))
