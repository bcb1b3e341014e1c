"""wrkr's PostgreSQL backend: ``Wrkr.from_url("postgresql://user@host:5432/db")``.

See `wrkr_postgres._backend` for the URL options, capabilities and storage layout.
"""

try:
    import psycopg  # noqa: F401
    import psycopg_pool  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "wrkr_postgres needs psycopg 3 and psycopg-pool: pip install \"wrkr[postgres]\""
    ) from exc

from wrkr_postgres._backend import PostgresBackend

__all__ = ["PostgresBackend"]
