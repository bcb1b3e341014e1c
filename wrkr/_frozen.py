"""Build frozen, slotted dataclass instances at the cost of mutable ones.

A frozen dataclass's `__init__` sets each field through `object.__setattr__` (plain
assignment is what freezing forbids): about 0.17 µs a field, 2.2 µs for an `Event`,
and every delivery builds two events and an item. A mutable twin with the very same
slots sets its fields with plain stores; its instance then becomes an instance of the
frozen class by `__class__` assignment, which CPython allows between classes of one
layout. What comes out is an ordinary instance of the frozen class: it compares,
hashes, prints and refuses assignment like any other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_UNSET: Any = object()
"""Stands for an argument not given, whose field has a default factory."""


def fast_builder(cls: type[T]) -> Callable[..., T]:
    """Return a function that takes `cls`'s constructor arguments and builds a `cls`.

    The function is generated with `cls`'s own signature (as dataclasses generate
    `__init__`), so one Python frame builds the instance: no `*args, **kwargs` wrapper
    around the twin's `__init__`.

    Raises:
        TypeError: `cls` is not a slotted dataclass of plain fields (no `__post_init__`,
            no `init=False` or keyword-only field), so a twin could not build it faithfully.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if hasattr(cls, "__post_init__") or not all(field.init and not field.kw_only
                                                for field in fields):
        raise TypeError(f"fast_builder() cannot build {cls.__name__}: it has init logic")
    twin: type[Any] = dataclasses.make_dataclass(
        f"_Mutable{cls.__name__}", [(field.name, field.type) for field in fields], slots=True)
    if twin.__slots__ != getattr(cls, "__slots__", None):
        raise TypeError(f"fast_builder() cannot build {cls.__name__}: not slotted alike")
    namespace: dict[str, Any] = {"_new": object.__new__, "_twin": twin, "_cls": cls,
                                 "_UNSET": _UNSET}
    parameters, lines = [], []
    for field in fields:
        name = field.name
        if field.default is not dataclasses.MISSING:
            namespace[f"_default_{name}"] = field.default
            parameters.append(f"{name}=_default_{name}")
        elif field.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{name}"] = field.default_factory
            parameters.append(f"{name}=_UNSET")
            lines.append(f"    if {name} is _UNSET: {name} = _factory_{name}()")
        else:
            parameters.append(name)
    lines.append("    self = _new(_twin)")
    lines.extend(f"    self.{field.name} = {field.name}" for field in fields)
    lines.append("    self.__class__ = _cls  # the layouts match: checked above")
    lines.append("    return self")
    source = f"def build({', '.join(parameters)}):\n" + "\n".join(lines)
    exec(source, namespace)  # from field names only, as dataclasses builds `__init__`
    build: Callable[..., T] = namespace["build"]
    build.__doc__ = f"Build a {cls.__name__}, as `{cls.__name__}(...)` would, but faster."
    return build
