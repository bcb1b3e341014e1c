"""Reach the local services a test needs: fail in CI when one is missing, skip elsewhere."""

from __future__ import annotations

import os
import socket

import pytest


def service_is_up(port: int, host: str = "127.0.0.1") -> bool:
    """Tell whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, port: int) -> None:
    """Fail (under CI) or skip (elsewhere, with the reason) when `name` is not on `port`."""
    if service_is_up(port):
        return
    reason = f"{name} is not reachable on 127.0.0.1:{port} (`make test` starts it)"
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
