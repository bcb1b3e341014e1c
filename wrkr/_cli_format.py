"""How the `wrkr` command shows items and counts: aligned tables, readable text, JSON.

Pure functions from wrkr's own types to lines of text, so that `cli.py` only parses
arguments and talks to the app.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from wrkr._app import Wrkr
from wrkr._event import Event
from wrkr._urls import redact
from wrkr._version import __version__
from wrkr.backend import ErrorRecord, State

ITEM_COLUMNS = ("id", "queue", "name", "tid", "state", "due", "attempts")
_MISSING = "-"


def moment(value: object) -> str:
    """Show a datetime as ISO-8601 UTC to the second ("2025-01-31T09:00:00Z"), else '-'."""
    if not isinstance(value, datetime):
        return _MISSING
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Return `rows` under `headers` as left-aligned columns, two spaces apart."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]


def item_row(event: Event) -> list[str]:
    """Return the cells of one `wrkr items` row, in `ITEM_COLUMNS` order."""
    state = event.state.value if event.state is not None else _MISSING
    return [event.id or _MISSING, event.queue or _MISSING, event.name, event.tid or _MISSING,
            state, moment(event.when), str(event.attempts)]


def item_json(event: Event) -> str:
    """Return every field of an inspected item as one line of JSON (times in ISO-8601)."""
    return json.dumps(item_fields(event), ensure_ascii=False)


def item_fields(event: Event) -> dict[str, Any]:
    """Return every field of an inspected item as a JSON-ready dict."""
    return {
        "id": event.id, "queue": event.queue, "name": event.name, "tid": event.tid,
        "state": event.state.value if event.state is not None else None,
        "due": _iso(event.when), "created": _iso(event.created), "attempts": event.attempts,
        "worker": event.worker, "finished": _iso(event.finished), "payload": event.payload,
        "errors": [error.to_dict() for error in event.errors],
        "parent": event.parent, "root": event.root,
    }


def item_text(event: Event) -> list[str]:
    """Return an item as `field: value` lines, its payload and error history last."""
    fields = [*item_row(event), moment(event.created), event.worker or _MISSING,
              moment(event.finished)]
    labels = (*ITEM_COLUMNS, "created", "worker", "finished")
    lines = [f"{label + ':':<10}{value}" for label, value in zip(labels, fields, strict=True)]
    lines.append(f"{'payload:':<10}{json.dumps(event.payload, ensure_ascii=False)}")
    lines.append(f"{'errors:':<10}{'none' if not event.errors else ''}".rstrip())
    for error in event.errors:
        lines.append(f"  {_error_line(error)}")
        if error.traceback:  # the handler's last frames, indented under its error
            lines.extend(f"      {line}" for line in error.traceback.rstrip().splitlines())
    return lines


def counts_rows(counts: Mapping[str, Mapping[State, int]]) -> list[list[str]]:
    """Return one row per queue (sorted) with its count in every state, `State` order."""
    return [[queue, *(str(counts[queue].get(state, 0)) for state in State)]
            for queue in sorted(counts)]


def counts_json(queue: str, counts: Mapping[State, int]) -> str:
    """Return one queue's counts as a line of JSON: {"queue": ..., "<state>": n, ...}."""
    return json.dumps({"queue": queue, **{state.value: counts.get(state, 0) for state in State}})


def _error_line(error: ErrorRecord) -> str:
    return f"attempt {error.attempt} at {moment(error.at)}: {error.type}: {error.message}"


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def duration(value: timedelta) -> str:
    """Show a duration compactly, as `when` reads it back: "5m", "1h30m", "250ms"."""
    left = round(value.total_seconds() * 1000)
    parts = []
    for unit, size in _UNIT_MS:
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


_UNIT_MS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))


def subscription_json(queue: str, pattern: str) -> str:
    """Return one subscription as a line of JSON: {"queue": ..., "pattern": ...}."""
    return json.dumps({"queue": queue, "pattern": pattern})


def banner(app: Wrkr, url: str | None, loop: str = "asyncio") -> list[str]:
    """Return what `wrkr worker` shows at start: who it is, where, and what it handles."""
    backend = type(app.backend).__name__ + (f"  {redact(url)}" if url else "")
    lines = [f"wrkr {__version__} worker", f"  app:      {app.name or _MISSING}",
             f"  worker:   {app.worker_id}", f"  backend:  {backend}", f"  loop:     {loop}",
             "  queues:"]
    for queue, routes in sorted(app.routes().items()):
        lines.append(f"    {queue}")
        lines.extend(f"      {route.pattern} -> {_handler_name(route.handler)}  (concurrency "
                     f"{route.concurrency}, timeout {duration(route.timeout)})"
                     for route in routes)
    if not app.routes():
        lines.append("    none: declare handlers with @app.on(PATTERN, queue=QUEUE)")
    return lines


def _handler_name(handler: object) -> str:
    name = getattr(handler, "__qualname__", None) or type(handler).__qualname__
    module = getattr(handler, "__module__", None)
    return f"{module}.{name}" if module else name
