"""SQLiteBackend passes the whole conformance suite, each test on a file of its own."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from backend_conformance_tests import BackendFactory, BackendSuite
from wrkr.backend import Backend
from wrkr_sqlite import SQLiteBackend


class TestSQLiteBackend(BackendSuite):
    """Every conformance test against a fresh SQLite file in the test's tmp_path."""

    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> BackendFactory:
        """Return a factory of backends sharing this test's file."""
        url = f"sqlite:///{tmp_path / 'wrkr.db'}"
        return lambda: SQLiteBackend(url)

    async def simulate_crash(self, backend: Backend) -> None:
        """Expire every lease in the file, as a dead worker's would."""
        assert isinstance(backend, SQLiteBackend)
        with (contextlib.closing(sqlite3.connect(backend.settings.path, timeout=5)) as conn,
              conn):
            conn.execute("UPDATE wrkr_items SET lease_until = 0 WHERE state = 'processing'")
