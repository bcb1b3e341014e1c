"""Test an application's own handlers: `harness(app)`, on memory and a hand-moved clock.

    from wrkr.testing import harness

    async with harness(myshop.app) as h:
        await myshop.app.publish({"name": "ourapp.user.added", "tid": "42"})
        await h.drain(until="7 days")      # a week of schedule, in milliseconds
        assert [e.name for e in h.failed] == []

`blocking_harness(events)` does the same for a started `BlockingWrkr` (Flask, Django);
`wrkr.testing.pytest_plugin` provides the `wrkr_harness` fixture.
"""

from wrkr.testing._blocking import BlockingHarness, Portal, blocking_harness
from wrkr.testing._errors import DrainError, DrainLimitReached, DrainTimeout
from wrkr.testing._harness import Harness, harness

__all__ = [
    "BlockingHarness",
    "DrainError",
    "DrainLimitReached",
    "DrainTimeout",
    "Harness",
    "Portal",
    "blocking_harness",
    "harness",
]
