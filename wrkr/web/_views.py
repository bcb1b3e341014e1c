"""JSON views of what the API shows beyond `wrkr get --json`: an item's flow, a lineage
tree, a flow with its steps of jobs.

Pure functions from wrkr's own types to JSON-ready dicts (times in ISO-8601), plus the
one read that needs the stored item itself (an `Event` does not carry its flow's id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wrkr._app import Wrkr
from wrkr._cli_format import item_fields
from wrkr._errors import NotSupported
from wrkr._event import Event, from_item
from wrkr._flows import Flow, Job
from wrkr.backend import Capability
from wrkr.web._health import require_started

__all__ = ["LINEAGE_FIELDS", "flow_fields", "item_view", "lineage_fields"]

LINEAGE_FIELDS = ("id", "parent", "root", "name", "queue", "tid", "state")


async def item_view(app: Wrkr, item_id: str) -> dict[str, Any]:
    """Return one item as `wrkr get --json` shows it, with `flow`: its flow's id or None.

    Raises:
        NotStarted, NotSupported: as `app.get` does.
        ItemNotFound: no item has that id.
    """
    require_started(app, "get")
    if Capability.QUERY not in app.backend.capabilities:
        raise NotSupported(f"{type(app.backend).__name__} does not support "
                           f"'{Capability.QUERY}', needed for get()")
    item = await app.backend.get(item_id)  # one read: the stored item knows its flow
    return {**item_fields(from_item(item, strict=False)), "flow": item.flow}


def lineage_fields(tree: list[Event]) -> dict[str, Any]:
    """Return `app.lineage`'s tree as `{"items": [...]}`, in creation order."""
    return {"items": [{"id": event.id, "parent": event.parent, "root": event.root,
                       "name": event.name, "queue": event.queue, "tid": event.tid,
                       "state": None if event.state is None else event.state.value}
                      for event in tree]}


def flow_fields(flow: Flow) -> dict[str, Any]:
    """Return a flow with its steps of jobs, results and error."""
    return {"id": flow.id, "name": flow.name, "tid": flow.tid, "state": flow.state,
            "steps": [[_job(job) for job in step] for step in flow.steps],
            "results": flow.results,
            "error": None if flow.error is None else flow.error.to_dict(),
            "created": _iso(flow.created), "finished": _iso(flow.finished)}


def _job(job: Job) -> dict[str, Any]:
    return {"name": job.name, "item_ids": list(job.item_ids), "state": job.state,
            "attempts": job.attempts, "result": job.result,
            "errors": [error.to_dict() for error in job.errors]}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
