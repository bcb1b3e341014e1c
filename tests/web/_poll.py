"""Wait, over HTTP, until an item reaches a state (a bounded poll: the state is only
observable by asking)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx2 as httpx

WAIT = 10.0


def wait_for_state(client: httpx.Client, item_id: str, state: str) -> dict[str, Any]:
    """Return the item once `GET /v1/items/{id}` shows `state`; fail after `WAIT` s."""
    deadline = time.monotonic() + WAIT
    seen = None
    while time.monotonic() < deadline:
        response = client.get(f"/v1/items/{item_id}")
        seen = response.json()
        if response.status_code == 200 and seen["state"] == state:
            return dict(seen)
        time.sleep(0.02)
    raise AssertionError(f"item {item_id} not {state} after {WAIT}s: {seen}")


def wait_for_json(client: httpx.Client, path: str,
                  done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Return the body of `GET path` once `done(body)` holds; fail after `WAIT` s."""
    deadline = time.monotonic() + WAIT
    seen: Any = None
    while time.monotonic() < deadline:
        response = client.get(path)
        seen = response.json()
        if response.status_code == 200 and done(seen):
            return dict(seen)
        time.sleep(0.02)
    raise AssertionError(f"GET {path} not as awaited after {WAIT}s: {seen}")
