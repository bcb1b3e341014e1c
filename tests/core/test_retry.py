"""The retry policy: schedules, exponential backoff, jitter and validation."""

from __future__ import annotations

import dataclasses
import random
import re
from datetime import timedelta

import pytest

from wrkr._errors import InvalidWhen
from wrkr._retry import Retry

SECOND = timedelta(seconds=1)


def test_defaults_are_five_attempts_of_jittered_exponential_backoff() -> None:
    retry = Retry()
    assert (retry.attempts, retry.backoff, retry.jitter) == (5, None, True)
    assert (retry.base, retry.cap) == (SECOND, timedelta(hours=1))


def test_durations_are_stored_as_timedeltas() -> None:
    retry = Retry(backoff=[10, "30 minutes", timedelta(hours=2)], base="2 s", cap=90.0)
    assert retry.backoff == (10 * SECOND, timedelta(minutes=30), timedelta(hours=2))
    assert (retry.base, retry.cap) == (2 * SECOND, 90 * SECOND)


def test_schedule_gives_its_steps_in_order() -> None:
    retry = Retry(backoff=("10 seconds", "30 minutes", "2 hours"))
    assert [retry.delay(attempt) for attempt in (1, 2, 3)] == [
        10 * SECOND, timedelta(minutes=30), timedelta(hours=2),
    ]


def test_schedule_repeats_its_last_step() -> None:
    retry = Retry(attempts=10, backoff=("10 seconds", "2 hours"))
    assert {retry.delay(attempt) for attempt in range(2, 50)} == {timedelta(hours=2)}


def test_schedule_is_not_jittered() -> None:
    retry = Retry(backoff=["1 minute"], jitter=True)
    draws = {retry.delay(1, rng=random.Random(seed)) for seed in range(20)}
    assert draws == {timedelta(minutes=1)}


def test_exponential_backoff_doubles_from_base() -> None:
    retry = Retry(base="1 second", jitter=False)
    assert [retry.delay(attempt) for attempt in range(1, 6)] == [
        SECOND * n for n in (1, 2, 4, 8, 16)
    ]


def test_exponential_backoff_stops_at_cap() -> None:
    retry = Retry(base=10, cap="1 minute", jitter=False)
    assert [retry.delay(attempt) for attempt in range(1, 6)] == [
        SECOND * n for n in (10, 20, 40, 60, 60)
    ]


@pytest.mark.parametrize("attempt", [64, 1024, 1025, 10**6])
def test_exponential_backoff_survives_huge_attempt_numbers(attempt: int) -> None:
    assert Retry(jitter=False).delay(attempt) == timedelta(hours=1)


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 8, 12, 13, 40])
def test_equal_jitter_stays_between_half_and_the_full_wait(attempt: int) -> None:
    retry = Retry(base="1 second", cap="1 hour")
    full = Retry(base="1 second", cap="1 hour", jitter=False).delay(attempt)
    rng = random.Random(20260131)
    draws = [retry.delay(attempt, rng=rng) for _ in range(2000)]
    assert all(full / 2 <= draw <= full for draw in draws)


def test_equal_jitter_spreads_over_the_upper_half() -> None:
    retry = Retry(base="1 minute", cap="1 hour")
    rng = random.Random(7)
    draws = [retry.delay(1, rng=rng) for _ in range(2000)]
    assert min(draws) < timedelta(seconds=33)
    assert max(draws) > timedelta(seconds=57)
    assert len(set(draws)) > 1900


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    retry = Retry()
    first = [retry.delay(4, rng=random.Random(42)) for _ in range(3)]
    assert len(set(first)) == 1


def test_jitter_works_without_an_rng() -> None:
    assert 2 * SECOND <= Retry().delay(3) <= 4 * SECOND


@pytest.mark.parametrize(("attempts", "exhausted"), [(1, False), (4, False), (5, True), (6, True)])
def test_exhausted_after_the_last_attempt(attempts: int, exhausted: bool) -> None:
    assert Retry(attempts=5).exhausted(attempts) is exhausted


def test_one_attempt_means_no_retry() -> None:
    assert Retry(attempts=1).exhausted(1)


def test_policy_is_frozen_hashable_and_comparable() -> None:
    retry = Retry(3, ["1 minute"])
    assert retry == Retry(3, [timedelta(minutes=1)])
    assert hash(retry) == hash(Retry(3, (60,)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        retry.attempts = 4  # type: ignore[misc]


def test_replace_keeps_the_policy_normalised() -> None:
    retry = dataclasses.replace(Retry(backoff=["1 minute"]), attempts=2)
    assert retry == Retry(2, ["1 minute"])


@pytest.mark.parametrize("attempts", [0, -1, True, 1.0, "5", None])
def test_bad_attempt_count_is_a_value_error_naming_it(attempts: object) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(f"invalid retry attempts {attempts!r}: ")):
        Retry(attempts=attempts)  # type: ignore[arg-type]


@pytest.mark.parametrize("attempt", [0, -3, True, 2.0])
def test_delay_refuses_a_bad_attempt_number_naming_it(attempt: object) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(f"invalid attempt {attempt!r}: ")):
        Retry().delay(attempt)  # type: ignore[arg-type]


@pytest.mark.parametrize("backoff", ["10 seconds", b"10", [], (), 10, {"a": 1}])
def test_backoff_must_be_a_non_empty_sequence(backoff: object) -> None:
    with pytest.raises(InvalidWhen, match="^" + re.escape(f"invalid retry backoff {backoff!r}: ")):
        Retry(backoff=backoff)  # type: ignore[arg-type]


@pytest.mark.parametrize("step", [0, -1, "forever", "-5 minutes", "1.5 months", None, float("nan")])
def test_bad_backoff_step_is_named(step: object) -> None:
    prefix = f"invalid retry backoff step {step!r}: "
    with pytest.raises(InvalidWhen, match="^" + re.escape(prefix)):
        Retry(backoff=["1 second", step])  # type: ignore[list-item]


@pytest.mark.parametrize("value", [0, -1, "soon", timedelta(0), True])
def test_bad_base_is_named(value: object) -> None:
    with pytest.raises(InvalidWhen, match="^" + re.escape(f"invalid retry base {value!r}: ")):
        Retry(base=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, -1, "soon", timedelta(0), True])
def test_bad_cap_is_named(value: object) -> None:
    with pytest.raises(InvalidWhen, match="^" + re.escape(f"invalid retry cap {value!r}: ")):
        Retry(cap=value)  # type: ignore[arg-type]
