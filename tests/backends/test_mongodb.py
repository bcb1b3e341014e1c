"""MongoDBBackend passes the whole conformance suite, on every tier.

1. `TestMongoDBOnMock`: in process, `pymongo-async-mock` (mongomock behind the async API).
   It has no change streams, so the backend polls there.
2. `TestMongoDBOnWireServer` (marker `mongodb`): the real driver over TCP against the
   session's secantusdb server, a one-node replica set with change streams.
3. `TestMongoDBOnRealServer` (marker `mongodb`): only collected when
   `WRKR_TEST_MONGODB_URL` names a real MongoDB.
"""

from __future__ import annotations

import pytest
from pymongo_async_mock import AsyncMongoMockClient

from backend_conformance_tests import BackendFactory, BackendSuite
from tests.backends._mongo_servers import (  # noqa: F401 - fixtures
    REAL_MONGODB_URL,
    new_database_name,
    real_database_url,
    wire_database_url,
    wire_server_url,
)
from wrkr_mongodb import MongoDBBackend


class TestMongoDBOnMock(BackendSuite):
    """Every conformance test against the in-process mock, one mock server per test."""

    @pytest.fixture
    def backend_factory(self) -> BackendFactory:
        """Return a factory of backends sharing one fresh mock client and database."""
        client = AsyncMongoMockClient(tz_aware=True)
        database = new_database_name()
        return lambda: MongoDBBackend(client=client, database=database)


@pytest.mark.mongodb
class TestMongoDBOnWireServer(BackendSuite):
    """Every conformance test over TCP against secantusdb, a fresh database per test."""

    @pytest.fixture
    def backend_factory(self, wire_database_url: str) -> BackendFactory:  # noqa: F811
        """Return a factory of backends, each with its own client, on this test's database."""
        return lambda: MongoDBBackend(wire_database_url)


if REAL_MONGODB_URL:

    @pytest.mark.mongodb
    class TestMongoDBOnRealServer(BackendSuite):
        """Every conformance test against the real MongoDB of `WRKR_TEST_MONGODB_URL`."""

        @pytest.fixture
        def backend_factory(self, real_database_url: str) -> BackendFactory:
            """Return a factory of backends on a fresh database of the real server."""
            return lambda: MongoDBBackend(real_database_url)
