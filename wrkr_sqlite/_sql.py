"""The SQL files of the package: named queries, and versioned migrations applied at connect.

`sql/NNNN_*.sql` are migrations, applied in order, each once per database file,
recorded in ``wrkr_migrations``; a later release adds a file and existing databases
catch up at their next connect. `sql/queries.sql` holds the items' statements and
`sql/coordination.sql`, `sql/schedules.sql` and `sql/flows.sql` those of exclusive and
rated queues, of recurring schedules and of workflows, one per ``-- name:`` section.
Every table's name starts with ``wrkr_``, so the application's own tables may share the
file (as transactional publishing needs).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from importlib import resources

from wrkr_sqlite._db import immediate

QUERY_FILES = ("queries.sql", "coordination.sql", "schedules.sql", "flows.sql")
"""The files of named statements: the items', coordination's, recurring schedules',
workflows'."""
_SECTION = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{4})_\w+\.sql$")
STATE = ("CASE WHEN state = 'pending' AND due > :now THEN 'scheduled' "
         "WHEN state = 'pending' THEN 'ready' "
         "WHEN state = 'processing' AND lease_until <= :now THEN 'ready' ELSE state END")
_COLUMNS = (f"id, queue, name, tid, payload, due, created, {STATE} AS state, attempts, "
            "errors, worker, finished, seq, lease, parent, root, trace, flow")
_BOOKKEEPING = """CREATE TABLE IF NOT EXISTS wrkr_migrations (
    version INTEGER PRIMARY KEY,
    name    TEXT NOT NULL,
    applied TEXT NOT NULL DEFAULT (datetime('now'))
)"""


def _read(name: str) -> str:
    return resources.files("wrkr_sqlite").joinpath("sql", name).read_text("utf-8")


def render(text: str) -> str:
    """Fill ``{columns}`` and ``{state}`` into a SQL text."""
    return text.replace("{columns}", _COLUMNS).replace("{state}", STATE)


def load_queries() -> dict[str, str]:
    """Return every named statement of the query files, rendered."""
    queries: dict[str, str] = {}
    for file in QUERY_FILES:
        parts = _SECTION.split(_read(file))[1:]
        queries.update((name, render(body.strip()))
                       for name, body in zip(parts[::2], parts[1::2], strict=True))
    return queries


def migrations() -> list[tuple[int, str]]:
    """Return (version, file name) of every migration shipped, oldest first."""
    names = (entry.name for entry in resources.files("wrkr_sqlite").joinpath("sql").iterdir())
    found = [(int(match.group(1)), name) for name in names if (match := _MIGRATION.match(name))]
    return sorted(found)


def statements(script: str) -> Iterator[str]:
    """Yield the complete statements of `script` one by one (comments kept with them).

    Not `executescript`, which commits the transaction the migration runs in.
    """
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip() and not pending.strip().startswith("--"):
        yield pending.strip()


def use_wal(conn: sqlite3.Connection, busy_timeout: float) -> str:
    """Switch the file to WAL mode and return the journal mode it is in now.

    Changing the journal mode does not wait on SQLite's busy handler: while another
    connection is switching a new file, it fails at once with "database is locked"
    (5 connections opening one new file failed 19 times in 200). So it is retried here,
    for up to `busy_timeout` like every other statement.
    """
    deadline = time.monotonic() + busy_timeout
    pause = 0.001
    while True:
        try:
            mode: str = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            return mode
        except sqlite3.OperationalError as exc:
            if not str(exc).startswith("database is locked") or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Bring the file up to date in one transaction; return the versions applied now.

    BEGIN IMMEDIATE takes the file's write lock first, so twenty workers starting at
    once on a new file apply each migration exactly once.
    """
    with immediate(conn):
        conn.execute(_BOOKKEEPING)
        done = {row[0] for row in conn.execute("SELECT version FROM wrkr_migrations")}
        applied = []
        for version, name in migrations():
            if version not in done:
                for statement in statements(_read(name)):
                    conn.execute(statement)
                conn.execute("INSERT INTO wrkr_migrations (version, name) VALUES (?, ?)",
                             (version, name))
                applied.append(version)
        return applied
