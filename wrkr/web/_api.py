"""HTTP API v1: publish, list and inspect items, retry and cancel, queues, schedules,
lineage trees and flows.

Each endpoint is a thin translation: query and body to a `Wrkr` call, its answer to
JSON (items with the fields of `wrkr get --json`). Errors are raised as `WrkrError`s
or `Problem`s and answered as problem details by the app (`_problems`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wrkr._app import Wrkr
from wrkr._cli_format import item_fields
from wrkr._schedules import Schedule
from wrkr.backend import State
from wrkr.web import _cursor
from wrkr.web._health import require_started
from wrkr.web._metrics import metrics_for
from wrkr.web._problems import Conflict, Problem
from wrkr.web._views import flow_fields, item_view, lineage_fields

__all__ = ["DEFAULT_LIMIT", "DEFAULT_TIMEOUT", "MAX_LIMIT", "ApiV1"]

Endpoint = Callable[[Request], Awaitable[Response]]
DEFAULT_LIMIT = 50
DEFAULT_TIMEOUT = 10.0
MAX_LIMIT = 500
_ITEM_FILTERS = ("queue", "name", "tid", "state")
_CANCEL_FILTERS = ("queue", "name", "tid")


class ApiV1:
    """The `/v1` endpoints of one app; each answers within `timeout` seconds (else 503)."""

    def __init__(self, app: Wrkr, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.app = app
        self.timeout = timeout

    def routes(self) -> list[Route]:
        """Return the routes, relative to the mount point."""
        return [
            self._route("/v1/events", self.publish, "POST"),
            self._route("/v1/items", self.items, "GET"),
            self._route("/v1/items", self.cancel, "DELETE"),
            self._route("/v1/items/{id}", self.item, "GET"),
            self._route("/v1/items/{id}/retry", self.retry, "POST"),
            self._route("/v1/items/{id}/lineage", self.lineage, "GET"),
            self._route("/v1/flows/{id}", self.flow, "GET"),
            self._route("/v1/queues", self.queues, "GET"),
            self._route("/v1/subscriptions", self.subscriptions, "GET"),
            self._route("/v1/schedules", self.schedules, "GET"),
            self._route("/v1/throughput", self.throughput, "GET"),
        ]

    def _route(self, path: str, endpoint: Endpoint, method: str) -> Route:
        # A backend that is down can keep a call waiting for its pool's whole timeout
        # (30 s on PostgreSQL): the API answers 503 sooner, saying what it knows.
        async def bounded(request: Request) -> Response:
            try:
                async with asyncio.timeout(self.timeout):
                    return await endpoint(request)
            except TimeoutError:
                maybe = " (it may still take effect)" if method != "GET" else ""
                raise Problem(503, f"the backend did not answer within {self.timeout:g} s"
                                   f"{maybe}") from None

        return Route(path, bounded, methods=[method])

    async def publish(self, request: Request) -> Response:
        """POST /v1/events: one event object or a list of them; 201 with the item ids."""
        body = await _json_body(request)
        if not isinstance(body, dict | list):
            raise Problem(400, "expected an event object or a list of event objects")
        for event in body if isinstance(body, list) else [body]:
            if isinstance(event, dict) and isinstance(event.get("tid"), str):
                _check_text(event["tid"], "tid")
        try:
            ids = await self.app.publish(body)
        except (TypeError, OverflowError) as exc:  # a value of a JSON type wrkr cannot use
            raise Problem(400, f"invalid event: {exc}") from None
        return JSONResponse({"ids": ids}, 201)

    async def items(self, request: Request) -> Response:
        """GET /v1/items: items matching the filters, oldest due first, a page at a time."""
        query = _only(request, {*_ITEM_FILTERS, "limit", "cursor"})
        limit = _limit(query.get("limit"))
        offset = _cursor.decode(query.get("cursor"))
        filters = {key: query[key] for key in _ITEM_FILTERS if key in query}
        events = await self.app.items(**filters, limit=limit + 1, offset=offset)
        more = len(events) > limit
        return JSONResponse({"items": [item_fields(event) for event in events[:limit]],
                             "next": _cursor.encode(offset + limit) if more else None})

    async def item(self, request: Request) -> Response:
        """GET /v1/items/{id}: one item in full, with its flow's id; 404 when unknown."""
        item_id = _check_text(request.path_params["id"], "item id")
        return JSONResponse(await item_view(self.app, item_id))

    async def retry(self, request: Request) -> Response:
        """POST /v1/items/{id}/retry: a failed item back to ready; 409 if it is not failed."""
        item_id = _check_text(request.path_params["id"], "item id")
        event = await self.app.get(item_id)
        if event.state is not State.FAILED:
            raise Conflict(f"item {item_id!r} is {event.state}, not failed: only a failed "
                           "item can be retried")
        await self.app.retry(item_id)
        return JSONResponse(await item_view(self.app, item_id))

    async def lineage(self, request: Request) -> Response:
        """GET /v1/items/{id}/lineage: the item's tree (every item sharing its root)."""
        item_id = _check_text(request.path_params["id"], "item id")
        return JSONResponse(lineage_fields(await self.app.lineage(item_id)))

    async def flow(self, request: Request) -> Response:
        """GET /v1/flows/{id}: a flow's state and its steps of jobs; 404 when unknown."""
        flow_id = _check_text(request.path_params["id"], "flow id")
        return JSONResponse(flow_fields(await self.app.flow(flow_id)))

    async def cancel(self, request: Request) -> Response:
        """DELETE /v1/items?name=&tid=&queue=: delete matching pending items; at least one."""
        query = _only(request, set(_CANCEL_FILTERS))
        if not query:
            raise Problem(400, "cancelling needs at least one of the filters name, tid, queue")
        return JSONResponse({"cancelled": await self.app.cancel(**query)})

    async def queues(self, request: Request) -> Response:
        """GET /v1/queues: every queue with its count of items per state."""
        counts = await self.app.counts()
        return JSONResponse({"queues": [
            {"queue": queue, "counts": {state.value: n for state, n in states.items()}}
            for queue, states in counts.items()]})

    async def subscriptions(self, request: Request) -> Response:
        """GET /v1/subscriptions: every (queue, pattern) pair stored in the backend."""
        pairs = await self.app.subscriptions()
        return JSONResponse({"subscriptions": [{"queue": queue, "pattern": pattern}
                                               for queue, pattern in pairs]})

    async def schedules(self, request: Request) -> Response:
        """GET /v1/schedules: every stored recurring schedule with its next firing."""
        return JSONResponse({"schedules": [_schedule(s) for s in await self.app.schedules()]})

    async def throughput(self, request: Request) -> Response:
        """GET /v1/throughput: this process's counts per minute over the last hour."""
        require_started(self.app, "read the throughput")
        return JSONResponse({"source": "process",
                             "minutes": metrics_for(self.app).throughput.last_hour()})


async def _json_body(request: Request) -> Any:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise Problem(415, "expected a body of type application/json")
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise Problem(400, f"invalid JSON: {exc}") from None


def _only(request: Request, allowed: set[str]) -> dict[str, str]:
    """Return the query parameters, refusing unknown or repeated ones (a typo filters nothing)."""
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise Problem(400, f"unknown query parameter(s) {', '.join(unknown)}: expected "
                           f"{', '.join(sorted(allowed))}")
    repeated = [key for key in request.query_params if len(request.query_params.getlist(key)) > 1]
    if repeated:
        raise Problem(400, f"query parameter {repeated[0]} given more than once")
    return {key: _check_text(value, key) for key, value in request.query_params.items()}


def _check_text(value: str, what: str) -> str:
    """Refuse a NUL character, which no backend's text columns can hold (PostgreSQL's)."""
    if "\x00" in value:
        raise Problem(400, f"invalid {what} {value[:100]!r}: contains a NUL character")
    return value


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise Problem(400, f"invalid limit {text[:50]!r}: expected a whole number from 1 to "
                           f"{MAX_LIMIT}")
    return int(text)


def _schedule(schedule: Schedule) -> dict[str, Any]:
    every = schedule.every
    return {"name": schedule.name, "cron": schedule.cron, "tz": schedule.tz,
            "every": every.total_seconds() if isinstance(every, timedelta) else None,
            "tid": schedule.tid, "payload": schedule.payload,
            "next": schedule.next.isoformat(),
            "last": None if schedule.last is None else schedule.last.isoformat()}
