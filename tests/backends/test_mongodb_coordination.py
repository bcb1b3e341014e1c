"""What only the MongoDB backend promises about coordination, without transactions:
tid locks taken by one atomic upsert, windows kept by compare-and-set, and a rated
claim's unused room given back. On the mock and on each server tier available."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from pymongo_async_mock import AsyncMongoMockClient

from tests.backends._mongo_servers import (  # noqa: F401 - fixtures
    REAL_MONGODB_URL,
    new_database_name,
    real_database_url,
    wire_database_url,
    wire_server_url,
)
from wrkr.backend import Claim, Message, QueueOptions, Window
from wrkr_mongodb import MongoDBBackend, MongoDBStore

TIERS = ["wire", *(["real"] if REAL_MONGODB_URL else [])]


@pytest.fixture(params=["mock", *TIERS])
def any_backend(request: pytest.FixtureRequest) -> MongoDBBackend:
    """Provide a backend on the mock and on each server tier available."""
    if request.param == "mock":
        return MongoDBBackend(client=AsyncMongoMockClient(tz_aware=True),
                              database=new_database_name())
    request.applymarker(pytest.mark.mongodb)
    fixture = "wire_database_url" if request.param == "wire" else "real_database_url"
    return MongoDBBackend(str(request.getfixturevalue(fixture)))


@pytest_asyncio.fixture
async def store(any_backend: MongoDBBackend) -> AsyncIterator[MongoDBStore]:
    """Provide a connected store with queue "q" subscribed to "x"."""
    await any_backend.open()
    try:
        await any_backend.subscribe("q", "x")
        assert isinstance(any_backend.store, MongoDBStore)
        yield any_backend.store
    finally:
        await any_backend.close()


def _claim(limit: int, *, exclusive: bool = False, window: Window | None = None) -> Claim:
    now = datetime.now(UTC)
    return Claim("q", "w", now, now + timedelta(seconds=60), limit, exclusive, window)


async def test_racing_exclusive_claims_take_one_item_of_a_tid_the_earliest(
        store: MongoDBStore) -> None:
    now = datetime.now(UTC)
    ids = await store.put([Message("x", "t", b"{}", now + timedelta(microseconds=n) -
                                   timedelta(seconds=1), now) for n in range(5)])
    await store.configure("q", QueueOptions(exclusive=True))
    batches = await asyncio.gather(*(store.claim(_claim(5, exclusive=True)) for _ in range(6)))
    claimed = [delivery.item.id for batch in batches for delivery in batch]
    assert claimed == [ids[0]]
    assert await store.claim(_claim(5, exclusive=True)) == []


async def test_racing_takers_of_one_window_never_exceed_it(store: MongoDBStore) -> None:
    window = Window("limiter:api", 10, timedelta(minutes=1))
    now = datetime.now(UTC)
    taken = await asyncio.gather(*(store.take_slots(window, 3, now) for _ in range(8)))
    assert sum(taken) == 10
    assert await store.take_slots(window, 1, now) == 0
    assert await store.next_slot(window, now) is not None


async def test_a_rated_claim_gives_back_the_room_it_did_not_use(store: MongoDBStore) -> None:
    window = Window("queue:q", 5, timedelta(minutes=1))
    now = datetime.now(UTC) - timedelta(seconds=1)
    await store.put([Message("x", None, b"{}", now, now) for _ in range(2)])
    assert len(await store.claim(_claim(10, window=window))) == 2
    assert await store.take_slots(window, 5, datetime.now(UTC)) == 3
