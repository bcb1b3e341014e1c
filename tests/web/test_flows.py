"""GET /v1/flows/{id} and GET /v1/items/{id}/lineage against a live server, on every
backend of conftest's `backend_url` (one without flows answers 501, as checked)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from tests.web._live import FLOW_STEPS, Live, family_app, live_server
from tests.web._poll import wait_for_json, wait_for_state
from tests.web.test_api import assert_problem, publish
from wrkr import Capability


@pytest.fixture
def family(backend_url: str) -> Iterator[Live]:
    """The family app (lineage trees, flow jobs), started and consuming."""
    with live_server(family_app(backend_url, archive="keep")) as server:
        yield server


@pytest.fixture
def http(family: Live) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=family.url, timeout=10.0) as client:
        yield client


def _start(live: Live, tid: str, payload: dict[str, Any] | None = None) -> str:
    flow_id: str = live.call(lambda: live.app.start_flow("test.web.flow", tid=tid,
                                                         payload=payload, steps=FLOW_STEPS))
    return flow_id


def _ended(flow: dict[str, Any]) -> bool:
    return flow["state"] in ("completed", "failed", "cancelled")


def _needs_flows(live: Live, client: httpx.Client) -> None:
    if Capability.FLOWS not in live.app.backend.capabilities:
        assert_problem(client.get("/v1/flows/any"), 501, "'flows'")
        pytest.skip(f"{type(live.app.backend).__name__} has no flows: a 501, as checked")


def test_a_completed_flow_shows_its_steps_of_jobs_and_their_results(
    family: Live, http: httpx.Client
) -> None:
    _needs_flows(family, http)
    flow_id = _start(family, "f-ok")
    flow = wait_for_json(http, f"/v1/flows/{flow_id}", _ended)
    assert (flow["id"], flow["name"], flow["tid"], flow["state"]) == (
        flow_id, "test.web.flow", "f-ok", "completed")
    steps = [[(job["name"], job["state"], job["attempts"]) for job in step]
             for step in flow["steps"]]
    assert steps == [[("job.fetch", "done", 1), ("job.check", "done", 1)],
                     [("job.combine", "done", 1)]]
    assert flow["results"] == {"job.fetch": {"fetched": "f-ok"}, "job.check": "checked",
                               "job.combine": {"combined": ["job.check", "job.fetch"]}}
    assert flow["error"] is None
    assert flow["created"] <= flow["finished"]
    [[fetch, _], [combine]] = flow["steps"]
    assert combine["result"] == {"combined": ["job.check", "job.fetch"]}
    [item_id] = fetch["item_ids"]
    item = http.get(f"/v1/items/{item_id}").json()
    assert (item["flow"], item["queue"], item["name"]) == (flow_id, "test.web.jobs",
                                                           "job.fetch")


def test_a_failed_flow_shows_its_error_and_runs_no_further_step(
    family: Live, http: httpx.Client
) -> None:
    _needs_flows(family, http)
    flow_id = _start(family, "f-bad", {"fail": "no credit"})
    flow = wait_for_json(http, f"/v1/flows/{flow_id}", _ended)
    assert flow["state"] == "failed"
    assert (flow["error"]["type"], flow["error"]["message"]) == (
        "Fail", "check refused: no credit")
    [[fetch, check], [combine]] = flow["steps"]
    assert (fetch["state"], check["state"], combine["state"]) == ("done", "failed", "cancelled")
    assert [error["message"] for error in check["errors"]] == ["check refused: no credit"]
    assert combine["item_ids"] == []
    assert combine["result"] is None
    assert flow["finished"] is not None


def test_an_unknown_flow_is_a_404_and_a_bad_id_a_400(family: Live, http: httpx.Client) -> None:
    _needs_flows(family, http)
    assert_problem(http.get("/v1/flows/no-such-flow"), 404, "no-such-flow")
    assert_problem(http.get("/v1/flows/a%00b"), 400, "NUL")


def test_an_item_outside_a_flow_has_no_flow(http: httpx.Client) -> None:
    [item_id] = publish(http, {"name": "order.packed", "tid": "solo"})
    assert wait_for_state(http, item_id, "done")["flow"] is None


def test_the_lineage_is_the_whole_tree_in_creation_order(http: httpx.Client) -> None:
    [root] = publish(http, {"name": "order.placed", "tid": "o1"})
    tree = wait_for_json(http, f"/v1/items/{root}/lineage", lambda body: len(body["items"]) == 4
                         and all(node["state"] == "done" for node in body["items"]))["items"]
    by_name = {node["name"]: node for node in tree}
    assert tree[0] == {"id": root, "parent": None, "root": root, "name": "order.placed",
                       "queue": "test.web.orders", "tid": "o1", "state": "done"}
    assert by_name["order.paid"]["parent"] == root
    assert by_name["order.packed"]["parent"] == root
    assert by_name["receipt.sent"]["parent"] == by_name["order.paid"]["id"]
    assert {node["root"] for node in tree} == {root}
    assert tree.index(by_name["receipt.sent"]) > tree.index(by_name["order.paid"])
    leaf = http.get(f"/v1/items/{by_name['receipt.sent']['id']}/lineage").json()
    assert leaf == {"items": tree}  # the same tree, asked from any of its items
    item = http.get(f"/v1/items/{by_name['receipt.sent']['id']}").json()
    assert (item["parent"], item["root"]) == (by_name["order.paid"]["id"], root)


def test_the_lineage_of_an_unknown_item_is_a_404(http: httpx.Client) -> None:
    assert_problem(http.get("/v1/items/no-such-item/lineage"), 404, "no-such-item")
