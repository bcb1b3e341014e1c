"""Reach the local services and programs a test needs: fail in CI when one is missing, skip
elsewhere (the reason shows in pytest's summary)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import NoReturn

import pytest


def service_is_up(port: int, host: str = "127.0.0.1") -> bool:
    """Tell whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def missing(reason: str) -> NoReturn:
    """Fail the test when CI is set (a missing dependency is a broken CI), else skip it."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def require_service(name: str, port: int) -> None:
    """Fail (under CI) or skip (elsewhere, with the reason) when `name` is not on `port`."""
    if not service_is_up(port):
        missing(f"{name} is not reachable on 127.0.0.1:{port} (`make test` starts it)")


def require_program(path: str, installer: str) -> None:
    """Fail (under CI) or skip (elsewhere) when the executable `path` is not installed."""
    if not os.access(Path(path), os.X_OK):
        missing(f"{path} is missing ({installer} installs it; `make test` runs it)")
