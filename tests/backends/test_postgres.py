"""PostgresBackend passes the whole conformance suite, each test in a schema of its own."""

from __future__ import annotations

import pytest

from backend_conformance_tests import BackendFactory, BackendSuite
from tests.conftest import PG_URL
from wrkr.backend import Backend
from wrkr_postgres import PostgresBackend


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
        async with backend.store.pool.connection() as conn:
            await conn.execute(f'UPDATE "{backend.settings.schema}".items '
                               "SET lease_until = now() - interval '1 s' "
                               "WHERE state = 'processing'")
