"""The opaque cursor of `GET /v1/items`: the offset of the next page, base64-encoded.

Opaque so that clients only hand it back, and the paging may change (to a key) without
breaking them. An offset can skip or repeat an item when items come and go between two
pages; the listing is oldest due first, so new items land on later pages.
"""

from __future__ import annotations

import base64
import binascii

from wrkr.web._problems import Problem

__all__ = ["decode", "encode"]

_PREFIX = "o:"


def encode(offset: int) -> str:
    """Return the cursor of the page starting at `offset`."""
    return base64.urlsafe_b64encode(f"{_PREFIX}{offset}".encode()).decode().rstrip("=")


def decode(cursor: str | None) -> int:
    """Return the offset a cursor stands for (0 for none); raise a 400 `Problem` if bad."""
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    digits = text.removeprefix(_PREFIX)
    well_formed = digits.isascii() and digits.isdigit() and len(digits) <= 12
    if not text.startswith(_PREFIX) or not well_formed:
        raise Problem(400, f"invalid cursor {cursor[:100]!r}: pass back a 'next' value as given")
    return int(digits)
