"""PostgresBackend passes the whole conformance suite, each test in a schema of its own."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from backend_conformance_tests import BackendFactory, BackendSuite
from tests._services import require_service
from wrkr.backend import Backend
from wrkr_postgres import PostgresBackend

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def new_schema(request: pytest.FixtureRequest) -> Iterator[str]:
    """Yield a fresh schema name for one test; drop the schema afterwards."""
    require_service("PostgreSQL", 5432)
    schema = f"wrkr_t{abs(hash(request.node.nodeid)) % 10**12}"
    drop = f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(drop)
    yield schema
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(drop)


@pytest.fixture
def pg_schema(request: pytest.FixtureRequest) -> Iterator[str]:
    """Provide a fresh schema on the local server, dropped after the test."""
    yield from new_schema(request)


@pytest.mark.postgres
class TestPostgresBackend(BackendSuite):
    """Every conformance test against the local PostgreSQL."""

    @pytest.fixture
    def backend_factory(self, pg_schema: str) -> BackendFactory:
        """Return a factory of backends on this test's schema."""
        return lambda: PostgresBackend(PG_URL, schema=pg_schema, poll_interval=1.0)

    async def simulate_crash(self, backend: Backend) -> None:
        """Expire every lease of the test's schema, as a dead worker's would."""
        assert isinstance(backend, PostgresBackend)
        async with backend.pool.connection() as conn:
            await conn.execute(f'UPDATE "{backend.settings.schema}".items '
                               "SET lease_until = now() - interval '1 s' "
                               "WHERE state = 'processing'")
