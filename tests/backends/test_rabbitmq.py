"""RabbitMQBackend passes the conformance suite against the local RabbitMQ server.

Each test gets its own namespace (a unique `prefix`), deleted afterwards with every
exchange and queue it declared.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from backend_conformance_tests import BackendFactory, BackendSuite
from tests._services import require_service
from wrkr.backend import Backend
from wrkr_rabbitmq import RabbitMQBackend

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"


@pytest_asyncio.fixture
async def rabbitmq_prefix() -> AsyncIterator[str]:
    """Provide a namespace unique to the test; delete all it declared afterwards."""
    require_service("RabbitMQ", 5672)
    prefix = f"wt{secrets.token_hex(4)}"
    yield prefix
    cleaner = RabbitMQBackend(RABBITMQ_URL, prefix=prefix)
    await cleaner.open()
    try:
        await cleaner.delete_namespace()
    finally:
        await cleaner.close()


@pytest.mark.rabbitmq
class TestRabbitMQBackend(BackendSuite):
    """Every conformance test of the capabilities RabbitMQBackend declares."""

    # Delays are held by the broker in whole seconds, then by the forwarder to the
    # millisecond; 0.5 s covers a busy two-core machine.
    delay_tolerance = 0.5

    @pytest.fixture
    def backend_factory(self, rabbitmq_prefix: str) -> BackendFactory:
        """Return a factory of backends, each with its own connection, on one namespace."""
        return lambda: RabbitMQBackend(RABBITMQ_URL, prefix=rabbitmq_prefix)

    async def simulate_crash(self, backend: Backend) -> None:
        """Drop the backend's connection: the broker requeues what it had unacked."""
        assert isinstance(backend, RabbitMQBackend)
        await backend.drop_connection()
