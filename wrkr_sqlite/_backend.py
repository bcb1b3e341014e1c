"""The SQLite backend: durable background work in one file, with no server to run.

URL:
    ``sqlite:///relative/path.db`` (relative to the working directory when the backend
    is built) or ``sqlite:////absolute/path.db``. The file and its tables are created
    at the first connect. wrkr's query options, also accepted as keyword arguments
    (keywords win): ``busy_timeout`` (5 s) how long a write waits for another
    connection's lock before `BackendUnavailable`; ``poll_min`` (0.01 s) and
    ``poll_max`` (0.5 s) the idle consumers' polling range; ``cleanup_interval``
    (60 s) how often kept done items past their retention are deleted;
    ``fast_settle`` (true) claims and settlements commit without a disk flush (see
    Durability). A bad option or value raises `InvalidConfig` naming it.

Capabilities: every one: DELAY, WILDCARDS, QUERY, CANCEL, ONCE_EVERY, ARCHIVE, FAILED,
EXCLUSIVE, RATE, SCHEDULES, FLOWS, and TRANSACTIONAL: ``publish(..., connection=conn)`` inserts
with the caller's own ``sqlite3.Connection`` to the same file, inside its open
transaction, so the event exists exactly when the application's change commits (an
outbox).

Storage (``sql/0001_init.sql``; migrations applied at connect, recorded in
``wrkr_migrations``; ``0002_coordination.sql``, ``0003_schedules.sql`` and
``0005_flows.sql`` add the last four), beside the application's own tables if it likes:
    wrkr_subscriptions  (queue, pattern); wildcards matched in Python at publish time,
                        in the publishing transaction, so routing is always current
    wrkr_items          one row per queue copy: payload bytes as given, times as integer
                        microseconds (UTC), state pending | processing | done | failed,
                        attempts, errors (JSON), worker, lease token and end, finished;
                        parent, root (NULL for a root itself, indexed otherwise: lineage;
                        ``0004_lineage.sql``, ``0006_root_index.sql``), trace;
                        flow, the id of the flow whose job made it
    wrkr_queues         a queue's options (exclusive, rate), stored by its first consumer
    wrkr_starts         sliding windows: (window, at, n) per rated claim or limiter grant
    wrkr_schedules      one row per recurring schedule; a firing is a compare-and-set on
                        `next` with its items inserted in the same transaction
    wrkr_flows          one row per flow: its state and the core's document; every change
                        to a flow is one BEGIN IMMEDIATE transaction that reads the row
                        under the write lock, run whole on the connection's thread
Claims are ``BEGIN IMMEDIATE`` transactions (``UPDATE ... RETURNING`` a batch); a
random lease token fences late renewals and settlements (`LeaseLost`); an expired lease
is claimable again. The file is in WAL mode: readers never block the writer.

Processes: any number on one machine share the file's queues (SQLite's locks do not
work over network file systems: keep the file on a local disk). One connection per
backend, on a thread of its own. Writes are serialised by the file's lock; a write
waits for it up to ``busy_timeout``. Wake-ups: this process's publishes, nacks and
retries wake its consumers at once; other processes' are found by polling, every
``poll_min`` while work flows, doubling to ``poll_max`` while idle, never past the next
due time.

Durability: WAL mode. A publish commits with ``synchronous = FULL``: once `publish()`
returns, the event survives a power cut; so does a flow's change (it may start a step).
Claims and other settlements commit with ``synchronous = NORMAL`` (``fast_settle``, the
default): a process crash loses nothing that committed, but a power cut may undo the
last settlements before the next WAL checkpoint, whose items are then delivered again
(at-least-once allows it; a leased item comes back when its lease ends).
``fast_settle=false`` flushes every commit. A process killed mid-transaction leaves
nothing half-done: SQLite rolls it back.

Times: the backend's clock is passed into every statement, for due times and lease
ends alike, so one clock decides everything.
"""

from __future__ import annotations

from typing import Any, Self

from wrkr.backend import Clock, StoreBackend
from wrkr_sqlite._config import SQLiteSettings, settings_from_url
from wrkr_sqlite._rows import SQLiteReceipt
from wrkr_sqlite._store import SQLiteStore


class SQLiteBackend(StoreBackend[SQLiteReceipt]):
    """Keeps subscriptions and items in the ``wrkr_*`` tables of one SQLite file.

    Args:
        url: ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` with optional options.
        clock: what "now" is (tests); the system clock by default.
        **options: ``busy_timeout``, ``poll_min``, ``poll_max``, ``cleanup_interval``,
            ``fast_settle`` (see the module docstring).

    Raises:
        InvalidConfig: an unknown option, a bad value, or a URL naming no file.
    """

    capabilities = SQLiteStore.capabilities
    store: SQLiteStore

    def __init__(self, url: str = "sqlite:///wrkr.db", *, clock: Clock | None = None,
                 **options: Any) -> None:
        super().__init__(SQLiteStore(settings_from_url(url, options), clock))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build a backend from a ``sqlite://`` URL; see the module docstring."""
        return cls(url, **options)

    @property
    def settings(self) -> SQLiteSettings:
        """What the backend was configured with (the path made absolute)."""
        return self.store.settings
