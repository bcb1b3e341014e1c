-- wrkr_sqlite schema, version 1. Applied once per database file, inside one
-- BEGIN IMMEDIATE transaction, by SQLiteBackend.connect() (see _sql.py).
-- Times are integer microseconds since the Unix epoch (UTC): exact, and compared fast.

-- Durable subscriptions; wildcard patterns are matched in Python at publish time.
CREATE TABLE wrkr_subscriptions (
    queue   TEXT NOT NULL,
    pattern TEXT NOT NULL,
    created INTEGER NOT NULL,
    PRIMARY KEY (queue, pattern)
) WITHOUT ROWID;

-- One row per queue item. Stored states: pending (scheduled or ready, by `due`),
-- processing (claimed under `lease` until `lease_until`), done (kept by archive "keep"
-- until `expires`), failed. `seq` orders items published together (FIFO).
CREATE TABLE wrkr_items (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    queue       TEXT NOT NULL,
    name        TEXT NOT NULL,
    tid         TEXT,
    payload     BLOB NOT NULL,
    due         INTEGER NOT NULL,
    created     INTEGER NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'processing', 'done', 'failed')),
    dedupe      INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0,
    errors      TEXT NOT NULL DEFAULT '[]',
    worker      TEXT,
    lease       INTEGER,
    lease_until INTEGER,
    finished    INTEGER,
    expires     INTEGER,
    updated     INTEGER NOT NULL
);
-- Claims walk this index in (due, seq) order.
CREATE INDEX wrkr_items_claimable ON wrkr_items (queue, due, seq) WHERE state = 'pending';
-- Expired leases (a dead worker) are found here.
CREATE INDEX wrkr_items_leased ON wrkr_items (queue, lease_until) WHERE state = 'processing';
-- `once_every` lookups and cancel by name / tid.
CREATE INDEX wrkr_items_pending_name ON wrkr_items (name, tid) WHERE state = 'pending';
-- Retention cleanup of kept done items, and purges of finished ones.
CREATE INDEX wrkr_items_finished ON wrkr_items (state, finished) WHERE state IN ('done', 'failed');
