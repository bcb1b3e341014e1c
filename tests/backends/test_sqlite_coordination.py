"""What only the SQLite backend promises about coordination: index-backed exclusive
claims, and window starts stamped by its own clock once the file's lock is held."""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from wrkr.backend import QueueOptions, Rate, Window
from wrkr_memory import ManualClock
from wrkr_sqlite import SQLiteBackend
from wrkr_sqlite._coordination import configure, for_queue
from wrkr_sqlite._sql import load_queries, migrate

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_an_exclusive_claim_seeks_indexes_and_scans_no_table(tmp_path: Path) -> None:
    """With many tids in flight, each candidate costs two index seeks, not a scan."""
    with contextlib.closing(sqlite3.connect(tmp_path / "plan.db",
                                            isolation_level=None)) as conn:
        migrate(conn)
        queries = load_queries()
        configure(conn, queries, "q", QueueOptions(exclusive=True))
        params = {"queue": "q", "now": 1, "limit": 5, "worker": "w", "lease": 1, "until": 2}
        plan = [row[3] for row in conn.execute(
            "EXPLAIN QUERY PLAN " + for_queue(queries["claim_exclusive"], "q"), params)]
    index = for_queue("{index}", "q")
    searches = [step for step in plan if step.startswith("SEARCH")]
    assert any(f"{index}_processing (tid=?)" in step for step in searches), plan
    assert any(f"{index}_pending (tid=? AND due<?)" in step for step in searches), plan
    assert not [step for step in plan if step.startswith("SCAN") and "subquery" not in step], plan


async def test_only_items_of_exclusive_queues_enter_tid_indexes(tmp_path: Path) -> None:
    """A plain queue's items maintain no index more than before coordination came."""
    backend = SQLiteBackend(f"sqlite:///{tmp_path / 'wrkr.db'}")
    await backend.open()
    try:
        await backend.configure("plain", QueueOptions(rate=Rate(5, timedelta(seconds=1))))
        assert _tid_indexes(tmp_path) == {}
        await backend.configure("shops", QueueOptions(exclusive=True))
        await backend.configure("shops", QueueOptions(exclusive=True))  # again: no more
        index = for_queue("{index}", "shops")
        assert _tid_indexes(tmp_path) == {
            f"{index}_pending": "state = 'pending'", f"{index}_processing": "state = 'processing'"}
    finally:
        await backend.close()


def _tid_indexes(tmp_path: Path) -> dict[str, str]:
    """Return the tid indexes of the file, each with the state its WHERE names."""
    with contextlib.closing(sqlite3.connect(tmp_path / "wrkr.db")) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                            "AND name LIKE 'wrkr_tid_%'").fetchall()
    found = {}
    for name, sql in rows:
        assert "WHERE queue = 'shops'" in sql, sql
        found[name] = "state = 'pending'" if "'pending'" in sql else "state = 'processing'"
    return found


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
