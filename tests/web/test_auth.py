"""Safe by default: the bearer token, the open probes, and no bind beyond loopback without one."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.core._cli_helpers import WAIT, env, lines_of, run, wait_for, wrkr_script
from tests.web._live import demo_app, live_server
from tests.web.test_api import assert_problem
from wrkr import InvalidConfig
from wrkr.web import asgi
from wrkr.web._server import is_loopback

TOKEN = "t0ken-for-tests"


@pytest.fixture
def secured() -> Iterator[httpx.Client]:
    with live_server(demo_app(), token=TOKEN) as live, \
            httpx.Client(base_url=live.url, timeout=10.0) as client:
        yield client


@pytest.mark.parametrize("path", ["/v1/items", "/v1/queues", "/metrics", "/openapi.json"])
def test_without_a_token_the_api_is_a_401(secured: httpx.Client, path: str) -> None:
    response = secured.get(path)
    assert_problem(response, 401, "no bearer token")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", TOKEN,
                                    f"Basic {TOKEN}", "Bearer"])
def test_a_wrong_token_is_a_401(secured: httpx.Client, header: str) -> None:
    assert_problem(secured.get("/v1/items", headers={"authorization": header}), 401,
                   "wrong bearer token")
    assert_problem(secured.post("/v1/events", json={"name": "user.added"},
                                headers={"authorization": header}), 401)


def test_the_right_token_opens_everything(secured: httpx.Client) -> None:
    auth = {"authorization": f"Bearer {TOKEN}"}
    assert secured.post("/v1/events", json={"name": "user.added"}, headers=auth
                        ).status_code == 201
    assert secured.get("/v1/items", headers=auth).status_code == 200
    assert "wrkr_published_total" in secured.get("/metrics", headers=auth).text


def test_probes_and_the_dashboard_page_need_no_token(secured: httpx.Client) -> None:
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/readyz").status_code == 200
    page = secured.get("/")
    assert page.status_code == 200
    assert "<title>wrkr</title>" in page.text
    assert secured.get("/static/app.js").status_code == 200


def test_the_openapi_document_says_a_token_is_needed(secured: httpx.Client) -> None:
    document = secured.get("/openapi.json", headers={"authorization": f"Bearer {TOKEN}"}).json()
    assert document["security"] == [{"bearer": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []


@pytest.mark.parametrize("token", ["short", "has a space", "tab\there!!", 12345678])
def test_a_weak_or_odd_token_is_refused(token: object) -> None:
    with pytest.raises(InvalidConfig, match="invalid token"):
        asgi(demo_app(), token=token)  # type: ignore[arg-type]


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LOCALHOST", True), ("0.0.0.0", False), ("::", False),
    ("192.168.1.5", False), ("example.com", False), ("", False),
])
def test_loopback_is_127_8_and_ip6_1_and_localhost(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("argv", [
    ["serve", "--host", "0.0.0.0"], ["serve", "--host", "::", "--port", "9"],
    ["serve", "--host", "10.1.2.3"], ["worker", "x:app", "--http", "0.0.0.0:9100"],
])
def test_a_non_loopback_bind_without_a_token_exits_2_saying_why(
    capsys: pytest.CaptureFixture[str], argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WRKR_TOKEN", raising=False)
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == []
    assert len(err) == 1, err
    assert re.match(r"wrkr: error: refusing to listen on --(host|http) \S+ without a token: ",
                    err[0]), err[0]


def test_wrkr_serve_with_a_token_behind_a_prefix_answers_only_with_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wrkr.db'}"
    process = subprocess.Popen(
        [wrkr_script(), "serve", "--url", url, "--port", "0", "--root-path", "/ops"],
        cwd=tmp_path,
        env=env(WRKR_TOKEN=TOKEN), stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        lines, _ = lines_of(process.stderr)
        banner = wait_for(lines, "wrkr serve: http://")[-1]
        base = re.search(r"http://\S+?/", banner)  # what a proxy that strips /ops reaches
        assert base is not None, banner
        assert f"{base.group(0)}ops/ " in banner
        with httpx.Client(base_url=base.group(0), timeout=WAIT) as client:
            assert client.get("/v1/queues").status_code == 401
            assert client.get("/v1/queues", headers={"authorization": f"Bearer {TOKEN}"}
                              ).json() == {"queues": []}
            assert client.get("/readyz").json() == {"status": "ready"}
            assert '<base href="/ops/">' in client.get("/").text
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT) == 0
    finally:
        process.kill()
        process.wait(WAIT)
        if process.stderr is not None:
            process.stderr.close()


@pytest.mark.parametrize(("host", "status"), [
    ("evil.example", 403), ("evil.example:80", 403), ("10.0.0.1", 403),
    ("localhost", 200), ("127.0.0.1:9", 200), ("[::1]:8080", 200),
])
def test_a_loopback_server_answers_only_to_a_loopback_host(host: str, status: int) -> None:
    with live_server(demo_app(), loopback_only=True) as live, \
            httpx.Client(base_url=live.url, timeout=10.0) as client:
        response = client.get("/v1/queues", headers={"host": host})
        assert response.status_code == status, response.text
        if status == 403:
            assert_problem(response, 403, "loopback Host")
