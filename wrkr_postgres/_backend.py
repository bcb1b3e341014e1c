"""The PostgreSQL backend: background work in the database the application already runs.

URL:
    ``postgresql://user:password@host:5432/database?schema=wrkr`` (or ``postgres://``).
    wrkr's own query options, also accepted as keyword arguments (keywords win):
    ``schema`` (default ``wrkr``) every table, index, function and view lives there;
    ``pool_size`` (10) connections per pool; ``poll_interval`` (5 s) the safety-net
    poll; ``cleanup_interval`` (60 s) how often kept done items past their retention
    are purged; ``fast_settle`` (true) commit claims and acks asynchronously (see
    `_db`). Every other query option goes to libpq (``sslmode``, ``connect_timeout``).
    Passwords never appear in logs or errors. A bad option or value raises
    `InvalidConfig` naming it and the valid ones.

Capabilities: every one: DELAY, WILDCARDS, QUERY, CANCEL, ONCE_EVERY, ARCHIVE, FAILED,
and TRANSACTIONAL: ``enqueue(messages, connection=conn)`` (``publish(..., connection=)``)
runs inside the caller's open psycopg ``AsyncConnection`` and its transaction, so the
event exists exactly when the application's change commits (an outbox).

Storage (``sql/0001_init.sql``; migrations applied at connect, recorded in
``<schema>.migrations``):
    subscriptions   (queue, pattern, regex); wildcards matched by a POSIX regex in
                    the publishing statement itself, so routing is always current
    items           one row per queue copy: payload bytes as given, due / created
                    ``timestamptz``, state pending | processing | done | failed,
                    attempts, errors (jsonb), worker, lease token and end, finished;
                    parent, root (indexed: lineage) and trace (``0005_lineage.sql``)
    item_status     a view for applications: the state as wrkr reports it
Claims are ``FOR UPDATE SKIP LOCKED`` batches; a lease token fences late renewals and
settlements (`LeaseLost`); an expired lease is claimable again. NOTIFY on the channel
``wrkr_<schema>`` (payload: the queue) wakes consumers at commit.

Delivery is the core's loop (`StoreBackend`) over a `PostgresStore` (``_store.py``): one
statement per claim, renewal batch, settlement batch, publish batch or query.

Connections per backend: two pools of up to ``pool_size`` (see `_db`), one LISTEN
connection, and one publishing connection (``_publisher.py``) on which every
``publish()`` runs -- concurrent publishes of the process share its statements and
commits (group commit), each still getting its own ids or error.

Times: the backend's clock (``self.now()``, the client's) is passed into every
statement, for due times and lease ends alike, so one clock decides everything; keep
the workers' clocks in sync (NTP) as with any lease-based queue.
"""

from __future__ import annotations

from typing import Any, Self

from wrkr.backend import Clock, StoreBackend
from wrkr_postgres._config import PostgresSettings, settings_from_url
from wrkr_postgres._rows import PostgresReceipt
from wrkr_postgres._store import PostgresStore


class PostgresBackend(StoreBackend[PostgresReceipt]):
    """Keeps subscriptions and items in PostgreSQL tables of one schema.

    Args:
        url: ``postgresql://user@host:port/database`` with optional wrkr options.
        clock: what "now" is (tests); the system clock by default.
        **options: ``schema``, ``pool_size``, ``poll_interval``, ``cleanup_interval``,
            ``fast_settle`` (see the module docstring).

    Raises:
        InvalidConfig: an unknown option, a bad value, or a URL libpq cannot parse.
    """

    capabilities = PostgresStore.capabilities
    store: PostgresStore

    def __init__(self, url: str = "postgresql://127.0.0.1:5432/postgres", *,
                 clock: Clock | None = None, **options: Any) -> None:
        super().__init__(PostgresStore(settings_from_url(url, options), clock))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build a backend from a ``postgresql://`` URL; see the module docstring."""
        return cls(url, **options)

    @property
    def settings(self) -> PostgresSettings:
        """What the backend was configured with (the URL's password included)."""
        return self.store.settings
