"""`MemorySchedules`: the memory store's recurring schedules, a dict by name.

Nothing here awaits, so a firing's check, its move to the next time and the items it
publishes happen in one step: no other app on the store can fire in between.
"""

from __future__ import annotations

import dataclasses

from wrkr.backend import Firing, ScheduleRecord

__all__ = ["MemorySchedules"]


class MemorySchedules:
    """The schedules of one `MemoryStore`."""

    def __init__(self) -> None:
        self._records: dict[str, ScheduleRecord] = {}

    def all(self) -> list[ScheduleRecord]:
        """Return every schedule, sorted by name."""
        return [self._records[name] for name in sorted(self._records)]

    def save(self, record: ScheduleRecord) -> bool:
        """Store or update `record`; see `Store.save_schedule`."""
        stored = self._records.get(record.name)
        if stored is not None and stored.same_definition(record):
            return False
        if stored is not None:
            upcoming = stored.next if stored.same_timing(record) else record.next
            record = dataclasses.replace(record, next=upcoming, last=stored.last)
        self._records[record.name] = record
        return True

    def remove(self, name: str) -> bool:
        """Delete a schedule; tell whether there was one."""
        return self._records.pop(name, None) is not None

    def take(self, firing: Firing) -> bool:
        """Move the schedule on if it is still due at `firing.due`; tell whether it was."""
        stored = self._records.get(firing.schedule)
        if stored is None or stored.next != firing.due:
            return False
        last = stored.last if firing.fired is None else firing.fired
        self._records[firing.schedule] = dataclasses.replace(stored, next=firing.next,
                                                             last=last)
        return True
