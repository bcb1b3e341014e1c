"""The topic-matching cases every pattern translation must agree on (AMQP topic rules).

`*` is exactly one dot-separated word, `#` zero or more; everything else is literal.
The core's matcher is checked against this table, and so is every backend that
translates patterns into its own language (PostgreSQL regexes, MQTT filters, ...)::

    @pytest.mark.parametrize(("pattern", "name", "expected"), TOPIC_CASES)
    def test_my_translation(pattern, name, expected): ...
"""

from __future__ import annotations

__all__ = ["TOPIC_CASES"]

TOPIC_CASES: list[tuple[str, str, bool]] = [
    ("a.b", "a.b", True),
    ("a.b", "a.b.c", False),
    ("a.b", "a", False),
    ("a.*", "a.b", True),
    ("a.*", "a", False),
    ("a.*", "a.b.c", False),
    ("*", "a", True),
    ("*", "a.b", False),
    ("*.b.*", "x.b.y", True),
    ("*.b.*", "b.y", False),
    ("*.*", "a.b", True),
    ("a.#", "a", True),
    ("a.#", "a.b", True),
    ("a.#", "a.b.c", True),
    ("a.#", "ab", False),
    ("#", "a", True),
    ("#", "a.b.c", True),
    ("#.c", "c", True),
    ("#.c", "a.b.c", True),
    ("#.c", "a.b.cd", False),
    ("a.#.c", "a.c", True),
    ("a.#.c", "a.x.y.c", True),
    ("a.#.c", "a.x.y", False),
    ("a.*.#", "a", False),
    ("a.*.#", "a.b", True),
    ("a.*.#", "a.b.c.d", True),
    ("#.#", "a", True),
    ("a-b.*", "a-b.c_d", True),
    ("a_b.*", "a-b.c", False),
    ("A.*", "a.b", False),  # case matters
]
