"""The in-memory wrkr backend: the embedded default, for tests, examples and one process."""

from wrkr_memory._backend import MemoryBackend
from wrkr_memory._clock import ManualClock
from wrkr_memory._store import MemoryReceipt, MemoryStore

__all__ = ["ManualClock", "MemoryBackend", "MemoryReceipt", "MemoryStore"]
