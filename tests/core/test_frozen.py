"""`fast_builder`: what it builds is what the frozen dataclass's constructor builds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from wrkr import Event
from wrkr.backend import fast_builder


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    count: int = 0
    tags: list[str] = field(default_factory=list)


new_sample = fast_builder(Sample)


def test_positional_and_keyword_arguments_build_equal_instances() -> None:
    assert new_sample("a", 2, ["x"]) == Sample("a", 2, ["x"])
    assert new_sample(name="a", tags=["x"]) == Sample("a", tags=["x"])
    assert type(new_sample("a")) is Sample


def test_defaults_apply_and_each_instance_gets_its_own_factory_value() -> None:
    first, second = new_sample("a"), new_sample("b")
    assert (first.count, first.tags) == (0, [])
    assert first.tags is not second.tags


def test_built_instances_stay_frozen_and_print_like_the_class() -> None:
    event = fast_builder(Event)("user.added", "7")
    assert event == Event("user.added", "7")
    assert repr(event) == repr(Event("user.added", "7"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.name = "other"  # type: ignore[misc]


def test_wrong_arguments_raise_type_error_as_the_constructor_would() -> None:
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'name'"):
        new_sample()
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        new_sample("a", colour="red")


def test_a_class_with_init_logic_is_refused() -> None:
    @dataclass(frozen=True, slots=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            assert self.value >= 0

    with pytest.raises(TypeError, match="cannot build Checked: it has init logic"):
        fast_builder(Checked)
