"""Poison input written straight into a backend's table or queue (scenario 5 of bench/faults.py).

Malformed payloads (not JSON, JSON that is not an object) and foreign messages are
parked as failed with an error saying why; an item whose stored error history is not
what wrkr writes (a string where a list belongs) no longer stops its whole queue: it is
claimed, handled, and its failure appended. Before, its claim raised on every attempt
and no item of the queue behind it was handled again (every backend).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench import faults
from tests.backends._mongo_servers import wire_server_url  # noqa: F401 - fixture
from tests.faults._urls import SIZES, fault_url, kind_of  # noqa: F401 - fixture

SMALL = {kind: replace(sizes, poison_good=10) for kind, sizes in SIZES.items()}


@pytest.mark.parametrize("url", ["postgresql", "amqp", "mongodb", "sqlite"], indirect=True)
def test_poison_is_parked_as_failed_and_the_queue_goes_on(url: str) -> None:
    row = faults.poison(url, SMALL[kind_of(url)])
    assert row.lost == 0, row.cells()
    assert row.figures["malformed parked as failed"] == "2 / 2", row.cells()
    assert any(word in str(row.figures["error"]) for word in ("malformed", "not a wrkr message"))
    assert row.figures["unreadable error history"] == "handled, then parked", row.cells()
