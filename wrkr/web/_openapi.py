"""The OpenAPI 3 document of the HTTP API, written by hand as the API's contract.

Written, not generated: Starlette has no generator worth the name, and FastAPI's would
bring pydantic models and a second validation layer for a dozen endpoints whose input
`Wrkr` already validates (with messages that name the bad value). The test suite runs
schemathesis against a live server with this document, so the two cannot drift apart
unnoticed.
"""

from __future__ import annotations

from typing import Any

from wrkr.backend import State
from wrkr.web._api import MAX_LIMIT

__all__ = ["document"]

JSON = "application/json"
PROBLEM = "application/problem+json"

def _list_of(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": [key],
            "properties": {key: {"type": "array", "items": item}}}


_NULLABLE_STRING = {"type": "string", "nullable": True}
_MOMENT = {"type": "string", "format": "date-time", "nullable": True}
_WHEN = {"oneOf": [{"type": "string"}, {"type": "number"}],
         "description": 'ISO-8601, "in 2 hours", "1h30m", or seconds from now'}

SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object", "required": ["type", "title", "status", "detail"],
        "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                       "status": {"type": "integer"}, "detail": {"type": "string"}},
    },
    "Event": {
        "type": "object", "required": ["name"], "additionalProperties": False,
        "properties": {"name": {"type": "string"}, "tid": _NULLABLE_STRING,
                       "payload": {"type": "object"}, "when": _WHEN, "once_every": _WHEN},
    },
    "ErrorRecord": {
        "type": "object", "required": ["at", "attempt", "type", "message"],
        "properties": {"at": {"type": "string", "format": "date-time"},
                       "attempt": {"type": "integer"}, "type": {"type": "string"},
                       "message": {"type": "string"}, "traceback": {"type": "string"}},
    },
    "Item": {
        "type": "object",
        "required": ["id", "queue", "name", "tid", "state", "due", "created", "attempts",
                     "worker", "finished", "payload", "errors"],
        "properties": {
            "id": {"type": "string"}, "queue": {"type": "string"}, "name": {"type": "string"},
            "tid": _NULLABLE_STRING, "state": {"type": "string", "enum": [s.value for s in State]},
            "due": _MOMENT, "created": _MOMENT, "attempts": {"type": "integer"},
            "worker": _NULLABLE_STRING, "finished": _MOMENT, "payload": {},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ErrorRecord"}},
            "parent": _NULLABLE_STRING, "root": _NULLABLE_STRING, "flow": _NULLABLE_STRING,
        },
    },
    "Lineage": _list_of("items", {
        "type": "object", "required": ["id", "parent", "root", "name", "queue", "tid", "state"],
        "properties": {"id": {"type": "string"}, "parent": _NULLABLE_STRING,
                       "root": {"type": "string"}, "name": {"type": "string"},
                       "queue": {"type": "string"}, "tid": _NULLABLE_STRING,
                       "state": {"type": "string", "enum": [s.value for s in State]}}}),
    "Job": {
        "type": "object",
        "required": ["name", "item_ids", "state", "attempts", "result", "errors"],
        "properties": {
            "name": {"type": "string"},
            "item_ids": {"type": "array", "items": {"type": "string"}},
            "state": {"type": "string", "enum": [*(s.value for s in State), "cancelled"]},
            "attempts": {"type": "integer", "minimum": 0}, "result": {},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ErrorRecord"}},
        },
    },
    "Flow": {
        "type": "object",
        "required": ["id", "name", "tid", "state", "steps", "results", "error", "created",
                     "finished"],
        "properties": {
            "id": {"type": "string"}, "name": {"type": "string"}, "tid": _NULLABLE_STRING,
            "state": {"type": "string",
                      "enum": ["queued", "running", "completed", "failed", "cancelled"]},
            "steps": {"type": "array", "items": {
                "type": "array", "items": {"$ref": "#/components/schemas/Job"}}},
            "results": {"type": "object"},
            "error": {"allOf": [{"$ref": "#/components/schemas/ErrorRecord"}],
                      "nullable": True},
            "created": _MOMENT, "finished": _MOMENT,
        },
    },
    "ItemPage": {
        "type": "object", "required": ["items", "next"],
        "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                       "next": _NULLABLE_STRING},
    },
    "Queues": _list_of("queues", {
        "type": "object", "required": ["queue", "counts"],
        "properties": {"queue": {"type": "string"}, "counts": {
            "type": "object", "additionalProperties": {"type": "integer"},
            "properties": {s.value: {"type": "integer"} for s in State}}}}),
    "Subscriptions": _list_of("subscriptions", {
        "type": "object", "required": ["queue", "pattern"],
        "properties": {"queue": {"type": "string"}, "pattern": {"type": "string"}}}),
    "Schedules": _list_of("schedules", {
        "type": "object", "required": ["name", "cron", "every", "tz", "tid", "payload", "next",
                                       "last"],
        "properties": {"name": {"type": "string"}, "cron": _NULLABLE_STRING,
                       "every": {"type": "number", "nullable": True}, "tz": {"type": "string"},
                       "tid": _NULLABLE_STRING, "payload": {"type": "object", "nullable": True},
                       "next": {"type": "string", "format": "date-time"}, "last": _MOMENT}}),
    "Throughput": {
        "type": "object", "required": ["source", "minutes"],
        "properties": {"source": {"type": "string", "enum": ["process"]}, "minutes": {
            "type": "array", "items": {"type": "object", "required": ["minute"],
                                       "additionalProperties": {"type": "integer"}}}},
    },
    "Status": {"type": "object", "required": ["status"],
               "properties": {"status": {"type": "string"}}},
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(schema: str, status: str = "200", why: str = "OK") -> dict[str, Any]:
    return {status: {"description": why, "content": {JSON: {"schema": _ref(schema)}}}}


_PROBLEMS = {
    "400": "invalid input: the detail names the bad value",
    "401": "no bearer token, or a wrong one",
    "403": "a cross-site request",
    "404": "no such item (or flow)",
    "409": "the item is not in a state that allows it",
    "413": "the request body is too large",
    "415": "the body is not application/json",
    "501": "the backend lacks a capability; the detail names it",
    "503": "the app is not started or the backend is unavailable",
}


def _problems(*statuses: str) -> dict[str, Any]:
    return {status: {"description": _PROBLEMS[status],
                     "content": {PROBLEM: {"schema": _ref("Problem")}}}
            for status in statuses}


def _query(name: str, schema: dict[str, Any], about: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": about}


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_STATE = {"type": "string", "enum": [s.value for s in State]}
_COMMON = ("401", "503")


def _operations() -> dict[str, Any]:
    filters = [_query("queue", {"type": "string"}, "only this queue's items"),
               _query("name", {"type": "string"}, "only events of this name"),
               _query("tid", {"type": "string"}, "only this target id")]
    return {
        "/v1/events": {"post": {
            "summary": "Publish one event or a list (all or nothing)",
            "requestBody": {"required": True, "content": {JSON: {"schema": {
                "oneOf": [_ref("Event"), {"type": "array", "items": _ref("Event")}]}}}},
            "responses": {**_ok("Ids", "201", "the ids of the items created"),
                          **_problems("400", "403", "413", "415", "501", *_COMMON)}}},
        "/v1/items": {
            "get": {"summary": "List items, oldest due first, a page at a time",
                    "parameters": [*filters, _query("state", _STATE, "only items in this state"),
                                   _query("limit", {"type": "integer", "minimum": 1,
                                                    "maximum": MAX_LIMIT}, "page size"),
                                   _query("cursor", {"type": "string"}, "a 'next' value")],
                    "responses": {**_ok("ItemPage"), **_problems("400", "501", *_COMMON)}},
            "delete": {"summary": "Cancel the pending items matching every filter given",
                       "parameters": filters,
                       "responses": {**_ok("Cancelled"),
                                     **_problems("400", "403", "501", *_COMMON)}}},
        "/v1/items/{id}": {"get": {
            "summary": "One item in full", "parameters": [_ID],
            "responses": {**_ok("Item"), **_problems("400", "404", "501", *_COMMON)}}},
        "/v1/items/{id}/retry": {"post": {
            "summary": "Move a failed item back to ready", "parameters": [_ID],
            "responses": {**_ok("Item"),
                          **_problems("400", "403", "404", "409", "501", *_COMMON)}}},
        "/v1/items/{id}/lineage": {"get": {
            "summary": "The item's lineage tree: every item sharing its root, oldest first",
            "parameters": [_ID],
            "responses": {**_ok("Lineage"), **_problems("400", "404", "501", *_COMMON)}}},
        "/v1/flows/{id}": {"get": {
            "summary": "A flow: its state and its steps of jobs with their states and results",
            "parameters": [_ID],
            "responses": {**_ok("Flow"), **_problems("400", "404", "501", *_COMMON)}}},
        "/v1/queues": {"get": {"summary": "Every queue with its counts per state",
                               "responses": {**_ok("Queues"), **_problems("501", *_COMMON)}}},
        "/v1/subscriptions": {"get": {"summary": "Every stored (queue, pattern)",
                                      "responses": {**_ok("Subscriptions"),
                                                    **_problems(*_COMMON)}}},
        "/v1/schedules": {"get": {"summary": "Every recurring schedule and its next firing",
                                  "responses": {**_ok("Schedules"),
                                                **_problems("501", *_COMMON)}}},
        "/v1/throughput": {"get": {"summary": "This process's counts per minute, last hour",
                                   "responses": {**_ok("Throughput"), **_problems(*_COMMON)}}},
        **_probes(),
    }


def _probes() -> dict[str, Any]:
    public: dict[str, Any] = {"security": []}
    return {
        "/healthz": {"get": {"summary": "The process answers", **public,
                             "responses": _ok("Status")}},
        "/readyz": {"get": {"summary": "Started, subscriptions stored, the backend answers",
                            **public, "responses": {**_ok("Status"), **_problems("503")}}},
        "/metrics": {"get": {"summary": "Prometheus text format", "responses": {
            "200": {"description": "the metrics",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
            **_problems("401")}}},
    }


def document(*, token: bool) -> dict[str, Any]:
    """Return the OpenAPI 3.0 document; with `token`, every operation but the probes
    requires the bearer token."""
    from wrkr._version import __version__

    schemas = {**SCHEMAS,
               "Ids": _list_of("ids", {"type": "string"}),
               "Cancelled": {"type": "object", "required": ["cancelled"],
                             "properties": {"cancelled": {"type": "integer", "minimum": 0}}}}
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "wrkr HTTP API", "version": __version__,
                 "description": "Publish, inspect, retry and cancel wrkr items; follow "
                                "their lineage and flows."},
        "paths": _operations(),
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"}}},
    }
    if token:
        doc["security"] = [{"bearer": []}]
    return doc
