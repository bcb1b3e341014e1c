"""Per-test storage on the local servers, shared by backend, example and CLI tests."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from backend_conformance_tests import Names
from tests._services import require_service
from wrkr import InvalidConfig

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
MQTT_URL = "mqtt://127.0.0.1:1883"


def new_schema(request: pytest.FixtureRequest) -> Iterator[str]:
    """Yield a fresh schema name for one test; drop the schema afterwards."""
    import psycopg

    require_service("PostgreSQL", 5432)
    schema = f"wrkr_t{abs(hash(request.node.nodeid)) % 10**12}"
    drop = f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(drop)
    yield schema
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(drop)


@pytest.fixture
def names() -> Names:
    """Provide queue and event names unique to the test."""
    return Names()


@pytest.fixture
def pg_schema(request: pytest.FixtureRequest) -> Iterator[str]:
    """Provide a fresh schema on the local PostgreSQL, dropped after the test."""
    yield from new_schema(request)


@pytest_asyncio.fixture
async def rabbitmq_prefix() -> AsyncIterator[str]:
    """Provide a RabbitMQ namespace unique to the test; delete all it declared afterwards."""
    from wrkr_rabbitmq import RabbitMQBackend

    require_service("RabbitMQ", 5672)
    prefix = f"wt{secrets.token_hex(4)}"
    yield prefix
    cleaner = RabbitMQBackend(RABBITMQ_URL, prefix=prefix)
    try:
        await cleaner.open()
    except InvalidConfig:  # the test left its namespace on classic queues
        cleaner = RabbitMQBackend(RABBITMQ_URL, prefix=prefix, queue_type="classic")
        await cleaner.open()
    try:
        await cleaner.delete_namespace()
    finally:
        await cleaner.close()


@pytest_asyncio.fixture
async def mqtt_prefix() -> AsyncIterator[str]:
    """Provide an MQTT namespace unique to the test; delete its records and sessions after."""
    from wrkr_mqtt import MQTTBackend

    require_service("Mosquitto", 1883)
    prefix = f"wt{secrets.token_hex(4)}"
    yield prefix
    cleaner = MQTTBackend(MQTT_URL, prefix=prefix)
    await cleaner.open()
    try:
        await cleaner.delete_namespace()
    finally:
        await cleaner.close()
