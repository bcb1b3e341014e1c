"""What backend authors import: the contracts, the data crossing them, and helpers.

The core owns the semantics (retries, backoff, timeouts, `when` parsing, serialization,
handler dispatch); a backend only stores and moves items. There are two ways to write
one, and a third that assembles them:

    Store       a database keeps the items (memory, PostgreSQL, MongoDB, SQLite): write
                a handful of storage primitives; `StoreBackend(store)` adds the core's
                delivery loop (prefetch, batched claims and settlements, lease renewal,
                give-back on close, wake-or-poll, recovery after an outage).
    Broker      a message broker keeps them (RabbitMQ, MQTT): its channels carry the
                leases; `BrokerBackend(broker)` adds reconnection and the contract.
    Backend     what a `Wrkr` app talks to; both assemblies implement it.

Every promise in a method docstring is checked by a named test in
`backend_conformance_tests`.

Vocabulary:
    message     an event on its way in (`Message`): name, tid, encoded payload, due time.
    item        one queue's copy of a message (`Item`); fan-out makes one per matching queue.
    delivery    an item claimed by a worker (`Delivery`), with an opaque `receipt` the
                core hands back to settle it and never inspects.
    settlement  what the core decided for a delivery (`Settlement`): ack, nack, fail,
                release, or abandon (a closing process's, as if its lease had expired).
    schedule    a recurring schedule as stored (`ScheduleRecord`); a `Firing` is one of
                its steps, which the store carries out once or not at all.
"""

from wrkr._backend import Backend
from wrkr._backoff import Backoff
from wrkr._broker import Broker, BrokerConsumer
from wrkr._brokered import BrokerBackend
from wrkr._errors import (
    BackendUnavailable,
    InvalidConfig,
    ItemNotFound,
    LeaseLost,
    NotStarted,
    NotSupported,
    UnknownBackend,
)
from wrkr._flow_store import FlowTransaction
from wrkr._frozen import fast_builder
from wrkr._micros import EPOCH, MICROSECOND, from_micros, to_micros
from wrkr._names import is_wildcard, matches
from wrkr._rates import QueueOptions, Rate, Window
from wrkr._schedules import Firing, ScheduleRecord
from wrkr._store import Claim, Settle, Settlement, Store, Wake
from wrkr._stored import StoreBackend
from wrkr._tasks import CLOSE_WAIT, ended
from wrkr._types import (
    COPY_IDS,
    COPY_RULE,
    FINISHED_STATES,
    PENDING_STATES,
    Capability,
    Clock,
    Delivery,
    ErrorRecord,
    Item,
    ItemFilter,
    Message,
    State,
    SystemClock,
    copy_id,
    copy_metadata,
    new_item_id,
)
from wrkr._urls import redact, scrub

__all__ = [
    "CLOSE_WAIT",
    "COPY_IDS",
    "COPY_RULE",
    "EPOCH",
    "FINISHED_STATES",
    "MICROSECOND",
    "PENDING_STATES",
    "Backend",
    "BackendUnavailable",
    "Backoff",
    "Broker",
    "BrokerBackend",
    "BrokerConsumer",
    "Capability",
    "Claim",
    "Clock",
    "Delivery",
    "ErrorRecord",
    "Firing",
    "FlowTransaction",
    "InvalidConfig",
    "Item",
    "ItemFilter",
    "ItemNotFound",
    "LeaseLost",
    "Message",
    "NotStarted",
    "NotSupported",
    "QueueOptions",
    "Rate",
    "ScheduleRecord",
    "Settle",
    "Settlement",
    "State",
    "Store",
    "StoreBackend",
    "SystemClock",
    "UnknownBackend",
    "Wake",
    "Window",
    "copy_id",
    "copy_metadata",
    "ended",
    "fast_builder",
    "from_micros",
    "is_wildcard",
    "matches",
    "new_item_id",
    "redact",
    "scrub",
    "to_micros",
]
