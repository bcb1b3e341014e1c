"""The retry policy: how many attempts an item gets, and how long to wait between them."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from wrkr._errors import InvalidConfig, InvalidWhen
from wrkr._when import parse_duration

__all__ = ["Retry"]

_RANDOM = random.Random()
# 2**1023 is the largest power of two a float holds; beyond it the cap has long won.
_MAX_DOUBLINGS = 1023


@dataclass(frozen=True, slots=True, init=False)
class Retry:
    """How often a failing item is tried, and the wait before each retry.

    With an explicit `backoff` schedule the waits are its steps, the last one repeating:
    `Retry(attempts=5, backoff=("10 seconds", "30 minutes", "2 hours"))`. Without one the
    wait doubles from `base` up to `cap`, with "equal jitter": half of it fixed and a random
    share of the other half. The random share spreads out the retries of items that failed
    together (a database that was down), so they do not all come back at once and knock it
    over again; the fixed half keeps a floor, so a retry never comes almost immediately.

    Durations may be timedeltas, seconds or intervals such as "30 minutes"; they are
    stored as timedeltas.

    Attributes:
        attempts: the total number of attempts, the first one included (>= 1).
        backoff: the explicit schedule, or None for exponential backoff.
        base: the first exponential wait.
        cap: the longest exponential wait.
        jitter: whether exponential waits are jittered.
    """

    attempts: int
    backoff: tuple[timedelta, ...] | None
    base: timedelta
    cap: timedelta
    jitter: bool

    # An explicit __init__ rather than __post_init__: the fields hold the normalised
    # types (timedelta), which the arguments (timedelta | float | str) are not.
    def __init__(
        self,
        attempts: int = 5,
        backoff: Sequence[timedelta | float | str] | None = None,
        *,
        base: timedelta | float | str = 1.0,
        cap: timedelta | float | str = "1 hour",
        jitter: bool = True,
    ) -> None:
        """Validate and normalise the policy.

        Raises:
            ValueError: `attempts` is not an int >= 1.
            InvalidWhen: a backoff step, `base` or `cap` is not a positive duration.
        """
        object.__setattr__(self, "attempts", _check_attempts(attempts))
        object.__setattr__(self, "backoff", _schedule(backoff))
        object.__setattr__(self, "base", parse_duration(base, what="retry base"))
        object.__setattr__(self, "cap", parse_duration(cap, what="retry cap"))
        object.__setattr__(self, "jitter", bool(jitter))

    def delay(self, attempt: int, *, rng: random.Random | None = None) -> timedelta:
        """Return the wait before the retry that follows failed attempt number `attempt`.

        Args:
            attempt: the attempt that failed, counting from 1.
            rng: the source of jitter; a module-wide one by default (tests pass a seeded one).

        Returns:
            The schedule's step for `attempt`; or `min(cap, base * 2**(attempt - 1))`,
            jittered to between half of it and all of it.

        Raises:
            ValueError: `attempt` is not an int >= 1.
        """
        attempt = _check_attempts(attempt, what="attempt")
        if self.backoff is not None:
            return self.backoff[min(attempt, len(self.backoff)) - 1]
        doublings = min(attempt - 1, _MAX_DOUBLINGS)
        full = min(self.cap.total_seconds(), self.base.total_seconds() * 2.0**doublings)
        if not self.jitter:
            return timedelta(seconds=full)
        half = full / 2
        return timedelta(seconds=half + (rng or _RANDOM).uniform(0, half))

    def exhausted(self, attempts: int) -> bool:
        """Tell whether an item that has had `attempts` attempts may not be tried again."""
        return attempts >= self.attempts


def _check_attempts(value: object, *, what: str = "retry attempts") -> int:
    """Return `value` if it is an int >= 1 (not a bool), else raise `InvalidConfig` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidConfig(f"invalid {what} {value!r}: expected an int >= 1")
    return value


def _schedule(backoff: object) -> tuple[timedelta, ...] | None:
    """Return an explicit backoff schedule as timedeltas, or None for exponential backoff."""
    if backoff is None:
        return None
    if isinstance(backoff, str | bytes) or not isinstance(backoff, Sequence) or not backoff:
        raise InvalidWhen(
            f"invalid retry backoff {backoff!r}: expected a non-empty sequence of durations, "
            "such as ('10 seconds', '30 minutes', '2 hours')"
        )
    return tuple(parse_duration(step, what="retry backoff step") for step in backoff)
