"""RabbitMQBackend passes the conformance suite against the local RabbitMQ server, on quorum
queues (the default) and on classic ones.

Each test gets its own namespace (a unique `prefix`), deleted afterwards with every
exchange and queue it declared.
"""

from __future__ import annotations

import pytest

from backend_conformance_tests import BackendFactory, BackendSuite
from tests.conftest import RABBITMQ_URL
from wrkr_rabbitmq import RabbitMQBackend


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



@pytest.mark.rabbitmq
class TestRabbitMQClassicBackend(TestRabbitMQBackend):
    """The same suite on classic queues (``?queue_type=classic``), which stay an option."""

    @pytest.fixture
    def backend_factory(self, rabbitmq_prefix: str) -> BackendFactory:
        """Return a factory of classic-queue backends on one namespace."""
        return lambda: RabbitMQBackend(RABBITMQ_URL, prefix=rabbitmq_prefix,
                                       queue_type="classic")
