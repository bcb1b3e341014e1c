"""The ETL worker on PostgreSQL: SIGTERM mid-run, a second run, every valid resource once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import PG_URL

VALID = [{"id": f"r{n}", "name": f"resource {n}", "creation_date": "2026-12-01T09:00:00+00:00"}
         for n in range(30)]
INVALID = [{"id": "no-date", "name": "x"},
           {"id": "bad-date", "name": "y", "creation_date": "yesterday"}]


def _env(tmp_path: Path, schema: str) -> dict[str, str]:
    return {**os.environ, "WRKR_URL": f"{PG_URL}?schema={schema}", "WORKERS": "4",
            "INPUT": str(tmp_path / "resources.json"), "OUTPUT": str(tmp_path / "output.json"),
            "PROCESSING_TIME": "0.1", "DELAY_TIME": "0.05", "FAILURE_RATE": "0.2",
            "MAX_ATTEMPTS": "20"}


def _written(tmp_path: Path) -> list[dict[str, object]]:
    output = tmp_path / "output.json"
    return json.loads(output.read_text()) if output.exists() else []


def _wait_for(tmp_path: Path, count: int, worker: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    # Polling a file another process writes: it raises no signal to await.
    while len(_written(tmp_path)) < count:
        assert worker.poll() is None, worker.communicate()[1]
        assert time.monotonic() < deadline, f"only {len(_written(tmp_path))} written"
        time.sleep(0.05)


def _worker(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "examples.etl_worker"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _terminate(worker: subprocess.Popen[str]) -> None:
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr


@pytest.mark.postgres
def test_sigterm_mid_run_then_a_second_run_writes_every_valid_resource_exactly_once(
        tmp_path: Path, pg_schema: str) -> None:
    env = _env(tmp_path, pg_schema)
    (tmp_path / "resources.json").write_text(json.dumps(VALID + INVALID))
    loaded = subprocess.run([sys.executable, "-m", "examples.etl_worker", "load"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert loaded.returncode == 0, loaded.stderr
    first = _worker(env)
    _wait_for(tmp_path, 5, first)
    _terminate(first)  # mid-run: most resources are still to do
    assert len(_written(tmp_path)) < len(VALID)
    second = _worker(env)
    _wait_for(tmp_path, len(VALID), second)
    _terminate(second)
    ids = [entry["id"] for entry in _written(tmp_path)]
    assert sorted(ids) == sorted(r["id"] for r in VALID)  # each once, none invalid
    assert all(entry["processed"] is True for entry in _written(tmp_path))
    with psycopg.connect(PG_URL) as conn:
        failed = dict(conn.execute(f'SELECT tid, errors->0->>\'message\' FROM "{pg_schema}".items '
                                   "WHERE state = 'failed'").fetchall())
    assert failed == {"no-date": "missing required key(s) ['creation_date']",
                      "bad-date": "invalid creation_date 'yesterday'"}
