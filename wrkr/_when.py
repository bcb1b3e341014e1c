"""Read `when` values and durations: "in 1 hour and 30 minutes" -> datetime or timedelta.

The one place wrkr turns what users write into aware UTC datetimes and timedeltas;
everything past the API edge receives them normalised. Pure: the current time is passed in.

A human interval, case-insensitive::

    interval  := ["in"] term {separator term}
    separator := "," | "and" | ", and"
    term      := number [space] unit          "10s", "10 s", "1.5 hours", "an hour"
               | digits unit digits unit ...  "1h30m", "2d4h": compact, no spaces
    number    := digits ["." digits] | "a" | "an" | "one" .. "twenty" | "thirty" .. "sixty"
    unit      := ms | s | m | h | d | w | month | year   (spellings in `_SPELLINGS`)

A word number needs a space before its unit. A bare number ("10") is not an interval:
its unit would be a guess. Months and years are calendar steps (python-dateutil's
relativedelta: a month after 31 January is 28 February), so they must be whole; they are
applied first, then the fixed units.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from dateutil.relativedelta import relativedelta

from wrkr._errors import InvalidWhen, quote

__all__ = ["parse_duration", "parse_when"]

_SPELLINGS: dict[str, tuple[str, ...]] = {
    "milliseconds": ("ms", "millisecond", "milliseconds"),
    "seconds": ("s", "sec", "secs", "second", "seconds"),
    "minutes": ("m", "min", "mins", "minute", "minutes"),
    "hours": ("h", "hr", "hrs", "hour", "hours"),
    "days": ("d", "day", "days"),
    "weeks": ("w", "week", "weeks"),
    "months": ("month", "months"),
    "years": ("y", "year", "years"),
}
_UNITS = {spelling: unit for unit, spellings in _SPELLINGS.items() for spelling in spellings}
_FIXED = {
    "milliseconds": timedelta(milliseconds=1),
    "seconds": timedelta(seconds=1),
    "minutes": timedelta(minutes=1),
    "hours": timedelta(hours=1),
    "days": timedelta(days=1),
    "weeks": timedelta(weeks=1),
}
_MONTHS = {"months": 1, "years": 12}

_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
}

_PREFIX = re.compile(r"in\s+")
_SEPARATOR = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+")
_BARE_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_COMPACT = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?[a-z]+){2,}")
_COMPACT_TERM = re.compile(r"[0-9]+(?:\.[0-9]+)?[a-z]+")
_UNIT_MISSING = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?[a-z]+)+[0-9]+(?:\.[0-9]+)?")
_TERM = re.compile(r"(?:(?P<digits>[0-9]+(?:\.[0-9]+)?)\s*|(?P<word>[a-z]+)\s+)(?P<unit>[a-z]+)")

_INTERVAL_EXAMPLE = "an interval such as 'in 1 hour and 30 minutes'"
_WHEN_EXPECTED = f"expected an aware datetime, ISO-8601 with an offset or {_INTERVAL_EXAMPLE}"
_DURATION_EXPECTED = f"expected seconds, a timedelta or {_INTERVAL_EXAMPLE}"


class _Reject(Exception):
    """Why a value cannot be read; the public functions turn it into `InvalidWhen`."""


class _Interval(NamedTuple):
    """A human interval: whole calendar months, then a fixed length."""

    months: int
    fixed: timedelta

    def after(self, start: datetime) -> datetime:
        """Return `start` moved by the months, then by the fixed length."""
        try:
            return start + relativedelta(months=self.months) + self.fixed
        except (OverflowError, ValueError):  # past year 9999
            raise _Reject("out of range") from None


def parse_when(value: object, *, now: datetime) -> datetime:
    """Return the aware UTC time that a `when` value means.

    Args:
        value: None (now); an aware datetime; a timedelta or int/float seconds from now;
            an ISO-8601 string with an offset; or a human interval ("in 2 days").
        now: the current time, timezone-aware.

    Returns:
        The time, in UTC; never earlier than `now` (a time in the past means now).

    Raises:
        InvalidWhen: the value is naive, negative, out of range or unreadable;
            the message quotes it.
    """
    if now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got {quote(now)}")
    now = now.astimezone(UTC)
    try:
        due = _when(value, now)
    except _Reject as exc:
        raise InvalidWhen(f"invalid when {quote(value)}: {exc}") from None
    return max(due, now)


def parse_duration(
    value: object, *, what: str = "duration", now: datetime | None = None
) -> timedelta:
    """Return the positive length of time that a duration value means.

    Args:
        value: a timedelta, int/float seconds or a human interval ("1 hour and 30 minutes").
        what: what the value is for, named in the error ("timeout", "once_every").
        now: where months and years are measured from; defaults to the current UTC time.

    Returns:
        The duration, greater than zero.

    Raises:
        InvalidWhen: the value is unreadable, out of range or not positive;
            the message names `what` and quotes the value.
    """
    start = datetime.now(UTC) if now is None else now
    try:
        duration = _duration(value, start)
    except _Reject as exc:
        raise InvalidWhen(f"invalid {what} {quote(value)}: {exc}") from None
    if duration <= timedelta(0):
        raise InvalidWhen(f"invalid {what} {quote(value)}: must be positive")
    return duration


def _when(value: object, now: datetime) -> datetime:
    """Return the time `value` means, possibly in the past."""
    if value is None:
        return now
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, str):
        return _when_text(value, now)
    offset = _seconds(value, _WHEN_EXPECTED)
    if offset < timedelta(0):
        raise _Reject("must not be negative")
    return _Interval(0, offset).after(now)


def _when_text(text: str, now: datetime) -> datetime:
    """Read an ISO-8601 time or a human interval from now."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return _parse_interval(text, _WHEN_EXPECTED).after(now)
    return _aware(moment)


def _aware(moment: datetime) -> datetime:
    """Return `moment` in UTC; a naive time is refused, never guessed."""
    if moment.utcoffset() is None:
        raise _Reject("naive datetime: give it a timezone, e.g. tzinfo=UTC or '+00:00'")
    return moment.astimezone(UTC)


def _duration(value: object, start: datetime) -> timedelta:
    """Return the length `value` means, possibly zero or negative."""
    if isinstance(value, str):
        return _parse_interval(value, _DURATION_EXPECTED).after(start) - start
    return _seconds(value, _DURATION_EXPECTED)


def _seconds(value: object, expected: str) -> timedelta:
    """Return a timedelta as given, or int/float seconds (not bool) as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Reject(expected)
    if not math.isfinite(value):
        raise _Reject("expected a finite number of seconds")
    try:
        return timedelta(seconds=value)
    except OverflowError:
        raise _Reject("out of range") from None


def _parse_interval(text: str, expected: str) -> _Interval:
    """Read a human interval such as "in 1 day, 2 hours and 3 minutes"."""
    body = _PREFIX.sub("", text.strip().lower(), count=1)
    if not body:
        raise _Reject(f"empty; {expected}")
    months, fixed = 0, timedelta(0)
    try:
        for term in _terms(body):
            number, unit = _parse_term(term, expected)
            if unit in _MONTHS:
                months += _whole(number, unit) * _MONTHS[unit]
            else:
                fixed += _FIXED[unit] * number
    except OverflowError:
        raise _Reject("out of range") from None
    return _Interval(months, fixed)


def _terms(body: str) -> list[str]:
    """Split an interval at its separators, and compact terms ("1h30m") into their parts."""
    terms: list[str] = []
    for term in _SEPARATOR.split(body):
        terms.extend(_COMPACT_TERM.findall(term) if _COMPACT.fullmatch(term) else [term])
    return terms


def _parse_term(term: str, expected: str) -> tuple[float, str]:
    """Read one `number unit` term; return the number and the unit's canonical name."""
    match = _TERM.fullmatch(term)
    if match is None and _BARE_NUMBER.fullmatch(term):
        raise _Reject(f"{quote(term)} has no unit; write e.g. '{term} seconds'")
    if match is None and _UNIT_MISSING.fullmatch(term):
        raise _Reject(f"{quote(term)} ends in a number without a unit; write e.g. '1h30m'")
    if match is None:
        raise _Reject(expected)
    unit = _UNITS.get(match["unit"])
    if unit is None:
        raise _Reject(f"unknown unit {match['unit']!r}; expected one of ms, s, m, h, d, w, "
                      "month, year")
    return _number(match), unit


def _number(match: re.Match[str]) -> float:
    """Return the number of a matched term, written in digits or as an English word."""
    if match["digits"] is not None:
        number = float(match["digits"])
        if not math.isfinite(number):
            raise _Reject("out of range")
        return number
    word = match["word"]
    if word not in _NUMBER_WORDS:
        raise _Reject(f"unknown number {quote(word)}; write digits, 'a', or 'one' to 'twenty', "
                      "'thirty', 'forty', 'fifty', 'sixty'")
    return float(_NUMBER_WORDS[word])


def _whole(number: float, unit: str) -> int:
    """Return `number` as an int: calendar months and years have no fractions."""
    if not number.is_integer():
        raise _Reject(f"{unit} must be whole (calendar steps); use weeks or days for fractions")
    return int(number)
