"""The SQL files of the package: named queries, and versioned migrations applied at connect.

`sql/NNNN_*.sql` are migrations, applied in order, each once per schema, recorded in
``<schema>.migrations``; a later release adds a file and existing databases catch up at
their next connect. `sql/queries.sql` holds every statement the backend runs, one per
``-- name:`` section. Both use ``{schema}`` for the quoted schema name.
"""

from __future__ import annotations

import re
from importlib import resources

import psycopg

from wrkr_postgres._names import quote_schema

_SECTION = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{4})_\w+\.sql$")
_COLUMNS = (
    "i.id, i.queue, i.name, i.tid, i.payload, i.due, i.created, "
    "{schema}.item_state(i.state, i.due, i.lease_until, %(now)s) AS state, "
    "i.attempts, i.errors, i.worker, i.finished, i.seq, i.lease, i.flow, i.parent, i.root, "
    "i.trace"
)
_BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.migrations (
    version integer PRIMARY KEY,
    name    text NOT NULL,
    applied timestamptz NOT NULL DEFAULT now()
)"""


def _read(name: str) -> str:
    return resources.files("wrkr_postgres").joinpath("sql", name).read_text("utf-8")


def render(text: str, schema: str) -> str:
    """Fill ``{columns}`` and ``{schema}`` (quoted) into a SQL text."""
    return text.replace("{columns}", _COLUMNS).replace("{schema}", quote_schema(schema))


def load_queries(schema: str) -> dict[str, str]:
    """Return every named statement of `queries.sql`, `schedules.sql` and `flows.sql`."""
    text = "\n".join(_read(name) for name in ("queries.sql", "schedules.sql", "flows.sql"))
    parts = _SECTION.split(text)[1:]
    return {name: render(body.strip(), schema) for name, body in zip(parts[::2], parts[1::2],
                                                                    strict=True)}


def migrations() -> list[tuple[int, str]]:
    """Return (version, file name) of every migration shipped, oldest first."""
    names = (entry.name for entry in resources.files("wrkr_postgres").joinpath("sql").iterdir())
    found = [(int(match.group(1)), name) for name in names if (match := _MIGRATION.match(name))]
    return sorted(found)


async def migrate(conn: psycopg.AsyncConnection[object], schema: str) -> list[int]:
    """Bring `schema` up to date in one transaction; return the versions applied now.

    An advisory lock per schema serialises concurrent first connects (twenty workers
    starting at once), so each migration runs exactly once.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"wrkr:{schema}",))
        await conn.execute(render(_BOOKKEEPING, schema))
        cur = await conn.execute(render("SELECT version FROM {schema}.migrations", schema))
        done = {row[0] for row in await cur.fetchall()}  # type: ignore[index]
        applied = []
        for version, name in migrations():
            if version not in done:
                await conn.execute(render(_read(name), schema))
                await conn.execute(render("INSERT INTO {schema}.migrations (version, name) "
                                          "VALUES (%s, %s)", schema), (version, name))
                applied.append(version)
        return applied
