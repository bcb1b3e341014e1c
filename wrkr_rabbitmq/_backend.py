"""RabbitMQBackend: wrkr on RabbitMQ (3.10 or later, no plugins needed).

URL:
    ``amqp://user:password@host:5672/vhost?prefix=wrkr`` (``amqps://`` for TLS). The
    vhost is the URL path (``/`` or ``%2F`` for the default one). Options, as query
    parameters or keyword arguments of `Wrkr.from_url` / `RabbitMQBackend`:

    prefix      the namespace of every exchange and queue wrkr creates (default
                ``wrkr``); two apps see each other's events only within one namespace.
    queue_type  ``quorum`` (the default: replicated, at-least-once dead-lettering,
                deliveries counted by the broker) or ``classic``; see _topology.py.
                A namespace declared with one type keeps it: opening it with the other
                raises `InvalidConfig` saying how to migrate.

    pika's own query parameters (``heartbeat``, ``connection_attempts``, ``ssl_options``...)
    pass through. An unknown or unusable option raises `InvalidConfig` naming it.

Capabilities:
    DELAY       any delay from a millisecond to two years and beyond, held by the broker
                (a TTL delay-level chain, see _topology.py) and a sub-second in-process
                hold (see _forwarder.py); durable across broker restarts.
    WILDCARDS   AMQP topic patterns, matched by the broker.
    FAILED      per-queue failed queues: list them (`items(state=FAILED)`), `retry` them.
    Not QUERY, CANCEL, ONCE_EVERY or ARCHIVE: a broker cannot look items up by name or
    tid, delete them in place, or keep acked ones. Those raise `NotSupported`.

Topology (one namespace, see _topology.py): a durable topic exchange ``{p}.events``,
routing key = event name; per wrkr queue a durable queue ``{p}.q.{queue}`` bound by
each subscription pattern and a ``{p}.failed.{queue}``; ``{p}.due`` where delayed items
leave the delay chain; the subscription record ``{p}.registry`` (see _registry.py: AMQP
cannot list bindings) and the fanout exchange ``{p}.registry.changes`` its new versions
go to (each connection's exclusive queue there keeps its publisher's view fresh). The
delay chain itself (``wrkr-delay-quorum-v1.*``, or ``wrkr-delay-v1.*`` for classic
queues) is shared by every namespace of the vhost, declared once and never deleted.
Events published by other programs (a JSON object to ``{p}.events``, routing key =
event name) are handled too: docs/wire-format.md.

Guarantees and limits:
    * Messages are persistent. One message is published with a publisher confirm; a
      batch of several is one AMQP transaction (publishes, then tx.commit) on a
      transactional channel of its own, so no half of a batch is stored: the broker
      holds the publishes until tx.commit and drops them if the channel or connection
      closes first; a client-side failure before tx.commit rolls them back. Then
      `BackendUnavailable` is raised, nothing stored. Messages that reach no queue come
      back as basic.return before commit-ok, so their ids are left out.
    * The window that remains is tx.commit itself: a connection lost after tx.commit
      was sent and before commit-ok arrived leaves the outcome unknown (the broker may
      have committed), and `BackendUnavailable` says so; publishing the batch again may
      store it twice. RabbitMQ also documents that a broker failing during tx.commit
      may leave a transaction's effects in some of its queues only.
    * Fan-out happens when an item becomes due: a delayed event reaches the queues
      subscribed at its due time. One item id per (event, queue), `copy_id(message id,
      queue)`: the publisher returns those of the queues its view of the record (kept
      fresh through ``{p}.registry.changes``, see _view.py) finds, each consumer names
      its copy by the same rule (docs/wire-format.md, "Item ids").
    * The lease is the consumer's channel: unacked items return the moment the
      connection dies; on quorum queues in their place, counted by the broker
      (``x-delivery-count``), on classic ones republished by wrkr to count the attempt.
      RabbitMQ's ``consumer_timeout`` (default 30 minutes, a server setting; 3.10 has
      no per-queue override) closes a channel whose delivery stays unacked longer:
      keep handler timeouts below it, or raise it in rabbitmq.conf
      (``consumer_timeout = 7200000`` for two hours).
    * Retries (`nack`) and released items go to the one queue they came from, through
      the delay chain when they are due later.
    * A message over the broker's ``max_message_size`` (128 MiB by default) raises
      `InvalidEvent` naming both sizes; nothing of its batch is published.
    * Consumers and the forwarder reconnect by themselves (0.1 s doubling to 2 s), through
      `BrokerBackend`; the broker primitives are in _broker.py.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from yarl import URL

from wrkr import InvalidConfig
from wrkr.backend import BrokerBackend, Capability, redact
from wrkr_rabbitmq._broker import RabbitMQBroker
from wrkr_rabbitmq._consumer import RabbitMQReceipt
from wrkr_rabbitmq._topology import RabbitMQTopology

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


class RabbitMQBackend(BrokerBackend[RabbitMQReceipt]):
    """wrkr on RabbitMQ: a `RabbitMQBroker` assembled by `BrokerBackend`.

    Raises:
        InvalidConfig: the URL has an unknown or unusable option, `prefix` is not one
            routing-key segment, or `queue_type` is neither "quorum" nor "classic".
    """

    capabilities: ClassVar[frozenset[Capability]] = RabbitMQBroker.capabilities
    broker: RabbitMQBroker

    def __init__(self, url: str = DEFAULT_URL, *, prefix: str = "wrkr",
                 queue_type: str = "quorum") -> None:
        super().__init__(RabbitMQBroker(url, prefix=prefix, queue_type=queue_type))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build a backend from ``amqp://user:password@host:port/vhost?prefix=...``."""
        query = URL(url).query
        prefix = str(options.pop("prefix", query.get("prefix", "wrkr")))
        queue_type = str(options.pop("queue_type", query.get("queue_type", "quorum")))
        if options:
            raise InvalidConfig(f"unknown RabbitMQ option(s) {', '.join(sorted(options))} for "
                                f"{redact(url)}: valid keyword options: prefix, queue_type "
                                "(pika's own go in the URL's query)")
        return cls(url, prefix=prefix, queue_type=queue_type)

    def __repr__(self) -> str:
        return (f"RabbitMQBackend({redact(str(self.url))!r}, prefix={self.topology.prefix!r}, "
                f"queue_type={self.topology.queue_type!r})")

    @property
    def url(self) -> URL:
        """The broker's URL, wrkr's own options left out."""
        return self.broker.url

    @property
    def topology(self) -> RabbitMQTopology:
        """The names of this backend's namespace on the broker."""
        return self.broker.topology

    async def drop_connections(self) -> None:
        """Close the connection as a crash would: the broker requeues what was unacked,
        and consumers reconnect; see `Backend.drop_connections`."""
        await self.broker.disconnect()

    async def delete_namespace(self) -> None:
        """Delete every exchange and queue of this namespace, subscriptions included."""
        await self.broker.delete_namespace()
