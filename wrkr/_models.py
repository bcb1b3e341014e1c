"""Payload models: dataclass, pydantic and msgspec instances in, validated models out.

Neither pydantic nor msgspec is a dependency: a model class is recognised by what it
offers (`model_validate` and `model_dump` for pydantic v2, `msgspec.Struct` for msgspec,
`dataclasses.is_dataclass` for dataclasses), and msgspec is imported only when a
payload is one of its Structs.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

from wrkr._errors import InvalidConfig, quote

__all__ = ["as_payload_dict", "check_model", "to_model"]


def _is_struct(kind: type) -> bool:
    msgspec = sys.modules.get("msgspec")
    return msgspec is not None and isinstance(kind, type) and issubclass(kind, msgspec.Struct)


def as_payload_dict(value: object) -> dict[str, Any] | None:
    """Return a model instance as a JSON-ready dict, or None if `value` is no model."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)
    if dump is not None and hasattr(type(value), "model_validate"):
        data = dump(mode="json")
        return data if isinstance(data, dict) else None
    if _is_struct(type(value)):
        data = sys.modules["msgspec"].to_builtins(value)
        return data if isinstance(data, dict) else None
    return None


def check_model(model: object) -> type:
    """Return `model` if it is a dataclass, pydantic or msgspec model class."""
    if isinstance(model, type) and (dataclasses.is_dataclass(model)
                                    or hasattr(model, "model_validate") or _is_struct(model)):
        return model
    raise InvalidConfig(f"invalid payload model {quote(model)}: expected a dataclass, a "
                        "pydantic model or a msgspec Struct class")


def to_model(model: type, payload: dict[str, Any]) -> Any:
    """Build a `model` from a decoded payload.

    Raises:
        ValueError: the payload does not validate (pydantic's and msgspec's errors are
            ValueErrors; a dataclass's missing or unknown fields become one).
    """
    validate = getattr(model, "model_validate", None)
    if validate is not None:
        return validate(payload)
    if _is_struct(model):
        return sys.modules["msgspec"].convert(payload, model)
    try:
        return model(**payload)
    except TypeError as exc:
        raise ValueError(str(exc)) from exc
