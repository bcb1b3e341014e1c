"""The in-memory backend passes the whole conformance suite."""

from __future__ import annotations

import pytest

from backend_conformance_tests import BackendFactory, BackendSuite
from wrkr_memory import MemoryBackend, MemoryStore


class TestMemoryBackend(BackendSuite):
    """Every conformance test, each on a fresh store shared by the test's backends."""

    @pytest.fixture
    def backend_factory(self) -> BackendFactory:
        """Return a factory of memory backends on one store made for this test."""
        store = MemoryStore()
        return lambda: MemoryBackend(store=store)
