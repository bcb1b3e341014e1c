"""Route SIGINT and SIGTERM to a callback on the running loop.

The one place signals are caught, for `Wrkr.run()` and for `wrkr worker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["STOP_SIGNALS", "signals_routed"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_routed(callback: Callable[[signal.Signals], None]) -> Iterator[None]:
    """While inside, call `callback(sig)` on the running loop for every SIGINT and SIGTERM.

    Where a signal cannot be caught (a thread other than the main one, Windows) nothing
    is installed for it. The previous handlers come back on exit.
    """
    loop = asyncio.get_running_loop()
    previous: dict[signal.Signals, Any] = {}
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            handler = signal.getsignal(sig)
            loop.add_signal_handler(sig, callback, sig)
            previous[sig] = handler
    try:
        yield
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
