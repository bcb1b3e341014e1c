"""The task API: ``POST /v1/tasks``, ``GET /v1/tasks/<id>``, ``POST /v1/tasks/<id>/retry``.

Starlette alone: three JSON routes need no more. The caller is named by an
``X-User-Id`` header (BookLogr's login stands behind it); a user sees only their own
tasks. The app's lifespan starts the wrkr app (routes subscribed, nothing consumed:
the workers do that) and the database pool.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from examples.booklogr import db
from examples.booklogr.settings import Settings
from examples.booklogr.tasks import STATUS, build_app, event_name, task_json
from examples.booklogr.workers import BookTasks
from wrkr import Event, ItemNotFound, State, Wrkr


class TaskAPI:
    """The routes, over one wrkr app and one pool."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool = db.open_pool(settings.database)
        # Every type's route, so its queue is subscribed; this process never listens.
        handlers = BookTasks(self.pool, settings.schema, settings.export_folder).handlers()
        self.types = sorted(handlers)
        self.app: Wrkr = build_app(settings.wrkr_url, "booklogr-api", handlers)

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        """Open the pool and start the wrkr app for as long as the server runs."""
        await self.pool.open()
        try:
            await db.create_tables(self.pool, self.settings.schema)
            async with self.app:
                yield
        finally:
            await self.pool.close()

    async def create(self, request: Request) -> JSONResponse:
        """Create a task: ``{"type": ..., "data": {...}}``; 201 with the task."""
        user = _user(request)
        body = await _json(request)
        if user is None or body is None:
            return _error(401 if user is None else 400, "expected an X-User-Id header "
                          "(an integer) and a JSON object" if user is None else
                          "the body is not a JSON object")
        kind, data = body.get("type"), body.get("data", {})
        if kind not in self.types or not isinstance(data, dict):
            return _error(400, f"expected 'type' in {self.types} and 'data' an object; "
                          f"got {kind!r} and {type(data).__name__}")
        [task_id] = await self.app.publish({"name": event_name(kind), "tid": str(user),
                                            "payload": data})
        task = await self._task(task_id, user)
        assert task is not None
        return JSONResponse(task, status_code=201, headers={"Location": f"/v1/tasks/{task_id}"})

    async def show(self, request: Request) -> JSONResponse:
        """Return one of the caller's tasks; 404 when it has none of that id."""
        user = _user(request)
        if user is None:
            return _error(401, "expected an X-User-Id header (an integer)")
        task = await self._task(request.path_params["task_id"], user)
        return JSONResponse(task) if task else _error(404, "no such task")

    async def retry(self, request: Request) -> JSONResponse:
        """Run a failed task again; 409 for a task in any other status."""
        user = _user(request)
        if user is None:
            return _error(401, "expected an X-User-Id header (an integer)")
        task_id = request.path_params["task_id"]
        task = await self._task(task_id, user)
        if task is None:
            return _error(404, "no such task")
        if task["status"] != STATUS[State.FAILED]:
            return _error(409, f"task {task_id} is {task['status']}: only a failed task "
                          "can be retried")
        try:
            await self.app.retry(task_id)
        except ItemNotFound:  # retried meanwhile by another request
            return _error(409, f"task {task_id} is no longer failed")
        return JSONResponse(await self._task(task_id, user))

    async def _task(self, task_id: str, user: int) -> dict[str, Any] | None:
        try:
            event: Event = await self.app.get(task_id)
        except ItemNotFound:
            return None
        if event.tid != str(user) or not event.name.startswith("booklogr.task."):
            return None
        return task_json(event, await db.updated_at(self.pool, self.settings.wrkr_schema,
                                                     task_id))


def create_api(settings: Settings) -> Starlette:
    """Return the ASGI app (serve it with uvicorn)."""
    api = TaskAPI(settings)
    return Starlette(lifespan=api.lifespan, routes=[
        Route("/v1/tasks", api.create, methods=["POST"]),
        Route("/v1/tasks/{task_id}", api.show, methods=["GET"]),
        Route("/v1/tasks/{task_id}/retry", api.retry, methods=["POST"]),
    ])


def _user(request: Request) -> int | None:
    value = request.headers.get("x-user-id", "")
    return int(value) if value.isdigit() else None


async def _json(request: Request) -> dict[str, Any] | None:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
