"""Where BookLogr's API and workers find the database and the shared export folder."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Settings:
    """One deployment's configuration, shared by the API and every worker.

    Attributes:
        database: the libpq URL of the database (the API's own and wrkr's).
        schema: the schema of the application's tables (books, csv_export).
        wrkr_schema: the schema wrkr keeps its items in.
        export_folder: the shared folder workers write CSV files to; operators mount it,
            workers do not create it.
    """

    database: str = DEFAULT_DATABASE
    schema: str = "booklogr"
    wrkr_schema: str = "booklogr_wrkr"
    export_folder: Path = Path("exports")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """Read the ``BOOKLOGR_*`` variables (the edge of the program)."""
        return cls(env.get("BOOKLOGR_DATABASE", DEFAULT_DATABASE),
                   env.get("BOOKLOGR_SCHEMA", "booklogr"),
                   env.get("BOOKLOGR_WRKR_SCHEMA", "booklogr_wrkr"),
                   Path(env.get("BOOKLOGR_EXPORT_FOLDER", "exports")))

    @property
    def wrkr_url(self) -> str:
        """Return the URL of wrkr's PostgreSQL backend, in the same database."""
        joiner = "&" if "?" in self.database else "?"
        return f"{self.database}{joiner}schema={self.wrkr_schema}"
