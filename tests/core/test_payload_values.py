"""Payloads come back as they went in, or are refused; error messages stay short."""

from __future__ import annotations

import math

import pytest

from wrkr import InvalidEvent, Wrkr
from wrkr_memory import MemoryBackend


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_nan_and_infinities_are_refused_naming_where_they_are(bad: float) -> None:
    async with Wrkr(MemoryBackend()) as app:
        await app.subscribe("q", "a.b", lambda event: None)
        with pytest.raises(InvalidEvent, match=r"payload\['rows'\]\[1\]\['x'\]"):
            await app.publish({"name": "a.b", "payload": {"rows": [{}, {"x": bad}]}})
        assert await app.items(queue="q") == []  # nothing half published


async def test_a_none_in_a_payload_is_kept() -> None:
    async with Wrkr(MemoryBackend()) as app:
        await app.subscribe("q", "a.b", lambda event: None)
        await app.publish({"name": "a.b", "payload": {"x": None, "y": [None, 1.5]}})
        [item] = await app.items(queue="q")
        assert item.payload == {"x": None, "y": [None, 1.5]}


async def test_an_error_beside_a_huge_payload_quotes_only_a_few_hundred_characters() -> None:
    async with Wrkr(MemoryBackend()) as app:
        with pytest.raises(InvalidEvent) as raised:
            await app.publish({"name": "a.b", "payload": {"blob": "x" * 5_000_000,
                                                          "bad": object()}})
        assert len(str(raised.value)) < 800
        with pytest.raises(InvalidEvent) as raised:
            await app.publish({"name": "a..b", "payload": {"blob": "x" * 5_000_000}})
        assert len(str(raised.value)) < 800
