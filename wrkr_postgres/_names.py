"""Names the backend builds from configuration: the schema, its NOTIFY channel, regexes."""

from __future__ import annotations

import re

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_schema(schema: object) -> str:
    """Return `schema` if it is a plain lower-case identifier, else raise ValueError.

    Plain names only, so the schema never needs case-sensitive quoting by the people
    who query it, and its NOTIFY channel name stays within PostgreSQL's 63 bytes.
    """
    if not isinstance(schema, str) or not _SCHEMA.fullmatch(schema):
        raise ValueError(f"invalid PostgreSQL schema name {schema!r} for wrkr: expected "
                         "lower-case letters, digits and '_', not starting with a digit, "
                         "at most 63 characters")
    return schema


def quote_schema(schema: str) -> str:
    """Return the schema as a quoted SQL identifier."""
    return '"' + check_schema(schema) + '"'


def channel_for(schema: str) -> str:
    """Return the LISTEN / NOTIFY channel of a schema (one per schema, payload = queue)."""
    return f"wrkr_{check_schema(schema)}"[:63]


def pattern_regex(pattern: str) -> str | None:
    """Return the POSIX regex PostgreSQL matches against ``'.' || name``; None if exact.

    Each segment of the pattern eats its leading dot: a literal becomes ``\\.literal``,
    ``*`` one segment ``\\.[^.]+`` and ``#`` zero or more ``(\\.[^.]+)*``, so `#`
    matching zero segments needs no special case. Names and patterns hold only
    letters, digits, ``_`` and ``-`` (checked by the core), none special in a regex.
    """
    segments = pattern.split(".")
    if "*" not in segments and "#" not in segments:
        return None
    pieces = {"*": r"\.[^.]+", "#": r"(\.[^.]+)*"}
    return "^" + "".join(pieces.get(segment, r"\." + segment) for segment in segments) + "$"
