"""Ending background tasks at close, bounded: a stop must never hang on one."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["CLOSE_WAIT", "ended"]

CLOSE_WAIT = 2.0
"""Seconds a closing backend waits for one of its tasks (a claim, a listener) to end."""


async def ended(task: asyncio.Task[Any], timeout: float) -> bool:
    """Wait up to `timeout` seconds for `task` to end; cancel it if it has not.

    Tell whether it ended in time. Its outcome is consumed either way (a closing
    backend does not care how a cancelled task ended, and asyncio must not log it).
    """
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        return False
    if not task.cancelled():
        task.exception()
    return True
