"""`copy_id`: the rule by which a broker's publisher and consumers name each queue's copy."""

from __future__ import annotations

from pathlib import Path

from wrkr.backend import copy_id, new_item_id

WIRE_FORMAT = Path(__file__).resolve().parents[2] / "docs" / "wire-format.md"


def test_copy_id_gives_the_example_of_the_wire_format() -> None:
    example = copy_id("0" * 31 + "1", "billing")
    assert example == "94ddc84c2e95b62a4a14af803af3f1ff"
    assert example in WIRE_FORMAT.read_text()


def test_copies_of_one_message_get_different_ids_of_32_hex_digits() -> None:
    message_id = new_item_id()
    ids = {copy_id(message_id, queue) for queue in ("a", "b", "a.b", "b.a")}
    assert len(ids) == 4
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert message_id not in ids
