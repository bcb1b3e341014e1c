"""The OpenAPI document checked from outside: schemathesis against a live server.

Every operation of /openapi.json gets generated requests; no answer may be a 5xx, and
every answer must have a declared status, content type and headers, and match its schema.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.specs.openapi import checks as openapi_checks

from tests.backends._mongo_servers import fresh_database_blocking
from tests.conftest import PG_URL, new_schema
from tests.core._cli_helpers import WAIT, env, lines_of, wait_for, wrkr_script
from tests.web._live import FLOW_STEPS, demo_app, family_app, live_server
from wrkr import Capability, Wrkr

EXAMPLES = 40
SEED: list[dict[str, Any]] = [{"name": "user.added", "tid": "1"},
                              {"name": "report.due", "when": "in 1 hour"}]
NEEDS = {"/v1/schedules": Capability.SCHEDULES,  # the paths a backend may lack (then 501)
         "/v1/flows/{id}": Capability.FLOWS, "/v1/items/{id}/lineage": Capability.LINEAGE}
CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]


@dataclass
class Target:
    """A live server's base URL, what its backend can do, and ids that exist there (the
    generated requests would only ever find unknown ones), by path parameter."""

    url: str
    capabilities: frozenset[Capability]
    known: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture(scope="module", params=[
    pytest.param("memory", id="memory"), pytest.param("sqlite", id="sqlite-wrkr-serve"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mongodb", id="mongodb", marks=pytest.mark.mongodb)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[Target]:
    """A live server with items in several states: in a thread (memory, PostgreSQL,
    MongoDB on the wire server), or `wrkr serve` in a process of its own (SQLite)."""
    if request.param == "memory":
        yield from _serve(f"memory://schemathesis-{secrets.token_hex(4)}")  # shared by both
    elif request.param == "sqlite":
        yield from _wrkr_serve(tmp_path_factory.mktemp("schemathesis"))
    elif request.param == "mongodb":
        for url in fresh_database_blocking(request.getfixturevalue("wire_server_url")):
            yield from _serve(url)
    else:
        for schema in new_schema(request):
            yield from _serve(f"{PG_URL}?schema={schema}")


def _serve(url: str) -> Iterator[Target]:
    app = demo_app(url, archive="keep")
    family = family_app(url, archive="keep")  # lineage trees and flows beside the demo
    with live_server(app, worker=family) as live:
        ids = live.call(lambda: app.publish([*SEED, {"name": "user.added",
                                                     "payload": {"fail": "x"}},
                                             {"name": "order.placed", "tid": "o1"}]))
        flows = [live.call(partial(family.start_flow, "test.web.flow", steps=FLOW_STEPS,
                                   payload=payload)) for payload in ({}, {"fail": "no"})]
        yield Target(live.url, app.backend.capabilities, {"items": ids, "flows": flows})


def _wrkr_serve(directory: Path) -> Iterator[Target]:
    # In a process of its own: the SQLite backend's thread draws from `random`, which
    # hypothesis reports as a flaky strategy when it happens in the test's process.
    url = f"sqlite:///{directory / 'wrkr.db'}"
    capabilities, ids = asyncio.run(_seed(url))
    process = subprocess.Popen([wrkr_script(), "serve", "--url", url, "--port", "0"],
                               cwd=directory, env=env(), stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    try:
        lines, _ = lines_of(process.stderr)
        banner = wait_for(lines, "wrkr serve: http://")[-1]
        base = re.search(r"http://\S+?(?=/ )", banner)
        assert base is not None, banner
        yield Target(base.group(0), capabilities, {"items": ids})
    finally:
        process.terminate()
        process.wait(WAIT)
        process.stderr.close()


async def _seed(url: str) -> tuple[frozenset[Capability], list[str]]:
    async with Wrkr.from_url(url) as app:
        await app.backend.subscribe("test.web.mail", "user.*")
        await app.backend.subscribe("test.web.reports", "report.due")
        return app.backend.capabilities, await app.publish(SEED)


def test_the_api_keeps_to_its_openapi_document(server: Target) -> None:
    # Each operation in turn, by hand: schemathesis's pytest plugin (from_fixture) does not
    # run on pytest 9.
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    failures, checked = [], []
    lacking = {path for path, capability in NEEDS.items()
               if capability not in server.capabilities}
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err raises here: a failure
        if operation.path in lacking:  # a 501 by design, tested in test_api
            continue
        checked.append(f"{operation.method.upper()} {operation.path}")
        try:
            _check(operation.as_strategy())
        except Exception as exc:  # report every failing operation, not only the first
            failures.append(f"{checked[-1]}: {_described(exc)}")
    assert len(checked) >= 14 - len(lacking), checked
    assert not failures, "\n\n".join(failures)


def test_known_items_and_flows_keep_to_the_openapi_document(server: Target) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    calls = [(f"/v1/{kind}/{{id}}{tail}", known) for kind, tail in
             (("items", ""), ("items", "/lineage"), ("flows", ""))
             for known in server.known.get(kind, [])]
    assert len(calls) >= 2 * len(server.known.get("items", [])), calls
    for path, known in calls:
        if path in _lacking(server):
            continue
        operation = schema[path]["GET"]
        response = operation.Case(path_parameters={"id": known}).call_and_validate(
            checks=CHECKS)
        assert response.status_code == 200, (path, known, response.text)


def _lacking(server: Target) -> set[str]:
    return {path for path, capability in NEEDS.items() if capability not in server.capabilities}


def _described(error: BaseException) -> str:
    """The error and, for a group (hypothesis's flaky reports), each of its members."""
    inner = getattr(error, "exceptions", ())
    return "\n".join([str(error), *(f"  - {_described(sub)}" for sub in inner)])


def _check(strategy: hypothesis.strategies.SearchStrategy[schemathesis.Case[Any]]) -> None:
    @hypothesis.given(strategy)
    @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    def each(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(checks=CHECKS)

    each()
