"""HTTP API v1 against a live server on 127.0.0.1: on memory, SQLite, PostgreSQL and MongoDB
(conftest's `backend_url`), and a few cases on one backend."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest

from tests._services import require_service
from tests.web._live import Live, demo_app, live_server
from tests.web._poll import wait_for_state
from tests.web._proxy import tcp_proxy
from wrkr import Capability

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert set(body) == {"type", "title", "status", "detail"}
    assert "Traceback" not in body["detail"]
    for fragment in fragments:
        assert fragment in body["detail"], body
    return body


def publish(client: httpx.Client, events: object) -> list[str]:
    response = client.post("/v1/events", json=events)
    assert response.status_code == 201, response.text
    ids: list[str] = response.json()["ids"]
    return ids


def test_one_event_is_published_and_handled(client: httpx.Client) -> None:
    [item_id] = publish(client, {"name": "user.added", "tid": "7", "payload": {"plan": "pro"}})
    item = wait_for_state(client, item_id, "done")
    assert item["queue"] == "test.web.mail"
    assert item["name"] == "user.added"
    assert item["tid"] == "7"
    assert item["payload"] == {"plan": "pro"}
    assert item["attempts"] == 1
    assert item["errors"] == []
    assert {"due", "created", "worker", "finished"} <= set(item)


def test_a_list_is_published_with_one_id_per_item(client: httpx.Client) -> None:
    ids = publish(client, [{"name": "user.added", "tid": str(n)} for n in range(3)]
                  + [{"name": "report.due", "when": "in 1 hour"}])
    assert len(set(ids)) == 4
    scheduled = client.get("/v1/items", params={"queue": "test.web.reports"}).json()["items"]
    assert [(item["id"], item["state"]) for item in scheduled] == [(ids[3], "scheduled")]


def test_an_event_nobody_subscribed_stores_nothing(client: httpx.Client) -> None:
    assert publish(client, {"name": "nobody.listens"}) == []


@pytest.mark.parametrize(("body", "fragment"), [
    ({"tid": "1"}, "has no 'name'"),
    ({"name": "bad name!"}, "bad name!"),
    ({"name": "user.added", "when": "next blue moon"}, "next blue moon"),
    ({"name": "user.added", "colour": "red"}, "colour"),
    ([{"name": "user.added"}, {"name": ""}], "''"),
    ("user.added", "expected an event object"),
    ({"name": "user.added", "tid": "a\x00b"}, "NUL"),
])
def test_an_invalid_event_is_a_400_naming_it(
    client: httpx.Client, body: object, fragment: str
) -> None:
    assert_problem(client.post("/v1/events", json=body), 400, fragment)


def test_a_batch_with_one_bad_event_publishes_nothing(client: httpx.Client) -> None:
    client.post("/v1/events", json=[{"name": "user.added", "tid": "ok"}, {"name": ""}])
    assert client.get("/v1/items", params={"tid": "ok"}).json()["items"] == []


def test_a_body_that_is_not_json_is_refused(client: httpx.Client) -> None:
    assert_problem(client.post("/v1/events", content=b"{nope",
                               headers={"content-type": "application/json"}), 400, "JSON")
    assert_problem(client.post("/v1/events", content=b"name=x"), 415, "application/json")


def test_items_are_paged_with_a_cursor(client: httpx.Client) -> None:
    ids = publish(client, [{"name": "report.due", "tid": str(n), "when": "in 1 hour"}
                           for n in range(5)])
    seen, cursor, pages = [], None, 0
    while True:
        params = {"queue": "test.web.reports", "limit": "2", **({"cursor": cursor} if cursor
                                                                 else {})}
        page = client.get("/v1/items", params=params).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ids
    assert pages == 3


@pytest.mark.parametrize(("params", "fragment"), [
    ({"limit": "0"}, "'0'"), ({"limit": "x"}, "'x'"), ({"limit": "501"}, "'501'"),
    ({"cursor": "garbage"}, "'garbage'"), ({"state": "lost"}, "'lost'"),
    ({"queue": "bad queue!"}, "'bad queue!'"), ({"colour": "red"}, "colour"),
    ({"tid": "a\x00b"}, "NUL"),
])
def test_a_bad_listing_query_is_a_400(
    client: httpx.Client, params: dict[str, str], fragment: str
) -> None:
    assert_problem(client.get("/v1/items", params=params), 400, fragment)


def test_items_are_filtered_by_name_tid_and_state(client: httpx.Client) -> None:
    [failed] = publish(client, {"name": "user.removed", "tid": "f1", "payload": {"fail": "no"}})
    [done] = publish(client, {"name": "user.added", "tid": "f1"})
    wait_for_state(client, failed, "failed")
    wait_for_state(client, done, "done")

    def ids(**params: str) -> list[str]:
        return [item["id"] for item in client.get("/v1/items", params=params).json()["items"]]

    assert ids(tid="f1", state="failed") == [failed]
    assert ids(tid="f1", name="user.added") == [done]
    assert sorted(ids(tid="f1")) == sorted([failed, done])


def test_an_unknown_item_is_a_404(client: httpx.Client) -> None:
    assert_problem(client.get("/v1/items/no-such-item"), 404, "no-such-item")
    assert_problem(client.post("/v1/items/no-such-item/retry"), 404, "no-such-item")


def test_a_failed_item_is_retried_and_a_done_one_is_a_conflict(client: httpx.Client) -> None:
    [item_id] = publish(client, {"name": "user.added", "tid": "r1", "payload": {"crash": "503"}})
    failed = wait_for_state(client, item_id, "failed")
    [error] = failed["errors"]
    assert error["type"] == "RuntimeError"
    assert "mail server said 503" in error["traceback"]
    retried = client.post(f"/v1/items/{item_id}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["id"] == item_id
    assert retried.json()["state"] in ("ready", "processing", "failed")  # a worker listens
    [done] = publish(client, {"name": "user.added", "tid": "r2"})
    wait_for_state(client, done, "done")
    assert_problem(client.post(f"/v1/items/{done}/retry"), 409, done, "done", "not failed")


def test_pending_items_are_cancelled_by_filter(client: httpx.Client) -> None:
    publish(client, [{"name": "report.due", "tid": "c1", "when": "in 1 hour"},
                     {"name": "report.due", "tid": "c1", "when": "in 2 hours"},
                     {"name": "report.due", "tid": "c2", "when": "in 1 hour"}])
    response = client.delete("/v1/items", params={"tid": "c1", "queue": "test.web.reports"})
    assert response.status_code == 200, response.text
    assert response.json() == {"cancelled": 2}
    left = client.get("/v1/items", params={"queue": "test.web.reports"}).json()["items"]
    assert [item["tid"] for item in left] == ["c2"]


def test_cancel_without_a_filter_is_a_400(client: httpx.Client) -> None:
    assert_problem(client.delete("/v1/items"), 400, "at least one")
    assert_problem(client.delete("/v1/items", params={"state": "ready"}), 400, "state")


def test_queues_are_listed_with_counts_per_state(client: httpx.Client) -> None:
    publish(client, {"name": "report.due", "when": "in 1 hour"})
    queues = {q["queue"]: q["counts"] for q in client.get("/v1/queues").json()["queues"]}
    assert set(queues) == {"test.web.mail", "test.web.reports"}
    assert queues["test.web.reports"] == {"scheduled": 1, "ready": 0, "processing": 0,
                                          "done": 0, "failed": 0}


def test_subscriptions_are_listed(client: httpx.Client) -> None:
    assert client.get("/v1/subscriptions").json() == {"subscriptions": [
        {"queue": "test.web.mail", "pattern": "user.*"},
        {"queue": "test.web.reports", "pattern": "report.due"}]}


def test_schedules_are_listed_with_their_next_firing(client: httpx.Client, live: Live) -> None:
    if Capability.SCHEDULES not in live.app.backend.capabilities:
        assert_problem(client.get("/v1/schedules"), 501, "'schedules'")
        return
    live.call(lambda: live.app.schedule("report.due", every="1 hour", tid="hourly"))
    [schedule] = client.get("/v1/schedules").json()["schedules"]
    assert schedule["name"] == "report.due"
    assert schedule["every"] == 3600.0
    assert schedule["cron"] is None
    assert schedule["tid"] == "hourly"
    assert schedule["next"] > schedule["next"][:4]  # an ISO-8601 time


def test_an_unknown_path_is_a_problem(client: httpx.Client) -> None:
    assert_problem(client.get("/v1/nothing"), 404)
    assert_problem(client.put("/v1/items"), 405)


def test_a_body_over_the_limit_is_refused(client: httpx.Client) -> None:
    big = {"name": "user.added", "payload": {"text": "x" * (1024 * 1024)}}
    assert_problem(client.post("/v1/events", json=big), 413, "larger than")

    def chunks() -> Any:
        yield b'{"name": "user.added", "payload": {"text": "'
        for _ in range(300):
            yield b"y" * 4096
        yield b'"}}'

    chunked = client.post("/v1/events", content=chunks(),
                          headers={"content-type": "application/json"})
    assert_problem(chunked, 413, "larger than")


def test_a_cross_site_request_is_refused(client: httpx.Client) -> None:
    [item_id] = publish(client, {"name": "report.due", "when": "in 1 hour"})
    for headers in ({"sec-fetch-site": "cross-site"}, {"origin": "http://evil.example"}):
        assert_problem(client.delete("/v1/items", params={"queue": "test.web.reports"},
                                     headers=headers), 403, "cross-site")
    same = client.delete("/v1/items", params={"queue": "test.web.reports"},
                         headers={"origin": str(client.base_url).rstrip("/")})
    assert same.json() == {"cancelled": 1}
    assert_problem(client.get(f"/v1/items/{item_id}"), 404)


def test_the_openapi_document_lists_every_endpoint(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert {"/v1/events", "/v1/items", "/v1/items/{id}", "/v1/items/{id}/retry", "/v1/queues",
            "/v1/subscriptions", "/v1/schedules", "/v1/items/{id}/lineage", "/v1/flows/{id}",
            "/healthz", "/readyz", "/metrics"} <= set(document["paths"])


def test_probes_answer(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_a_server_whose_app_is_not_started_answers_503() -> None:
    with live_server(demo_app(), started=False) as live, httpx.Client(base_url=live.url) as c:
        assert c.get("/healthz").status_code == 200
        assert_problem(c.get("/readyz"), 503, "not started")
        assert_problem(c.get("/v1/items"), 503, "not started")
        assert_problem(c.post("/v1/events", json={"name": "user.added"}), 503, "not started")
        assert_problem(c.get("/metrics"), 503, "not started")


def test_readyz_names_a_subscription_not_stored() -> None:
    app = demo_app()
    with live_server(app) as live, httpx.Client(base_url=live.url) as c:
        live.call(lambda: app.unsubscribe("test.web.reports", "report.due"))
        assert_problem(c.get("/readyz"), 503, "not stored", "test.web.reports")


def test_a_mounted_app_works_under_its_prefix() -> None:
    with live_server(demo_app(), prefix="/ops/wrkr") as live, \
            httpx.Client(base_url=live.url) as c:
        assert c.get("/v1/queues").status_code == 200
        page = c.get("/")
        assert page.status_code == 200
        assert '<base href="/ops/wrkr/">' in page.text
        assert c.get("/static/app.js").headers["content-type"].startswith("text/javascript")
        assert_problem(c.get("/static/../_api.py"), 404)


@pytest.mark.postgres
def test_a_backend_that_goes_away_is_a_503_without_its_password(pg_schema: str) -> None:
    require_service("PostgreSQL", 5432)
    with tcp_proxy(5432) as proxy:
        url = f"postgresql://postgres:s3cret-pw@127.0.0.1:{proxy.port}/test?schema={pg_schema}"
        with live_server(demo_app(url), listen=False, timeout=1.0) as live, \
                httpx.Client(base_url=live.url, timeout=30.0) as client:
            assert client.get("/readyz").status_code == 200
            proxy.cut()
            queues = assert_problem(client.get("/v1/queues"), 503, "backend")
            ready = assert_problem(client.get("/readyz"), 503, "backend")
            # Publishing runs on a connection of its own, which fails at once (nothing
            # was sent), where the pools keep a call waiting until the API's timeout.
            published = assert_problem(client.post("/v1/events", json={"name": "user.added"}),
                                       503, "PostgreSQL at postgresql://postgres:***@")
    assert "s3cret-pw" not in queues["detail"] + ready["detail"] + published["detail"]
