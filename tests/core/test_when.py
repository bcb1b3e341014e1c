"""The `when` and duration parser: tables of what it reads and what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from wrkr._errors import InvalidWhen
from wrkr._when import parse_duration, parse_when

# The last day of January, so that month steps are visibly calendar steps.
NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
PARIS_WINTER = timezone(timedelta(hours=1))


def later(**kwargs: float) -> datetime:
    """Return NOW plus a fixed length."""
    return NOW + timedelta(**kwargs)


ACCEPTED_WHEN: list[tuple[object, datetime]] = [
    # None, numbers, timedeltas
    (None, NOW),
    (0, NOW),
    (10, later(seconds=10)),
    (1.5, later(seconds=1.5)),
    (0.001, later(milliseconds=1)),
    (timedelta(0), NOW),
    (timedelta(days=7), later(days=7)),
    # aware datetimes, converted to UTC
    (NOW, NOW),
    (datetime(2026, 2, 1, 13, 0, tzinfo=PARIS_WINTER), datetime(2026, 2, 1, 12, 0, tzinfo=UTC)),
    (datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    # ISO-8601 with an offset
    ("2026-02-01T12:00:00+00:00", later(days=1)),
    ("2026-02-01T12:00:00Z", later(days=1)),
    ("2026-02-01 12:00Z", later(days=1)),
    ("2026-02-01T13:00:00+01:00", later(days=1)),
    ("2026-02-01T12:00:00.250000+00:00", later(days=1, milliseconds=250)),
    ("20260201T120000Z", later(days=1)),
    ("  2026-02-01T12:00:00Z  ", later(days=1)),
    # every unit, in digits
    ("250 ms", later(milliseconds=250)),
    ("1 millisecond", later(milliseconds=1)),
    ("500 milliseconds", later(milliseconds=500)),
    ("10s", later(seconds=10)),
    ("10 s", later(seconds=10)),
    ("1 sec", later(seconds=1)),
    ("30 secs", later(seconds=30)),
    ("1 second", later(seconds=1)),
    ("45 seconds", later(seconds=45)),
    ("5m", later(minutes=5)),
    ("1 min", later(minutes=1)),
    ("15 mins", later(minutes=15)),
    ("1 minute", later(minutes=1)),
    ("90 minutes", later(minutes=90)),
    ("2h", later(hours=2)),
    ("1 hr", later(hours=1)),
    ("3 hrs", later(hours=3)),
    ("1 hour", later(hours=1)),
    ("24 hours", later(hours=24)),
    ("1d", later(days=1)),
    ("1 day", later(days=1)),
    ("7 days", later(days=7)),
    ("1w", later(weeks=1)),
    ("1 week", later(weeks=1)),
    ("2 weeks", later(weeks=2)),
    ("1 month", datetime(2026, 2, 28, 12, 0, tzinfo=UTC)),
    ("2 months", datetime(2026, 3, 31, 12, 0, tzinfo=UTC)),
    ("13 months", datetime(2027, 2, 28, 12, 0, tzinfo=UTC)),
    ("1y", datetime(2027, 1, 31, 12, 0, tzinfo=UTC)),
    ("1 year", datetime(2027, 1, 31, 12, 0, tzinfo=UTC)),
    ("2 years", datetime(2028, 1, 31, 12, 0, tzinfo=UTC)),
    ("1.0 month", datetime(2026, 2, 28, 12, 0, tzinfo=UTC)),
    # decimals
    ("1.5 hours", later(minutes=90)),
    ("0.5 days", later(hours=12)),
    ("2.25 minutes", later(seconds=135)),
    ("0 seconds", NOW),
    # number words
    ("a day", later(days=1)),
    ("an hour", later(hours=1)),
    ("a second", later(seconds=1)),
    ("one minute", later(minutes=1)),
    ("two weeks", later(weeks=2)),
    ("three days", later(days=3)),
    ("twelve hours", later(hours=12)),
    ("twenty seconds", later(seconds=20)),
    ("thirty minutes", later(minutes=30)),
    ("forty seconds", later(seconds=40)),
    ("fifty ms", later(milliseconds=50)),
    ("sixty minutes", later(hours=1)),
    ("a month", datetime(2026, 2, 28, 12, 0, tzinfo=UTC)),
    ("a year", datetime(2027, 1, 31, 12, 0, tzinfo=UTC)),
    # "in", "and", commas, case and spacing
    ("in 1 hour", later(hours=1)),
    ("in an hour", later(hours=1)),
    ("In 2 Days", later(days=2)),
    ("IN 5 MINUTES", later(minutes=5)),
    ("in 1 hour and 30 minutes", later(hours=1, minutes=30)),
    ("1 day, 2 hours and 3 minutes", later(days=1, hours=2, minutes=3)),
    ("1 day, 2 hours, and 3 minutes", later(days=1, hours=2, minutes=3)),
    ("1 day,2 hours", later(days=1, hours=2)),
    ("1h, 30m", later(hours=1, minutes=30)),
    ("  in   2   hours   and   5   minutes  ", later(hours=2, minutes=5)),
    ("1 hour and 1 hour", later(hours=2)),
    ("in two weeks and a day", later(weeks=2, days=1)),
    ("1 month and 1 day", datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),
    ("1 year and 1 month", datetime(2027, 2, 28, 12, 0, tzinfo=UTC)),
    ("in 1 month, 2 days and 3 hours", datetime(2026, 3, 2, 15, 0, tzinfo=UTC)),
    # compact: digits and units with nothing between the terms
    ("1h30m", later(hours=1, minutes=30)),
    ("2d4h", later(days=2, hours=4)),
    ("90s", later(seconds=90)),
    ("1w2d3h4m5s250ms", later(weeks=1, days=2, hours=3, minutes=4, seconds=5,
                              milliseconds=250)),
    ("1.5h30m", later(hours=2)),
    ("in 1h30m", later(hours=1, minutes=30)),
    ("1H30M", later(hours=1, minutes=30)),
    ("1h30m and 10s", later(hours=1, minutes=30, seconds=10)),
    ("1d, 1h30m", later(days=1, hours=1, minutes=30)),
    ("1month2d", datetime(2026, 3, 2, 12, 0, tzinfo=UTC)),
    ("1y1month", datetime(2027, 2, 28, 12, 0, tzinfo=UTC)),
    ("1hour30minutes", later(hours=1, minutes=30)),
]


@pytest.mark.parametrize(("value", "expected"), ACCEPTED_WHEN, ids=repr)
def test_when_reads_accepted_value(value: object, expected: datetime) -> None:
    assert parse_when(value, now=NOW) == expected


@pytest.mark.parametrize(("value", "expected"), ACCEPTED_WHEN, ids=repr)
def test_when_is_always_aware_utc(value: object, expected: datetime) -> None:
    assert parse_when(value, now=NOW).tzinfo is UTC


REJECTED_WHEN: list[object] = [
    # not a time at all
    "tomorrow-ish",
    "tomorrow",
    "next week",
    "soon",
    "",
    "   ",
    "in",
    "in ",
    "and",
    # numbers without units, units without numbers
    "10",
    "1.5",
    "1 hour and 5",
    "hours",
    "in hours",
    # unknown units and number words
    "1 fortnight",
    "3 eons",
    "5 mo",
    "twenty-five minutes",
    "hundred days",
    "anhour",
    "onehour",
    # negative, non-finite, malformed numbers
    "-1 hour",
    "in -5 minutes",
    "+1 hour",
    ".5 hours",
    "1. hours",
    "1.2.3 hours",
    "1,5 hours",
    "1e3 seconds",
    "nan seconds",
    "inf seconds",
    "\u0661 hour",  # an Arabic-Indic digit: digits are ASCII only
    -1,
    -0.5,
    timedelta(seconds=-1),
    float("nan"),
    float("inf"),
    float("-inf"),
    # fractional calendar steps
    "1.5 months",
    "0.5 years",
    "a year and 1.5 months",
    # bad separators
    "1 hour and and 2 minutes",
    "1 hour,, 2 minutes",
    "1 hour and",
    "1 hour,",
    ", 1 hour",
    "1 hour 30 minutes",
    # compact forms gone wrong
    "1h30",
    "1h30x",
    "1h30mm",
    "h30m",
    "1h-30m",
    "1h 30m",
    "1.5month1d",
    "1h30m,",
    "1 hour in 2 days",
    "in in 1 hour",
    # naive times, never guessed
    datetime(2026, 2, 1, 12, 0),
    "2026-02-01T12:00:00",
    "2026-02-01",
    "2026-13-01T12:00:00Z",
    # out of range
    "9999 years",
    "99999999999999999999 days",
    "1" * 400 + " seconds",
    10**30,
    1e300,
    timedelta.max,
    # wrong types
    True,
    False,
    b"1 hour",
    [1],
    {"hours": 1},
    1j,
    NOW.date(),
]


@pytest.mark.parametrize("value", REJECTED_WHEN, ids=repr)
def test_when_rejects_value_quoting_it(value: object) -> None:
    with pytest.raises(InvalidWhen) as caught:
        parse_when(value, now=NOW)
    assert str(caught.value).startswith(f"invalid when {value!r}: ")


def test_when_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="tomorrow-ish"):
        parse_when("tomorrow-ish", now=NOW)


def test_unreadable_when_says_what_is_expected() -> None:
    with pytest.raises(InvalidWhen, match=r"expected .*ISO-8601.*'in 1 hour and 30 minutes'"):
        parse_when("tomorrow-ish", now=NOW)


def test_unknown_unit_is_named() -> None:
    with pytest.raises(InvalidWhen, match="unknown unit 'fortnight'"):
        parse_when("1 fortnight", now=NOW)


def test_unknown_number_word_is_named() -> None:
    with pytest.raises(InvalidWhen, match="unknown number 'next'"):
        parse_when("next week", now=NOW)


def test_number_without_unit_asks_for_one() -> None:
    with pytest.raises(InvalidWhen, match="has no unit"):
        parse_when("10", now=NOW)


def test_compact_interval_ending_in_a_number_asks_for_its_unit() -> None:
    with pytest.raises(InvalidWhen, match=r"^invalid when '1h30': '1h30' ends in a number "
                                          r"without a unit"):
        parse_when("1h30", now=NOW)


def test_compact_interval_with_an_unknown_unit_names_it() -> None:
    with pytest.raises(InvalidWhen, match="unknown unit 'x'"):
        parse_when("2d4x", now=NOW)


def test_fractional_month_is_refused() -> None:
    with pytest.raises(InvalidWhen, match="months must be whole"):
        parse_when("1.5 months", now=NOW)


def test_naive_datetime_is_refused_not_guessed() -> None:
    with pytest.raises(InvalidWhen, match="naive"):
        parse_when(datetime(2030, 1, 1), now=NOW)


def test_naive_iso_string_is_refused_not_guessed() -> None:
    with pytest.raises(InvalidWhen, match="naive"):
        parse_when("2030-01-01T00:00:00", now=NOW)


def test_negative_seconds_are_refused() -> None:
    with pytest.raises(InvalidWhen, match="must not be negative"):
        parse_when(-5, now=NOW)


@pytest.mark.parametrize(
    "past",
    [
        NOW - timedelta(microseconds=1),
        NOW - timedelta(days=365),
        datetime(1970, 1, 1, tzinfo=UTC),
        "2020-01-01T00:00:00Z",
        "2026-01-31T12:59:59+01:00",
    ],
    ids=repr,
)
def test_past_time_means_now(past: object) -> None:
    assert parse_when(past, now=NOW) == NOW


def test_month_is_a_calendar_step() -> None:
    assert parse_when("1 month", now=NOW) == datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
    assert parse_when("1 month", now=NOW) != NOW + timedelta(days=30)


def test_year_from_leap_day_lands_on_last_of_february() -> None:
    leap_day = datetime(2028, 2, 29, 9, 0, tzinfo=UTC)
    assert parse_when("1 year", now=leap_day) == datetime(2029, 2, 28, 9, 0, tzinfo=UTC)


def test_months_are_applied_before_days() -> None:
    assert parse_when("1 day and 1 month", now=NOW) == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_now_in_another_zone_gives_utc() -> None:
    paris_now = NOW.astimezone(PARIS_WINTER)
    due = parse_when("1 hour", now=paris_now)
    assert due == later(hours=1)
    assert due.tzinfo is UTC


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        parse_when("1 hour", now=datetime(2026, 1, 31, 12, 0))


ACCEPTED_DURATIONS: list[tuple[object, timedelta]] = [
    (1, timedelta(seconds=1)),
    (0.25, timedelta(milliseconds=250)),
    (300, timedelta(minutes=5)),
    (timedelta(minutes=5), timedelta(minutes=5)),
    ("5 minutes", timedelta(minutes=5)),
    ("1 hour", timedelta(hours=1)),
    ("in 1 hour and 30 minutes", timedelta(hours=1, minutes=30)),
    ("1.5 hours", timedelta(minutes=90)),
    ("10s", timedelta(seconds=10)),
    ("250ms", timedelta(milliseconds=250)),
    ("an hour", timedelta(hours=1)),
    ("two weeks", timedelta(weeks=2)),
    ("1 day, 2 hours and 3 minutes", timedelta(days=1, hours=2, minutes=3)),
    ("1 month", timedelta(days=28)),  # from NOW, 31 January -> 28 February
    ("2 months", timedelta(days=59)),  # -> 31 March
    ("1 year", timedelta(days=365)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("2d4h", timedelta(days=2, hours=4)),
    ("90s", timedelta(seconds=90)),
]


@pytest.mark.parametrize(("value", "expected"), ACCEPTED_DURATIONS, ids=repr)
def test_duration_reads_accepted_value(value: object, expected: timedelta) -> None:
    assert parse_duration(value, now=NOW) == expected


REJECTED_DURATIONS: list[object] = [
    0,
    0.0,
    -1,
    -0.001,
    timedelta(0),
    timedelta(seconds=-1),
    "0 seconds",
    "0.0000001 seconds",
    "-1 hour",
    "",
    "10",
    "forever",
    "1 fortnight",
    "1.5 months",
    "2026-02-01T12:00:00Z",
    NOW,
    None,
    True,
    float("nan"),
    float("inf"),
    10**30,
    "9999 years",
    b"1 hour",
    "1h30",
    "0h0m",
]


@pytest.mark.parametrize("value", REJECTED_DURATIONS, ids=repr)
def test_duration_rejects_value_naming_what_it_is_for(value: object) -> None:
    with pytest.raises(InvalidWhen) as caught:
        parse_duration(value, what="timeout", now=NOW)
    assert str(caught.value).startswith(f"invalid timeout {value!r}: ")


def test_non_positive_duration_says_it_must_be_positive() -> None:
    with pytest.raises(InvalidWhen, match=r"^invalid timeout -1: must be positive$"):
        parse_duration(-1, what="timeout")


def test_duration_is_named_duration_by_default() -> None:
    with pytest.raises(InvalidWhen, match=r"^invalid duration 'forever': "):
        parse_duration("forever")


def test_duration_months_are_measured_from_now() -> None:
    assert parse_duration("1 month", now=datetime(2026, 2, 1, tzinfo=UTC)) == timedelta(days=28)
    assert parse_duration("1 month", now=datetime(2026, 3, 1, tzinfo=UTC)) == timedelta(days=31)


def test_duration_months_default_to_the_current_time() -> None:
    assert timedelta(days=28) <= parse_duration("1 month") <= timedelta(days=31)
