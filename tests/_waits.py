"""A bounded wait for a condition only observable by asking (an item's stored state)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 5.0) -> None:
    """Ask `check` every 10 ms until it is true; fail naming `what` after `timeout` s."""
    try:
        async with asyncio.timeout(timeout):
            for _ in itertools.count():
                if await check():
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting until {what}") from None
