-- wrkr_sqlite schema, version 2: one item per tid at a time (exclusive), and rate limits.

-- A queue's options, stored by its first consumer; later ones must ask for the same.
CREATE TABLE wrkr_queues (
    queue       TEXT PRIMARY KEY,
    exclusive   INTEGER NOT NULL,
    rate_limit  INTEGER,
    rate_period INTEGER  -- microseconds
) WITHOUT ROWID;

-- Starts counted in sliding windows (a rated queue's claims, a limiter's acquisitions):
-- one row per claim or acquisition, `n` starts at `at` (µs); rows a period old are
-- deleted by the next taker of the window.
CREATE TABLE wrkr_starts (
    window_key TEXT NOT NULL,
    at         INTEGER NOT NULL,
    n          INTEGER NOT NULL
);
CREATE INDEX wrkr_starts_by_window ON wrkr_starts (window_key, at);

-- The indexes exclusive claims seek are made per exclusive queue, when it is configured
-- (`tid_index_*` in coordination.sql), partial on its name: items of other queues never
-- enter them.
