"""The testing kit's errors, both under `wrkr.WrkrError`.

    WrkrError
    └── DrainError(RuntimeError)       `Harness.drain()` could not reach a quiet state
        ├── DrainLimitReached          more than `max_items` deliveries: a loop of publishes?
        └── DrainTimeout(TimeoutError) handlers still running after `timeout` real seconds
"""

from __future__ import annotations

from wrkr import WrkrError

__all__ = ["DrainError", "DrainLimitReached", "DrainTimeout"]


class DrainError(WrkrError, RuntimeError):
    """`drain()` stopped before every ready item was handled."""


class DrainLimitReached(DrainError):
    """`drain()` handled `max_items` deliveries and more kept coming."""


class DrainTimeout(DrainError, TimeoutError):
    """Handlers were still running when `drain()`'s real-time `timeout` ran out."""
