"""Backends the web tests run on: memory (started in the server's process), SQLite,
PostgreSQL and MongoDB (the session's secantusdb wire server, a database per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.backends._mongo_servers import (
    fresh_database_blocking,
    wire_server_url,  # noqa: F401 - a session fixture
)
from tests.conftest import PG_URL, new_schema
from tests.web._live import Live, demo_app, live_server

BACKENDS = [pytest.param("memory", id="memory"), pytest.param("sqlite", id="sqlite"),
            pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
            pytest.param("mongodb", id="mongodb", marks=pytest.mark.mongodb)]


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh backend's URL: memory://, a SQLite file, a schema of the local PostgreSQL,
    a database of the wire server."""
    if request.param == "memory":
        yield "memory://"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'wrkr.db'}"
    elif request.param == "mongodb":
        yield from fresh_database_blocking(request.getfixturevalue("wire_server_url"))
    else:
        for schema in new_schema(request):
            yield f"{PG_URL}?schema={schema}"


@pytest.fixture
def live(backend_url: str) -> Iterator[Live]:
    """The demo app, started and consuming, served on 127.0.0.1 at a random port."""
    with live_server(demo_app(backend_url, archive="keep")) as server:
        yield server


@pytest.fixture
def client(live: Live) -> Iterator[httpx.Client]:
    """An HTTP client of the live server."""
    with httpx.Client(base_url=live.url, timeout=10.0) as http:
        yield http
