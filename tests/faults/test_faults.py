"""Short versions of the fault harness's scenarios (`bench/faults.py`), each asserting 0 lost.

Real worker and publisher processes on real servers. The server restarts happen on
private servers each test starts on free ports (a PostgreSQL cluster, a second
RabbitMQ node, a wire server with its data on disk): the shared servers are never
restarted, and connection cuts touch only the harness's own sessions. Marked `alone`
all the same: they start processes by the dozen and want the machine to themselves.
"""

from __future__ import annotations

import pytest

from bench import faults
from bench._faults_servers import ServerMissing
from tests.backends._mongo_servers import wire_server_url  # noqa: F401 - fixture
from tests.faults._urls import SIZES, fault_url, kind_of, missing  # noqa: F401 - fixture

pytestmark = [pytest.mark.alone, pytest.mark.timeout(120)]


@pytest.mark.parametrize("url", ["sqlite", "mongodb"], indirect=True)
def test_killed_workers_lose_nothing(url: str) -> None:
    row = faults.killed_workers(url, SIZES[kind_of(url)])
    assert row.lost == 0, row.cells()
    assert row.figures["kills"], row.cells()


@pytest.mark.parametrize("kind", ["postgresql", "amqp", "mongodb"])
def test_a_server_restart_mid_stream_loses_no_confirmed_publish(kind: str) -> None:
    try:
        row = faults.restart_scenario(kind, SIZES[kind], any_port=True)
    except ServerMissing as exc:
        missing(str(exc))
    assert row.lost == 0, row.cells()
    assert row.figures["consumers resume after"] != "never", row.cells()
    assert row.figures["publisher after"] != "never", row.cells()
    assert row.figures["other errors"] == 0, row.cells()


@pytest.mark.parametrize("url", ["postgresql", "amqp", "mongodb"], indirect=True)
def test_own_connections_cut_by_the_server_lose_no_confirmed_publish(url: str) -> None:
    row = faults.cut_scenario(kind_of(url), url, SIZES[kind_of(url)])
    assert row.lost == 0, row.cells()
    assert int(str(row.figures["sessions cut"])) > 0, row.cells()
    assert row.figures["other errors"] == 0, row.cells()


@pytest.mark.parametrize("url", ["postgresql", "amqp", "mongodb", "sqlite"], indirect=True)
def test_a_publisher_killed_mid_batch_leaves_no_batch_partly_stored(url: str) -> None:
    row = faults.killed_publisher(url, SIZES[kind_of(url)])
    assert row.lost == 0, row.cells()
    assert row.figures["partial batches"] == 0, row.cells()


@pytest.mark.parametrize("url", ["postgresql", "amqp", "mongodb", "sqlite"], indirect=True)
def test_overload_drops_nothing(url: str) -> None:
    row = faults.overload(url, SIZES[kind_of(url)])
    assert row.lost == 0, row.cells()
