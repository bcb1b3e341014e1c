"""What only the SQLite backend promises about coordination: index-backed exclusive
claims, and window starts stamped by its own clock once the file's lock is held."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from wrkr.backend import Window
from wrkr_memory import ManualClock
from wrkr_sqlite import SQLiteBackend
from wrkr_sqlite._sql import load_queries, migrate

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_an_exclusive_claim_seeks_indexes_and_scans_no_table(tmp_path: Path) -> None:
    """With many tids in flight, each candidate costs two index seeks, not a scan."""
    with contextlib.closing(sqlite3.connect(tmp_path / "plan.db",
                                            isolation_level=None)) as conn:
        migrate(conn)
        params = {"queue": "q", "now": 1, "limit": 5, "worker": "w", "lease": 1, "until": 2}
        plan = [row[3] for row in conn.execute(
            "EXPLAIN QUERY PLAN " + load_queries()["claim_exclusive"], params)]
    searches = [step for step in plan if step.startswith("SEARCH")]
    assert any("wrkr_items_tid_processing" in step for step in searches), plan
    assert any("wrkr_items_tid_pending" in step for step in searches), plan
    assert not [step for step in plan if step.startswith("SCAN") and "subquery" not in step], plan


async def test_a_start_is_stamped_by_the_stores_clock_not_by_a_stale_now(
        tmp_path: Path) -> None:
    """A caller's `now` read before it waited for the lock must not date its start back."""
    clock = ManualClock(START)
    backend = SQLiteBackend(f"sqlite:///{tmp_path / 'wrkr.db'}", clock=clock)
    window = Window("limiter:api", 1, timedelta(seconds=1))
    await backend.open()
    try:
        stale = START - timedelta(seconds=10)
        assert await backend.store.take_slots(window, 1, stale) == 1
        assert await backend.store.next_slot(window, START) == START + timedelta(seconds=1)
        assert await backend.store.take_slots(window, 1, START) == 0
    finally:
        await backend.close()
