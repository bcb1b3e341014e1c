"""Dataclass, pydantic and msgspec models as payloads, in and out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import msgspec
import pydantic
import pytest

from tests._waits import until
from wrkr import Event, InvalidConfig, InvalidEvent, State, Wrkr
from wrkr_memory import MemoryBackend

WAIT = 5.0


@dataclass
class SignupData:
    user: str
    plan: str = "free"


class SignupModel(pydantic.BaseModel):
    user: str
    plan: str = "free"


class SignupStruct(msgspec.Struct):
    user: str
    plan: str = "free"


MODELS: list[Any] = [SignupData, SignupModel, SignupStruct]


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
async def test_a_model_instance_is_published_as_a_json_object(model: Any) -> None:
    async with Wrkr(MemoryBackend()) as app:
        await app.subscribe("q", "a.b", lambda event: None)
        await app.publish({"name": "a.b", "payload": model(user="ann", plan="pro")})
        [item] = await app.items(queue="q")
    assert item.payload == {"user": "ann", "plan": "pro"}


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
async def test_a_subscription_with_a_model_hands_the_handler_that_model(model: Any) -> None:
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(event: Event) -> None:
        got.put_nowait(event.payload)

    async with Wrkr(MemoryBackend()) as app:
        await app.subscribe("q", "a.b", handler, payload=model)
        await app.listen()
        await app.publish({"name": "a.b", "payload": {"user": "ann"}})
        payload = await asyncio.wait_for(got.get(), WAIT)
    assert isinstance(payload, model)
    assert (payload.user, payload.plan) == ("ann", "free")


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
async def test_a_payload_that_does_not_validate_is_failed_at_once_saying_why(
    model: Any,
) -> None:
    calls = 0

    async def handler(event: Event) -> None:
        nonlocal calls
        calls += 1

    async with Wrkr(MemoryBackend()) as app:
        await app.subscribe("q", "a.b", handler, payload=model)
        await app.listen()
        [item_id] = await app.publish({"name": "a.b", "payload": {"plan": "pro"}})

        async def failed() -> bool:
            return (await app.get(item_id)).state is State.FAILED

        await until(failed, "the item is failed")
        event = await app.get(item_id)
    assert calls == 0
    [error] = event.errors
    assert error.message.startswith(f"payload does not validate as {model.__name__}")
    assert "user" in error.message


async def test_a_payload_model_must_be_a_model_class() -> None:
    async with Wrkr(MemoryBackend()) as app:
        with pytest.raises(InvalidConfig, match="invalid payload model"):
            await app.subscribe("q", "a.b", lambda event: None, payload=dict)


async def test_a_payload_that_is_no_dict_and_no_model_is_refused() -> None:
    async with Wrkr(MemoryBackend()) as app:
        with pytest.raises(InvalidEvent, match="expected a dict, or a dataclass"):
            await app.publish({"name": "a.b", "payload": ["not", "an", "object"]})
