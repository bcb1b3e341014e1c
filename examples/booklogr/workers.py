"""The workers' task handlers: the CSV export, and removing a user's exports."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from psycopg_pool import AsyncConnectionPool

from examples.booklogr import db
from examples.booklogr.tasks import TaskHandler
from wrkr import Event


class ExportFolderMissing(FileNotFoundError):
    """The shared export folder is not there (not mounted): the task fails, saying so."""


@dataclass
class BookTasks:
    """Runs BookLogr's task types against its database and shared export folder."""

    pool: AsyncConnectionPool
    schema: str
    folder: Path

    def handlers(self) -> dict[str, TaskHandler]:
        """Return every task type this module knows, with its handler."""
        return {"csv_export": self.csv_export, "remove_exports": self.remove_exports}

    async def csv_export(self, event: Event) -> None:
        """Write the creating user's books to ``books_<user>_<task>.csv``; record the file.

        The name is the task's, so a delivery again (a worker died after writing) writes
        the same file and finds its row already there.
        """
        owner = int(event.tid or 0)
        if not self.folder.is_dir():
            raise ExportFolderMissing(f"export folder {str(self.folder)!r} does not exist")
        rows = await db.books_of(self.pool, self.schema, owner)
        filename = f"books_{owner}_{event.id}.csv"
        await asyncio.to_thread(_write_atomically, self.folder / filename, _as_csv(rows))
        await db.record_export(self.pool, self.schema, filename, owner)

    async def remove_exports(self, event: Event) -> None:
        """Delete the creating user's exports: their rows, then their files."""
        for filename in await db.forget_exports(self.pool, self.schema, int(event.tid or 0)):
            (self.folder / filename).unlink(missing_ok=True)


def _as_csv(rows: list[tuple[object, ...]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(db.BOOK_COLUMNS)
    writer.writerows(rows)
    return out.getvalue()


def _write_atomically(path: Path, text: str) -> None:
    """Write `text` beside `path`, then rename: a reader never sees half a file."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
