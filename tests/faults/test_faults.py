"""Short versions of the fault harness's scenarios (`bench/faults.py`), each asserting 0 lost.

Real worker and publisher processes on real servers. The server restarts happen on
private servers each test starts on free ports (a PostgreSQL cluster, a second
RabbitMQ node, a wire server with its data on disk): the shared servers are never
restarted, and connection cuts touch only the harness's own sessions. Marked `alone`
all the same: they start processes by the dozen and want the machine to themselves.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bench import faults
from bench._faults_servers import SESSION_NAME, ServerMissing
from tests._services import require_service
from tests.backends._mongo_servers import (  # noqa: F401 - fixture
    new_database_name,
    wire_server_url,
    with_database,
)
from tests.conftest import PG_URL, RABBITMQ_URL, new_schema

pytestmark = [pytest.mark.alone, pytest.mark.timeout(120)]

SHORT = faults.Sizes.short()
SIZES = {"postgresql": SHORT, "amqp": SHORT, "sqlite": SHORT,
         # The wire server is pure Python and claims in O(items queued): less for it.
         "mongodb": replace(SHORT, kill_events=150, stream_events=300, publisher_kills=2,
                            publisher_cap=400, poison_good=10, overload_events=400,
                            lease="10 seconds")}


@pytest.fixture(autouse=True)
def _remove_logs() -> Iterator[None]:
    """Remove the worker and publisher logs of the test's processes afterwards."""
    yield
    while faults.FOLDERS:
        shutil.rmtree(faults.FOLDERS.pop(), ignore_errors=True)


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
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


def _kind(url: str) -> str:
    scheme = url.split(":", 1)[0]
    return "postgresql" if scheme.startswith("postgres") else scheme


@pytest.mark.parametrize("url", ["sqlite", "mongodb"], indirect=True)
def test_killed_workers_lose_nothing(url: str) -> None:
    row = faults.killed_workers(url, SIZES[_kind(url)])
    assert row.lost == 0, row.cells()
    assert row.figures["kills"], row.cells()


@pytest.mark.parametrize("kind", ["postgresql", "amqp", "mongodb"])
def test_a_server_restart_mid_stream_loses_no_confirmed_publish(kind: str) -> None:
    try:
        row = faults.restart_scenario(kind, SIZES[kind], any_port=True)
    except ServerMissing as exc:
        _missing(str(exc))
    assert row.lost == 0, row.cells()
    assert row.figures["consumers resume after"] != "never", row.cells()
    assert row.figures["publisher after"] != "never", row.cells()
    assert row.figures["other errors"] == 0, row.cells()


@pytest.mark.parametrize("url", ["postgresql", "amqp"], indirect=True)
def test_own_connections_cut_by_the_server_lose_no_confirmed_publish(url: str) -> None:
    row = faults.cut_scenario(_kind(url), url, SIZES[_kind(url)])
    assert row.lost == 0, row.cells()
    assert int(str(row.figures["sessions cut"])) > 0, row.cells()
    assert row.figures["other errors"] == 0, row.cells()


@pytest.mark.parametrize("url", ["postgresql", "amqp", "mongodb", "sqlite"], indirect=True)
def test_a_publisher_killed_mid_batch_leaves_no_batch_partly_stored(url: str) -> None:
    row = faults.killed_publisher(url, SIZES[_kind(url)])
    assert row.lost == 0, row.cells()
    assert row.figures["partial batches"] == 0, row.cells()


@pytest.mark.parametrize("url", ["postgresql", "amqp", "mongodb", "sqlite"], indirect=True)
def test_poison_input_is_parked_as_failed_and_the_consumer_goes_on(url: str) -> None:
    row = faults.poison(url, SIZES[_kind(url)])
    assert row.lost == 0, row.cells()
    assert row.figures["malformed parked as failed"] == "2 / 2", row.cells()
    assert any(word in str(row.figures["error"]) for word in ("malformed", "not a wrkr message"))


@pytest.mark.parametrize("url", ["postgresql", "amqp", "mongodb", "sqlite"], indirect=True)
def test_overload_drops_nothing(url: str) -> None:
    row = faults.overload(url, SIZES[_kind(url)])
    assert row.lost == 0, row.cells()
