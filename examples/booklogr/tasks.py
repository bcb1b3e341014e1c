"""Tasks as wrkr items: names, the status map, the app every process builds, the JSON view."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from wrkr import Event, Retry, State, Wrkr

STATUS = {State.SCHEDULED: "fresh", State.READY: "fresh", State.PROCESSING: "started",
          State.DONE: "success", State.FAILED: "failure"}
"""BookLogr's status of a task, from its item's state (read, never stored twice)."""

TaskHandler = Callable[[Event], Any]


def event_name(task_type: str) -> str:
    """Return the event a task of `task_type` is published as."""
    return f"booklogr.task.{task_type}"


def queue_name(task_type: str) -> str:
    """Return the queue of `task_type`: its workers consume only that one."""
    return f"booklogr.tasks.{task_type}"


def build_app(url: str, nickname: str, handlers: Mapping[str, TaskHandler]) -> Wrkr:
    """Return the app of a BookLogr process, with a route per task type in `handlers`.

    Done tasks are kept 30 days (their status stays readable); a task that raises is a
    `failure` at once, for its user to retry (BookLogr retries nothing by itself).
    """
    app = Wrkr.from_url(url, name=nickname, archive="keep", retention="30 days",
                        retry=Retry(attempts=1))
    for task_type, handler in handlers.items():
        app.on(event_name(task_type), queue=queue_name(task_type), timeout="10 minutes")(handler)
    return app


def task_type(event: Event) -> str:
    """Return the task type of a task's event."""
    return event.name.removeprefix("booklogr.task.")


def task_json(event: Event, updated: object = None) -> dict[str, Any]:
    """Return a task as the API shows it."""
    assert event.state is not None
    assert event.created is not None
    changed = updated if isinstance(updated, datetime) else event.finished or event.created
    last_error = event.errors[-1].message if event.errors else None
    return {"id": event.id, "type": task_type(event), "data": event.payload,
            "status": STATUS[event.state], "worker_id": event.worker,
            "created_by": int(event.tid or 0), "created_on": event.created.isoformat(),
            "updated_on": changed.isoformat(), "error": last_error}
