"""Times as whole microseconds since the Unix epoch: how stores and wire formats keep them.

An int is exact (a float is not, past a few hundred years, and `fromtimestamp` rounds),
compares fast inside heap keys and index columns, and costs less than a `datetime`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["EPOCH", "MICROSECOND", "from_micros", "to_micros"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def to_micros(moment: datetime) -> int:
    """Return `moment` (aware) as whole microseconds since the Unix epoch."""
    return (moment - EPOCH) // MICROSECOND


def from_micros(micros: int) -> datetime:
    """Return the aware UTC datetime `micros` microseconds after the Unix epoch."""
    return EPOCH + timedelta(0, 0, micros)  # positional: a third cheaper than keywords
