"""The `wrkr` commands on a backend, as their user sees them: stdout lines, one-line errors,
exit codes.

A memory:// backend lives in one process, so these commands run on the local PostgreSQL
(a schema per test): most tests call `main([...])` in this process, and a few run the
installed script as a user would, in a process of its own. Worker tests are in
test_cli_worker.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PG_URL
from tests.core._cli_helpers import (
    WAIT,
    assert_one_error_line,
    env,
    lines_of,
    run,
    script,
    wait_for,
    wrkr_script,
)
from tests.core.test_cli_worker import write_module
from wrkr import Fail, State, Wrkr

pytestmark = pytest.mark.postgres

EVENT = "test.cli.user.added"
QUEUES = ("test.cli.crm", "test.cli.mail")
FAILING = "test.cli.charges"  # a queue of its own: its consumer sees no other event
ITEM_ID = re.compile(r"[0-9a-f-]{32,36}")


@pytest.fixture
def url(pg_schema: str) -> str:
    """A schema of this test's own on the local PostgreSQL, both queues subscribed."""
    store = f"{PG_URL}?schema={pg_schema}&pool_size=2"
    asyncio.run(_subscribe(store))
    return store


async def _subscribe(url: str) -> None:
    async with Wrkr.from_url(url) as app:
        for name in QUEUES:
            await app.subscribe(name, "test.cli.#", lambda event: None)


def publish(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> list[str]:
    status, out, err = run(capsys, "publish", EVENT, "--url", url, *args)
    assert status == 0
    assert err == ([] if out else ["wrkr: nothing stored: a pending --once-every item "
                                   "already exists"])
    return out


def rows(out: list[str]) -> list[list[str]]:
    """Return the cells of a table's rows, header left out."""
    return [line.split() for line in out[1:]]


# -- publish -----------------------------------------------------------------------------


def test_publish_prints_one_item_id_per_subscribed_queue(capsys: Any, url: str) -> None:
    out = publish(capsys, url, "--tid", "42", "--payload", '{"plan": "pro"}')
    assert len(out) == len(QUEUES)
    assert all(ITEM_ID.fullmatch(line) for line in out)


def test_publish_to_no_subscriber_prints_no_id_and_says_why(capsys: Any, url: str) -> None:
    assert run(capsys, "publish", "test.other.event", "--url", url) == (
        0, [], ["wrkr: nothing stored: no queue is subscribed to 'test.other.event'"])


def test_publish_once_every_skips_a_pending_duplicate(capsys: Any, url: str) -> None:
    assert len(publish(capsys, url, "--tid", "7", "--once-every", "1 hour")) == 2
    assert publish(capsys, url, "--tid", "7", "--once-every", "1 hour") == []


def test_publish_when_schedules_the_items(capsys: Any, url: str) -> None:
    ids = publish(capsys, url, "--when", "in 2 hours")
    status, out, _ = run(capsys, "items", "--url", url, "--state", "scheduled")
    assert status == 0
    assert {row[0] for row in rows(out)} == set(ids)


def test_publish_when_takes_a_compact_duration(capsys: Any, url: str) -> None:
    ids = publish(capsys, url, "--when", "1h30m")
    _, out, _ = run(capsys, "items", "--url", url, "--state", "scheduled")
    assert {row[0] for row in rows(out)} == set(ids)


@pytest.mark.parametrize("payload", ["{not json", "[1, 2]", '"text"'])
def test_a_bad_payload_is_a_usage_error(capsys: Any, url: str, payload: str) -> None:
    status, out, err = run(capsys, "publish", EVENT, "--url", url, "--payload", payload)
    assert (status, out) == (2, [])
    assert_one_error_line(err, "--payload")
    assert rows(run(capsys, "items", "--url", url)[1]) == []


def test_a_bad_when_is_reported_with_the_value(capsys: Any, url: str) -> None:
    status, out, err = run(capsys, "publish", EVENT, "--url", url, "--when", "someday")
    assert (status, out) == (1, [])
    assert_one_error_line(err, "someday")


def test_a_bad_event_name_is_reported(capsys: Any, url: str) -> None:
    status, _, err = run(capsys, "publish", "bad name", "--url", url)
    assert status == 1
    assert_one_error_line(err, "bad name")


# -- items / get -------------------------------------------------------------------------


def test_items_prints_a_table_with_a_header(capsys: Any, url: str) -> None:
    ids = publish(capsys, url, "--tid", "42")
    status, out, _ = run(capsys, "items", "--url", url)
    assert status == 0
    assert out[0].split() == ["id", "queue", "name", "tid", "state", "due", "attempts"]
    assert sorted(row[:5] for row in rows(out)) == sorted(
        [id_, q, EVENT, "42", "ready"] for id_, q in zip(ids, QUEUES, strict=True))
    assert [row[6] for row in rows(out)] == ["0", "0"]


def test_items_filters_and_limits(capsys: Any, url: str) -> None:
    publish(capsys, url, "--tid", "1")
    publish(capsys, url, "--tid", "2")
    _, out, _ = run(capsys, "items", "--url", url, "--queue", QUEUES[0], "--tid", "2")
    assert [row[3] for row in rows(out)] == ["2"]
    _, out, _ = run(capsys, "items", "--url", url, "--limit", "3")
    assert len(rows(out)) == 3


def test_items_show_fifty_by_default_and_say_how_to_see_more(capsys: Any, url: str) -> None:
    asyncio.run(_publish_many(url, 51))
    status, out, err = run(capsys, "items", "--url", url, "--queue", QUEUES[0])
    assert (status, len(rows(out))) == (0, 50)
    assert err == ["wrkr: more items: add --offset 50 for the next 50"]


def test_items_offset_shows_the_next_page(capsys: Any, url: str) -> None:
    asyncio.run(_publish_many(url, 5))
    pages = [rows(run(capsys, "items", "--url", url, "--queue", QUEUES[0], "--limit", "2",
                      "--offset", offset)[1]) for offset in ("0", "2", "4")]
    assert [[row[3] for row in page] for page in pages] == [["0", "1"], ["2", "3"], ["4"]]


def test_the_last_page_says_nothing_more(capsys: Any, url: str) -> None:
    asyncio.run(_publish_many(url, 2))
    assert run(capsys, "items", "--url", url, "--queue", QUEUES[0], "--limit", "2")[2] == []


async def _publish_many(url: str, count: int) -> None:
    """Publish `count` events due one minute apart, so that their order is their tid's."""
    async with Wrkr.from_url(url) as app:
        await app.publish([{"name": EVENT, "tid": str(n), "when": f"{n + 1}m"}
                           for n in range(count)])


def test_items_json_prints_one_object_per_line(capsys: Any, url: str) -> None:
    publish(capsys, url, "--tid", "42", "--payload", '{"text": "héllo", "n": [1, {"a": null}]}')
    status, out, _ = run(capsys, "items", "--url", url, "--json")
    assert status == 0
    items = [json.loads(line) for line in out]
    assert sorted(item["queue"] for item in items) == sorted(QUEUES)
    assert all(item["payload"] == {"text": "héllo", "n": [1, {"a": None}]} for item in items)
    assert all(item["state"] == "ready" and item["errors"] == [] for item in items)


@pytest.mark.parametrize(("option", "value"),
                         [("--limit", "0"), ("--state", "lost"), ("--offset", "-1")])
def test_a_bad_items_option_is_a_usage_error(
    capsys: Any, url: str, option: str, value: str
) -> None:
    status, out, err = run(capsys, "items", "--url", url, option, value)
    assert (status, out) == (2, [])
    assert_one_error_line(err, option)


def test_get_shows_every_field_with_payload_and_errors(capsys: Any, url: str) -> None:
    item_id = _failed_item(url)
    status, out, _ = run(capsys, "get", item_id, "--url", url)
    assert status == 0
    fields = dict(line.split(":", 1) for line in out if not line.startswith("  "))
    assert fields["id"].strip() == item_id
    assert fields["state"].strip() == "failed"
    assert json.loads(fields["payload"]) == {"plan": "pro"}
    assert re.fullmatch(r"  attempt 1 at \S+Z: Fail: card declined", out[-1])


def test_get_json_holds_the_error_history(capsys: Any, url: str) -> None:
    item_id = _failed_item(url)
    status, out, _ = run(capsys, "get", item_id, "--url", url, "--json")
    assert status == 0
    [line] = out
    item = json.loads(line)
    assert (item["id"], item["state"], item["payload"]) == (item_id, "failed", {"plan": "pro"})
    assert (item["parent"], item["root"]) == (None, item_id)  # published outside a handler
    assert [(e["attempt"], e["type"], e["message"]) for e in item["errors"]] == [
        (1, "Fail", "card declined")]


def test_get_an_unknown_id_is_an_error(capsys: Any, url: str) -> None:
    status, out, err = run(capsys, "get", "f" * 32, "--url", url)
    assert (status, out) == (1, [])
    assert_one_error_line(err, "f" * 32)


# -- cancel / retry / purge ------------------------------------------------------------------


def test_cancel_prints_how_many_items_it_deleted(capsys: Any, url: str) -> None:
    publish(capsys, url, "--tid", "1")
    publish(capsys, url, "--tid", "2")
    assert run(capsys, "cancel", "--url", url, "--tid", "1") == (0, ["2"], [])
    assert run(capsys, "cancel", "--url", url, "--tid", "1") == (0, ["0"], [])
    assert len(rows(run(capsys, "items", "--url", url)[1])) == 2


def test_cancel_without_a_filter_is_a_usage_error(capsys: Any, url: str) -> None:
    publish(capsys, url)
    status, out, err = run(capsys, "cancel", "--url", url)
    assert (status, out) == (2, [])
    assert_one_error_line(err, "--name", "--tid", "--queue")
    assert len(rows(run(capsys, "items", "--url", url)[1])) == 2


def test_retry_moves_a_failed_item_back_to_ready(capsys: Any, url: str) -> None:
    item_id = _failed_item(url)
    assert run(capsys, "retry", item_id, "--url", url) == (0, [f"retried {item_id}"], [])
    _, out, _ = run(capsys, "items", "--url", url, "--state", "ready", "--queue", FAILING)
    assert [row[0] for row in rows(out)] == [item_id]


def test_retry_of_an_item_that_is_not_failed_is_an_error(capsys: Any, url: str) -> None:
    [item_id, _] = publish(capsys, url)
    status, _, err = run(capsys, "retry", item_id, "--url", url)
    assert status == 1
    assert_one_error_line(err, item_id)


def test_purge_deletes_the_failed_items_of_a_queue(capsys: Any, url: str) -> None:
    _failed_item(url)
    publish(capsys, url)
    assert run(capsys, "purge", "--url", url, "--queue", FAILING) == (0, ["1"], [])
    assert rows(run(capsys, "items", "--url", url, "--state", "failed")[1]) == []
    assert len(rows(run(capsys, "items", "--url", url, "--state", "ready")[1])) == 2


def test_purge_older_than_keeps_recent_failures(capsys: Any, url: str) -> None:
    _failed_item(url)
    assert run(capsys, "purge", "--url", url, "--older-than", "1d") == (0, ["0"], [])
    assert len(rows(run(capsys, "items", "--url", url, "--state", "failed")[1])) == 1


def test_purge_of_everything_needs_all(capsys: Any, url: str) -> None:
    _failed_item(url)
    status, out, err = run(capsys, "purge", "--url", url)
    assert (status, out) == (2, [])
    assert_one_error_line(err, "--all")
    assert run(capsys, "purge", "--url", url, "--all") == (0, ["1"], [])


def test_purge_takes_failed_or_done_only(capsys: Any, url: str) -> None:
    status, _, err = run(capsys, "purge", "--url", url, "--all", "--state", "ready")
    assert status == 2
    assert_one_error_line(err, "--state")


async def _fail_one(url: str) -> str:
    """Publish to FAILING only, let a handler raise `Fail`; return the failed item's id."""
    async with Wrkr.from_url(url) as app:

        def refuse(event: object) -> None:
            raise Fail("card declined")

        await app.subscribe(FAILING, "test.failing.charge", refuse)
        [item_id] = await app.publish({"name": "test.failing.charge", "payload": {"plan": "pro"}})
        await app.listen()
        async with asyncio.timeout(WAIT):
            # Polling: the backend's state changes raise no signal a test could await.
            while (await app.get(item_id)).state is not State.FAILED:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        return item_id


def _failed_item(url: str) -> str:
    return asyncio.run(_fail_one(url))


# -- queues / subscriptions / unsubscribe ----------------------------------------------------


def test_queues_counts_items_per_queue_and_state(capsys: Any, url: str) -> None:
    publish(capsys, url)
    publish(capsys, url, "--when", "1 day")
    status, out, _ = run(capsys, "queues", "--url", url)
    assert status == 0
    assert out[0].split() == ["queue", *(state.value for state in State)]
    assert rows(out) == [[name, "1", "1", "0", "0", "0"] for name in sorted(QUEUES)]


def test_queues_lists_subscribed_queues_that_are_empty(capsys: Any, url: str) -> None:
    assert rows(run(capsys, "queues", "--url", url)[1]) == [
        [name, "0", "0", "0", "0", "0"] for name in sorted(QUEUES)]


def test_queues_json(capsys: Any, url: str) -> None:
    publish(capsys, url, "--when", "1 day")
    _, out, _ = run(capsys, "queues", "--url", url, "--json")
    assert [json.loads(line) for line in out] == [
        {"queue": name, "scheduled": 1, "ready": 0, "processing": 0, "done": 0, "failed": 0}
        for name in sorted(QUEUES)]


def test_subscriptions_lists_every_queue_and_pattern(capsys: Any, url: str) -> None:
    asyncio.run(_subscribe_more(url))
    status, out, _ = run(capsys, "subscriptions", "--url", url)
    assert (status, out[0].split()) == (0, ["queue", "pattern"])
    assert rows(out) == [["test.cli.billing", "test.cli.invoice.*"],
                         ["test.cli.crm", "test.cli.#"], ["test.cli.mail", "test.cli.#"]]


def test_subscriptions_of_an_event_are_those_it_reaches(capsys: Any, url: str) -> None:
    asyncio.run(_subscribe_more(url))
    _, out, _ = run(capsys, "subscriptions", "test.cli.invoice.paid", "--url", url, "--json")
    assert [json.loads(line) for line in out] == [
        {"queue": "test.cli.billing", "pattern": "test.cli.invoice.*"},
        {"queue": "test.cli.crm", "pattern": "test.cli.#"},
        {"queue": "test.cli.mail", "pattern": "test.cli.#"}]
    assert rows(run(capsys, "subscriptions", "test.other", "--url", url)[1]) == []


def test_subscriptions_of_a_bad_event_name_is_an_error(capsys: Any, url: str) -> None:
    status, _, err = run(capsys, "subscriptions", "bad name", "--url", url)
    assert status == 1
    assert_one_error_line(err, "bad name")


def test_unsubscribe_stops_routing_and_keeps_queued_items(capsys: Any, url: str) -> None:
    publish(capsys, url)
    assert run(capsys, "unsubscribe", QUEUES[0], "test.cli.#", "--url", url) == (
        0, [f"unsubscribed {QUEUES[0]} from test.cli.# (items already queued stay)"], [])
    assert len(publish(capsys, url)) == 1
    assert [row[0] for row in rows(run(capsys, "subscriptions", "--url", url)[1])] == [
        QUEUES[1]]
    assert [row[1:3] for row in rows(run(capsys, "queues", "--url", url)[1])] == [
        ["0", "1"], ["0", "2"]]


def test_unsubscribe_of_no_such_subscription_names_the_patterns_held(
    capsys: Any, url: str
) -> None:
    status, out, err = run(capsys, "unsubscribe", QUEUES[0], "test.cli.*", "--url", url)
    assert (status, out) == (1, [])
    assert_one_error_line(err, "'test.cli.*'", "its patterns: 'test.cli.#'")


async def _subscribe_more(url: str) -> None:
    async with Wrkr.from_url(url) as app:
        await app.subscribe("test.cli.billing", "test.cli.invoice.*", lambda event: None)


# -- the backend URL ---------------------------------------------------------------------


def test_wrkr_url_names_the_backend_when_url_is_not_given(
    capsys: Any, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WRKR_URL", url)
    status, out, _ = run(capsys, "publish", EVENT)
    assert (status, len(out)) == (0, 2)


# -- in a process of its own, as a user runs it -----------------------------------------------


def test_the_script_publishes_what_another_process_lists(url: str, tmp_path: Path) -> None:
    published = script("publish", EVENT, "--url", url, "--tid", "9", cwd=tmp_path)
    assert (published.returncode, published.stderr) == (0, "")
    listed = script("items", "--url", url, "--json", cwd=tmp_path)
    assert listed.returncode == 0
    assert sorted(json.loads(line)["id"] for line in listed.stdout.splitlines()) == sorted(
        published.stdout.split())


def test_python_dash_m_wrkr_runs_the_command(url: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "wrkr", "queues", "--url", url],
                          capture_output=True, text=True, timeout=WAIT, cwd=tmp_path, env=env(),
                          check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["queue", *sorted(QUEUES)]



def test_a_worker_handles_what_another_process_publishes(url: str, tmp_path: Path) -> None:
    module = write_module(tmp_path)
    with subprocess.Popen([wrkr_script(), "worker", f"{module}:app", "--url", url],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=tmp_path, env=env()) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        try:
            out, _ = lines_of(proc.stdout)
            err, _ = lines_of(proc.stderr)
            banner = "".join(wait_for(err, "started"))
            assert f"PostgresBackend  {url}" in banner
            published = script("publish", "test.cli.ping", "--tid", "7", "--url", url,
                               cwd=tmp_path)
            assert published.returncode == 0
            assert wait_for(out, "ping")[-1] == "ping 7\n"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=WAIT) == 0
        finally:
            proc.kill()
