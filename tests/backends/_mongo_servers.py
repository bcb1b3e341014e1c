"""MongoDB servers for the tests: the in-process mock, the secantusdb wire server, a real one.

Tier 1 needs nothing. Tier 2 starts one `secantusd-py` process per test session on a
port the OS picks (read back from its log), in-memory storage, test commands on (for
`configureFailPoint`); each test gets a database of its own, dropped afterwards.
Tier 3 runs when `WRKR_TEST_MONGODB_URL` names a real MongoDB.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import pytest_asyncio
from mongomock.collection import BulkOperationBuilder
from pymongo import AsyncMongoClient, MongoClient
from pymongo_async_mock import AsyncMongoMockClient

from tests._services import missing


def _wrap_mock_bulk_updates_once() -> None:
    """Stop pymongo-async-mock (0.1.3) from wrapping mongomock's bulk update endlessly.

    It wraps `BulkOperationBuilder.add_update` again for every collection object it
    opens (its test for its own wrapper reads a `__name__` that `functools.wraps` copied
    from the original), so the call nests one level deeper per collection opened, and
    the in-process mock tier failed with RecursionError after some 150 tests once the
    store opened three more collections per connect. Opening one collection makes the
    first wrapper; naming it as the library expects makes it the last.
    """
    AsyncMongoMockClient()["wrkr"]["wrkr"]
    BulkOperationBuilder.add_update.__name__ = "add_update_compat"


_wrap_mock_bulk_updates_once()

REAL_MONGODB_URL = os.environ.get("WRKR_TEST_MONGODB_URL", "")
"""A real MongoDB for tier 3 (``mongodb://host:27017``); tier 3 is not collected without it."""

_LISTENING = re.compile(r"listening on [^\s:]+:(\d+)")
STARTUP_WAIT = 30.0


def _secantusd() -> str | None:
    beside_python = Path(sys.executable).with_name("secantusd-py")
    return str(beside_python) if beside_python.exists() else shutil.which("secantusd-py")


def _wait_for_port(process: subprocess.Popen[bytes], log: Path) -> int:
    deadline = time.monotonic() + STARTUP_WAIT
    while time.monotonic() < deadline:
        found = _LISTENING.search(log.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)  # a subprocess log has nothing to await; bounded by STARTUP_WAIT
    raise RuntimeError(f"secantusd-py did not start: {log.read_text(errors='replace')[-2000:]}")


@contextlib.contextmanager
def secantus_process(log: Path, *, port: int = 0, storage: str = ":memory:") -> Iterator[str]:
    """Run one `secantusd-py` (on a free port by default); yield its ``mongodb://`` URL."""
    executable = _secantusd()
    if executable is None:
        missing('secantusd-py is not installed (pip install "wrkr[test]")')
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [executable, "--port", str(port), "--storage-path", storage,
             "--enable-test-commands", "--log-level", "INFO"],
            stdout=sink, stderr=subprocess.STDOUT)
    try:
        yield f"mongodb://127.0.0.1:{_wait_for_port(process, log)}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def wire_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Provide the URL (no database) of the session's secantusdb wire server."""
    log = tmp_path_factory.mktemp("secantus") / "secantusd.log"
    with secantus_process(log) as url:
        yield url


def with_database(url: str, database: str) -> str:
    """Return `url` pointing at `database` (its query string kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, ""))


def new_database_name() -> str:
    """Return a database name no other test uses."""
    return f"wrkr_test_{secrets.token_hex(6)}"


@contextlib.asynccontextmanager
async def fresh_database(server_url: str) -> AsyncIterator[str]:
    """Yield the URL of a new database on `server_url`, dropped afterwards."""
    name = new_database_name()
    try:
        yield with_database(server_url, name)
    finally:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            server_url, serverSelectionTimeoutMS=5000)
        try:
            with contextlib.suppress(Exception):
                await client.drop_database(name)
        finally:
            await client.close()


def fresh_database_blocking(server_url: str) -> Iterator[str]:
    """Yield the URL of a new database on `server_url`, dropped afterwards, for sync
    fixtures (the web tests' servers run their loop in a thread of their own)."""
    name = new_database_name()
    try:
        yield with_database(server_url, name)
    finally:
        client: MongoClient[dict[str, Any]] = MongoClient(server_url,
                                                          serverSelectionTimeoutMS=5000)
        with client, contextlib.suppress(Exception):
            client.drop_database(name)


@pytest_asyncio.fixture
async def wire_database_url(wire_server_url: str) -> AsyncIterator[str]:
    """Provide a fresh database on the wire server, dropped after the test."""
    async with fresh_database(wire_server_url) as url:
        yield url


@pytest_asyncio.fixture
async def real_database_url() -> AsyncIterator[str]:
    """Provide a fresh database on the real MongoDB of `WRKR_TEST_MONGODB_URL`."""
    async with fresh_database(REAL_MONGODB_URL) as url:
        yield url
