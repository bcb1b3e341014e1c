"""The fault tests' backends: a fresh namespace on each, and sizes that keep each test short."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bench import faults
from bench._faults_servers import SESSION_NAME
from tests._services import require_service
from tests.backends._mongo_servers import new_database_name, with_database
from tests.conftest import PG_URL, RABBITMQ_URL, new_schema

SHORT = faults.Sizes.short()
SIZES = {"postgresql": SHORT, "amqp": SHORT, "sqlite": SHORT,
         # The wire server is pure Python and claims in O(items queued): less for it.
         "mongodb": replace(SHORT, kill_events=150, stream_events=300, publisher_kills=2,
                            publisher_cap=400, poison_good=10, overload_events=400,
                            lease="10 seconds")}


def missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(name="url")
def fault_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh namespace of the backend the test is parametrized with."""
    kind = request.param
    if kind == "postgresql":
        for schema in new_schema(request):
            yield f"{PG_URL}?schema={schema}&application_name={SESSION_NAME}"
    elif kind == "amqp":
        require_service("RabbitMQ", 5672)
        prefix = f"wf{secrets.token_hex(4)}"
        yield (f"{RABBITMQ_URL}?prefix={prefix}"
               f"&client_properties={{'connection_name':'{SESSION_NAME}'}}")
        asyncio.run(_delete_namespace(prefix))
    elif kind == "mongodb":
        yield with_database(request.getfixturevalue("wire_server_url"), new_database_name())
    else:
        yield f"sqlite:///{tmp_path / 'faults.db'}"


async def _delete_namespace(prefix: str) -> None:
    from wrkr_rabbitmq import RabbitMQBackend

    cleaner = RabbitMQBackend(RABBITMQ_URL, prefix=prefix)
    await cleaner.open()
    try:
        await cleaner.delete_namespace()
    finally:
        await cleaner.close()


def kind_of(url: str) -> str:
    scheme = url.split(":", 1)[0]
    return "postgresql" if scheme.startswith("postgres") else scheme


