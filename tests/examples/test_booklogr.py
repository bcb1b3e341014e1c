"""BookLogr's tasks over HTTP on 127.0.0.1: the API in this process (uvicorn on a socket
bound here), a worker in a process of its own, both on the local PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import psycopg
import pytest
import pytest_asyncio
import uvicorn

from examples.booklogr.api import create_api
from examples.booklogr.settings import Settings
from tests.conftest import PG_URL

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]
ROOT = Path(__file__).resolve().parents[2]
WAIT = 20.0
BOOKS = [("Dune", "Frank Herbert"), ("Piranesi", "Susanna Clarke"),
         ("Kindred", "Octavia E. Butler")]
USER = 7


@dataclass
class Deployment:
    """A running API, the worker processes started so far, and what they share."""

    settings: Settings
    client: httpx2.AsyncClient
    workers: list[asyncio.subprocess.Process]

    async def start_worker(self, nickname: str, types: str) -> str:
        """Start a worker process; return its worker id once it listens."""
        env = {**os.environ, "BOOKLOGR_DATABASE": self.settings.database,
               "BOOKLOGR_SCHEMA": self.settings.schema,
               "BOOKLOGR_WRKR_SCHEMA": self.settings.wrkr_schema,
               "BOOKLOGR_EXPORT_FOLDER": str(self.settings.export_folder)}
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "examples.booklogr", "worker", "--nickname", nickname,
            "--types", types, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        self.workers.append(worker)
        assert worker.stdout is not None
        line = (await asyncio.wait_for(worker.stdout.readline(), WAIT)).decode()
        if not line.startswith("ready "):
            _, errors = await asyncio.wait_for(worker.communicate(), WAIT)
            raise AssertionError(f"the worker did not start: {errors.decode()}")
        return line.split()[1]

    async def create(self, task_type: str, user: int = USER, **data: Any) -> dict[str, Any]:
        """Create a task over HTTP; return it as the API answered (201)."""
        response = await self.client.post("/v1/tasks", json={"type": task_type, "data": data},
                                          headers={"X-User-Id": str(user)})
        assert response.status_code == 201, response.text
        task: dict[str, Any] = response.json()
        return task

    async def get(self, task_id: str, user: int = USER) -> httpx2.Response:
        """GET a task."""
        return await self.client.get(f"/v1/tasks/{task_id}", headers={"X-User-Id": str(user)})

    async def until(self, task_id: str, *statuses: str) -> dict[str, Any]:
        """Poll the task over HTTP, as a client does, until it is in one of `statuses`."""
        async with asyncio.timeout(WAIT):
            while True:
                task: dict[str, Any] = (await self.get(task_id)).json()
                if task["status"] in statuses:
                    return task
                await asyncio.sleep(0.05)


def _listening_socket() -> socket.socket:
    """A socket bound to a free port on 127.0.0.1: requests queue there until uvicorn serves."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def _drop_schema(schema: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest_asyncio.fixture
async def booklogr(pg_schema: str, tmp_path: Path) -> AsyncIterator[Deployment]:
    """Serve the API on 127.0.0.1 with the app's tables in their own schema; the export
    folder is not created (each test decides); stop everything afterwards."""
    settings = Settings(PG_URL, f"{pg_schema}_app", pg_schema, tmp_path / "exports")
    _drop_schema(settings.schema)
    sock = _listening_socket()
    server = uvicorn.Server(uvicorn.Config(create_api(settings), log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deployment = Deployment(settings, httpx2.AsyncClient(base_url=base, timeout=WAIT), [])
    try:
        yield deployment
    finally:
        await deployment.client.aclose()
        for worker in deployment.workers:
            worker.terminate()
            await asyncio.wait_for(worker.communicate(), WAIT)
        server.should_exit = True
        await serving
        sock.close()
        _drop_schema(settings.schema)


async def _add_books(settings: Settings, user: int) -> None:
    async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as conn:
        for title, author in BOOKS:
            await conn.execute(f'INSERT INTO "{settings.schema}".books (owner_id, title, author) '
                               "VALUES (%s, %s, %s)", (user, title, author))


async def _exports(settings: Settings) -> list[tuple[str, int]]:
    async with await psycopg.AsyncConnection.connect(PG_URL) as conn:
        cur = await conn.execute(
            f'SELECT filename, owner_id FROM "{settings.schema}".csv_export ORDER BY id')
        return [(str(name), int(owner)) for name, owner in await cur.fetchall()]


async def _ready(booklogr: Deployment, types: str = "csv_export") -> str:
    """Start a worker (the API created the tables by now) and add the user's books."""
    worker_id = await booklogr.start_worker("exporter", types)
    await _add_books(booklogr.settings, USER)
    return worker_id


def _is_worker_id(value: object, nickname: str) -> bool:
    return isinstance(value, str) and re.fullmatch(
        rf"{nickname}:[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}",
        value) is not None


async def test_a_csv_export_goes_from_fresh_to_success_leaving_a_file_and_a_row(
        booklogr: Deployment) -> None:
    booklogr.settings.export_folder.mkdir()
    worker_id = await _ready(booklogr)
    created = await booklogr.create("csv_export")
    assert (created["type"], created["data"], created["created_by"]) == ("csv_export", {}, USER)
    # The worker may have taken it already (woken by NOTIFY) when the API reads it back.
    assert created["status"] in ("fresh", "started", "success")
    done = await booklogr.until(created["id"], "success", "failure")
    assert done["status"] == "success", done
    assert done["worker_id"] == worker_id
    assert _is_worker_id(done["worker_id"], "exporter")
    assert done["created_on"] == created["created_on"] <= done["updated_on"]
    filename = f"books_{USER}_{created['id']}.csv"
    assert await _exports(booklogr.settings) == [(filename, USER)]
    rows = list(csv.reader(io.StringIO(
        (booklogr.settings.export_folder / filename).read_text(encoding="utf-8"))))
    assert rows[0] == ["id", "title", "author", "isbn", "status"]
    assert [(row[1], row[2]) for row in rows[1:]] == BOOKS


async def test_a_failing_export_becomes_failure_and_retry_makes_it_succeed(
        booklogr: Deployment) -> None:
    await _ready(booklogr)  # the export folder is not mounted yet
    task = await booklogr.create("csv_export")
    failed = await booklogr.until(task["id"], "success", "failure")
    assert failed["status"] == "failure"
    assert "does not exist" in failed["error"]
    assert await _exports(booklogr.settings) == []
    booklogr.settings.export_folder.mkdir()
    response = await booklogr.client.post(f"/v1/tasks/{task['id']}/retry",
                                          headers={"X-User-Id": str(USER)})
    assert response.status_code == 200, response.text
    assert response.json()["status"] in ("fresh", "started", "success")
    done = await booklogr.until(task["id"], "success", "failure")
    assert done["status"] == "success", done
    assert [owner for _, owner in await _exports(booklogr.settings)] == [USER]
    again = await booklogr.client.post(f"/v1/tasks/{task['id']}/retry",
                                       headers={"X-User-Id": str(USER)})
    assert again.status_code == 409
    assert "only a failed task" in again.json()["error"]


async def test_a_worker_takes_only_its_own_task_types(booklogr: Deployment) -> None:
    booklogr.settings.export_folder.mkdir()
    await _ready(booklogr, types="csv_export")
    removal = await booklogr.create("remove_exports")  # no worker runs this type
    export = await booklogr.create("csv_export")  # created after it
    assert (await booklogr.until(export["id"], "success", "failure"))["status"] == "success"
    assert (await booklogr.get(removal["id"])).json()["status"] == "fresh"
    remover = await booklogr.start_worker("janitor", "remove_exports")
    removed = await booklogr.until(removal["id"], "success", "failure")
    assert (removed["status"], removed["worker_id"]) == ("success", remover)
    assert await _exports(booklogr.settings) == []
    assert list(booklogr.settings.export_folder.iterdir()) == []


@pytest.mark.parametrize(("request_of", "status"), [
    (lambda c: c.post("/v1/tasks", json={"type": "csv_export"}), 401),
    (lambda c: c.post("/v1/tasks", json={"type": "mail"}, headers={"X-User-Id": "7"}), 400),
    (lambda c: c.post("/v1/tasks", content=b"[1]", headers={"X-User-Id": "7"}), 400),
    (lambda c: c.post("/v1/tasks", json={"type": "csv_export", "data": 3},
                      headers={"X-User-Id": "7"}), 400),
    (lambda c: c.get("/v1/tasks/" + "0" * 32, headers={"X-User-Id": "7"}), 404),
    (lambda c: c.post("/v1/tasks/nope/retry", headers={"X-User-Id": "7"}), 404),
])
async def test_the_api_refuses_bad_requests(
        booklogr: Deployment, request_of: Callable[[httpx2.AsyncClient], Any],
        status: int) -> None:
    response = await request_of(booklogr.client)
    assert response.status_code == status, response.text
    assert "error" in response.json()


async def test_a_user_sees_only_their_own_tasks(booklogr: Deployment) -> None:
    task = await booklogr.create("csv_export", user=USER)
    assert (await booklogr.get(task["id"], user=USER)).status_code == 200
    assert (await booklogr.get(task["id"], user=USER + 1)).status_code == 404
