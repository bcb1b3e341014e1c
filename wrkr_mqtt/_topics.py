"""Where wrkr's names live on an MQTT broker: topics, filters, client ids.

Event names map to topics under the namespace's root: ``.`` -> ``/``, so the event
``user.added`` is the topic ``wrkr/user/added``. Patterns map to topic filters:
``*`` -> ``+`` (one level), ``#`` -> ``#`` (zero or more). MQTT allows ``#`` only as
the last level, so a pattern with ``#`` earlier (``#.done``) subscribes the broader
filter cut at its first ``#`` (``wrkr/#``) and the consumer drops what the pattern
itself does not match (see `accepts`). A wrkr queue is a shared subscription
``$share/<queue>/<filter>``: its sessions compete for the messages.

wrkr's own topics sit beside the root, never under it, so no event filter reaches them:
``{p}.direct/<queue>`` (one queue's items: retries, given-back and recounted ones),
``{p}.failed/<queue>``, ``{p}.subscriptions/<queue>/<pattern in hex>`` (retained
subscription records) and ``{p}.slots/<queue>/<n>`` (retained session presence).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from wrkr import InvalidConfig
from wrkr.backend import matches

#: MQTT 5 subscription identifiers run from 1 to 268,435,455; 1 is the direct topic's.
DIRECT_ID = 1
_IDS = 268_435_454


def mqtt_filter(pattern: str) -> str:
    """Return the MQTT filter (without root) that carries every name `pattern` matches."""
    words: list[str] = []
    for word in pattern.split("."):
        if word == "#":
            words.append("#")
            break
        words.append("+" if word == "*" else word)
    return "/".join(words)


def accepts(pattern: str, name: str) -> bool:
    """Tell whether a message named `name`, received through `pattern`'s filter, is meant
    for the pattern (False for the extras a cut filter lets through)."""
    return matches(pattern, name)


def subscription_id(pattern: str) -> int:
    """Return the MQTT 5 subscription identifier of `pattern` (the same in every process)."""
    return 2 + zlib.crc32(pattern.encode()) % _IDS


@dataclass(frozen=True, slots=True)
class MQTTTopics:
    """The topics and client ids of one namespace (`prefix`).

    Raises:
        InvalidConfig: `prefix` is not one plain topic level.
    """

    prefix: str

    def __post_init__(self) -> None:
        bad = not self.prefix or any(c in self.prefix for c in "/+#$") or "\0" in self.prefix
        if bad:
            raise InvalidConfig(f"MQTT prefix {self.prefix!r} must be one non-empty topic "
                                "level without '/', '+', '#' or '$'")

    def event(self, name: str) -> str:
        """Return the topic of events called `name`."""
        return f"{self.prefix}/{name.replace('.', '/')}"

    def name_of(self, topic: str) -> str | None:
        """Return the event name of an event topic, or None for a topic outside the root."""
        root = f"{self.prefix}/"
        if not topic.startswith(root) or len(topic) == len(root):
            return None
        return topic[len(root):].replace("/", ".")

    def shared(self, queue: str, pattern: str) -> str:
        """Return the shared subscription of `queue` for `pattern`."""
        return f"$share/{queue}/{self.prefix}/{mqtt_filter(pattern)}"

    def direct(self, queue: str) -> str:
        """Return the topic of items sent to `queue` alone."""
        return f"{self.prefix}.direct/{queue}"

    def shared_direct(self, queue: str) -> str:
        """Return the shared subscription of `queue`'s direct topic."""
        return f"$share/{queue}/{self.direct(queue)}"

    def failed(self, queue: str) -> str:
        """Return the topic failed items of `queue` are parked on."""
        return f"{self.prefix}.failed/{queue}"

    def record(self, queue: str, pattern: str) -> str:
        """Return the retained topic recording that `queue` subscribes `pattern`."""
        return f"{self.prefix}.subscriptions/{queue}/{pattern.encode().hex()}"

    @property
    def records(self) -> str:
        """The filter of every subscription record."""
        return f"{self.prefix}.subscriptions/#"

    def slot(self, queue: str, number: int) -> str:
        """Return the retained presence topic of `queue`'s session `number`."""
        return f"{self.prefix}.slots/{queue}/{number}"

    @property
    def slots(self) -> str:
        """The filter of every session presence record."""
        return f"{self.prefix}.slots/#"

    def session(self, queue: str, number: int) -> str:
        """Return the client id of `queue`'s persistent session `number`."""
        return f"{self.prefix}.q.{queue}.{number}"

    def failed_session(self, queue: str) -> str:
        """Return the client id of the persistent session that keeps `queue`'s failed items."""
        return f"{self.prefix}.failed.{queue}"
