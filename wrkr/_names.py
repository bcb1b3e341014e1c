"""Validation of event names, queue names and subscription patterns; topic matching.

Patterns follow AMQP topic rules: segments split on dots, `*` matches exactly one
segment, `#` matches zero or more.
"""

from __future__ import annotations

import functools
import re

from wrkr._errors import InvalidEvent, quote

MAX_NAME_LENGTH = 200
_SEGMENT = r"[A-Za-z0-9_-]+"
_NAME = re.compile(rf"{_SEGMENT}(?:\.{_SEGMENT})*")
_PATTERN_SEGMENT = re.compile(rf"{_SEGMENT}|\*|#")
_QUEUE = re.compile(r"[A-Za-z0-9_:-]+(?:\.[A-Za-z0-9_:-]+)*")
_KNOWN_NAMES: set[str] = set()
"""Event names that passed `check_name`: publishers reuse a few, so the regex runs once each."""
_MAX_KNOWN = 10_000


def check_name(name: object) -> str:
    """Return `name` if it is a valid event name, else raise `InvalidEvent` naming it."""
    if type(name) is str and name in _KNOWN_NAMES:
        return name
    if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise InvalidEvent(
            f"invalid event name {quote(name)}: expected dot-separated segments of letters, "
            f"digits, '_' or '-' (at most {MAX_NAME_LENGTH} characters)"
        )
    if type(name) is str:
        if len(_KNOWN_NAMES) >= _MAX_KNOWN:
            _KNOWN_NAMES.clear()
        _KNOWN_NAMES.add(name)
    return name


def check_queue(queue: object) -> str:
    """Return `queue` if it is a valid queue name, else raise `InvalidEvent` naming it."""
    if not isinstance(queue, str) or not _QUEUE.fullmatch(queue) or len(queue) > MAX_NAME_LENGTH:
        raise InvalidEvent(
            f"invalid queue name {quote(queue)}: expected dot-separated segments of letters, "
            f"digits, '_', '-' or ':' (at most {MAX_NAME_LENGTH} characters)"
        )
    return queue


def check_pattern(pattern: object) -> str:
    """Return `pattern` if it is a valid topic pattern, else raise `InvalidEvent` naming it."""
    ok = isinstance(pattern, str) and 0 < len(pattern) <= MAX_NAME_LENGTH and all(
        _PATTERN_SEGMENT.fullmatch(segment) for segment in pattern.split(".")
    )
    if not ok:
        raise InvalidEvent(
            f"invalid event pattern {quote(pattern)}: expected dot-separated segments of letters, "
            "digits, '_' or '-', or the wildcards '*' (one segment) and '#' (zero or more)"
        )
    return str(pattern)


def is_wildcard(pattern: str) -> bool:
    """Tell whether `pattern` uses `*` or `#`."""
    return any(segment in ("*", "#") for segment in pattern.split("."))


@functools.lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    for segment in pattern.split("."):
        if segment == "#":
            parts.append(r"(?:[^.]+(?:\.[^.]+)*)?")
        elif segment == "*":
            parts.append(r"[^.]+")
        else:
            parts.append(re.escape(segment))
    regex = r"\.".join(parts)
    # `#` may match zero segments, taking one of its neighbouring dots with it.
    regex = regex.replace(r"\.(?:[^.]+(?:\.[^.]+)*)?", r"(?:\.[^.]+)*")
    regex = regex.replace(r"(?:[^.]+(?:\.[^.]+)*)?\.", r"(?:[^.]+\.)*")
    return re.compile(regex)


def matches(pattern: str, name: str) -> bool:
    """Tell whether event `name` matches topic `pattern` (AMQP rules)."""
    if not is_wildcard(pattern):
        return pattern == name
    return _compile(pattern).fullmatch(name) is not None
