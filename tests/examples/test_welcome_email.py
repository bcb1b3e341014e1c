"""The welcome-email example runs as a user would run it, and finishes by itself."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run_example(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "examples.welcome_email", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
        check=False,
    )


def test_sign_up_flow_welcomes_audits_and_follows_up_in_order() -> None:
    result = run_example("--follow-up-in", "1 second", env={"WRKR_URL": "memory://"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "[email] welcome, user 42 <ada@example.com>!" in lines
    assert "[audit] welcome email sent to user 42" in lines
    assert "[email] user 42, how is your pro plan going?" in lines
    assert lines.index("[email] welcome, user 42 <ada@example.com>!") < lines.index(
        "[email] user 42, how is your pro plan going?")
    assert lines[-1] == "[app] done"



@pytest.mark.postgres
def test_example_runs_unchanged_on_postgres(pg_schema: str) -> None:
    url = f"postgresql://postgres@127.0.0.1:5432/test?schema={pg_schema}"
    result = run_example("--follow-up-in", "1 second", env={"WRKR_URL": url})
    assert result.returncode == 0, result.stderr
    assert "[email] user 42, how is your pro plan going?" in result.stdout.splitlines()


@pytest.mark.rabbitmq
def test_example_runs_unchanged_on_rabbitmq(rabbitmq_prefix: str) -> None:
    url = f"amqp://guest:guest@127.0.0.1:5672/?prefix={rabbitmq_prefix}"
    result = run_example("--follow-up-in", "1 second", env={"WRKR_URL": url})
    assert result.returncode == 0, result.stderr
    assert "[email] user 42, how is your pro plan going?" in result.stdout.splitlines()
