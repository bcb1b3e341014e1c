"""The application's own tables: the users' books, and the CSV exports made of them."""

from __future__ import annotations

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

_TABLES = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.books (
    id         serial PRIMARY KEY,
    owner_id   integer NOT NULL,
    title      text NOT NULL,
    author     text,
    isbn       text,
    status     text NOT NULL DEFAULT 'to_be_read'
);
-- A row tells its owner there is a file to download (BookLogr's design).
CREATE TABLE IF NOT EXISTS {schema}.csv_export (
    id         serial PRIMARY KEY,
    filename   text NOT NULL UNIQUE,
    owner_id   integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""

BOOK_COLUMNS = ("id", "title", "author", "isbn", "status")


def open_pool(database: str) -> AsyncConnectionPool:
    """Return a small pool on `database`, not yet opened (`await pool.open()`)."""
    return AsyncConnectionPool(database, min_size=1, max_size=4, open=False)


async def create_tables(pool: AsyncConnectionPool, schema: str) -> None:
    """Create the tables unless they exist; API and workers may start at the same time."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"booklogr:{schema}",))
        await conn.execute(sql.SQL(_TABLES).format(schema=sql.Identifier(schema)))


async def books_of(pool: AsyncConnectionPool, schema: str, owner: int) -> list[tuple[object, ...]]:
    """Return the owner's books, as rows of `BOOK_COLUMNS`, by id."""
    query = sql.SQL("SELECT {columns} FROM {schema}.books WHERE owner_id = %s ORDER BY id").format(
        columns=sql.SQL(", ").join(map(sql.Identifier, BOOK_COLUMNS)),
        schema=sql.Identifier(schema))
    async with pool.connection() as conn:
        cur = await conn.execute(query, (owner,))
        return await cur.fetchall()


async def record_export(pool: AsyncConnectionPool, schema: str, filename: str,
                        owner: int) -> None:
    """Insert the `csv_export` row of a written file; again for the same file does nothing."""
    query = sql.SQL("INSERT INTO {schema}.csv_export (filename, owner_id) VALUES (%s, %s) "
                    "ON CONFLICT (filename) DO NOTHING").format(schema=sql.Identifier(schema))
    async with pool.connection() as conn:
        await conn.execute(query, (filename, owner))


async def forget_exports(pool: AsyncConnectionPool, schema: str, owner: int) -> list[str]:
    """Delete the owner's `csv_export` rows; return their file names."""
    query = sql.SQL("DELETE FROM {schema}.csv_export WHERE owner_id = %s "
                    "RETURNING filename").format(schema=sql.Identifier(schema))
    async with pool.connection() as conn:
        cur = await conn.execute(query, (owner,))
        return [str(row[0]) for row in await cur.fetchall()]


async def updated_at(pool: AsyncConnectionPool, wrkr_schema: str, task_id: str) -> object:
    """Return when wrkr last changed the item (its ``item_status`` view), or None."""
    query = sql.SQL("SELECT updated FROM {schema}.item_status WHERE id = %s::uuid").format(
        schema=sql.Identifier(wrkr_schema))
    async with pool.connection() as conn:
        row = await (await conn.execute(query, (task_id,))).fetchone()
    return None if row is None else row[0]
