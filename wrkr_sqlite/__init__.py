"""wrkr's SQLite backend: ``Wrkr.from_url("sqlite:///wrkr.db")``, no server needed.

See `wrkr_sqlite._backend` for the URL options, capabilities, storage and durability.
"""

import sqlite3

if sqlite3.sqlite_version_info < (3, 35):  # pragma: no cover - depends on the platform
    raise ImportError(f"wrkr_sqlite needs SQLite 3.35 or later (UPDATE ... RETURNING); this "
                      f"Python links SQLite {sqlite3.sqlite_version}")

from wrkr_sqlite._backend import SQLiteBackend
from wrkr_sqlite._store import SQLiteStore

__all__ = ["SQLiteBackend", "SQLiteStore"]
