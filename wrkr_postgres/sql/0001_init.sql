-- wrkr_postgres schema, version 1. Every object lives in {schema}.
-- Applied once per schema, under an advisory lock, by PostgresBackend.connect().

-- Durable subscriptions. `regex` is NULL for exact patterns; for wildcard patterns it is
-- a POSIX regex matched against '.' || event name (see wrkr_postgres/_routing.py).
CREATE TABLE {schema}.subscriptions (
    queue   text NOT NULL,
    pattern text NOT NULL,
    regex   text,
    created timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, pattern)
);
CREATE INDEX subscriptions_exact ON {schema}.subscriptions (pattern) WHERE regex IS NULL;

-- One row per queue item. Stored states: pending (scheduled or ready, by `due`),
-- processing (claimed under `lease` until `lease_until`), done (kept by archive "keep"
-- until `expires`), failed. `seq` orders items published together (FIFO).
CREATE TABLE {schema}.items (
    seq         bigserial PRIMARY KEY,
    id          uuid NOT NULL UNIQUE,
    queue       text NOT NULL,
    name        text NOT NULL,
    tid         text,
    payload     bytea NOT NULL,
    due         timestamptz NOT NULL,
    created     timestamptz NOT NULL,
    state       text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'processing', 'done', 'failed')),
    dedupe      boolean NOT NULL DEFAULT false,
    attempts    integer NOT NULL DEFAULT 0,
    errors      jsonb NOT NULL DEFAULT '[]',
    worker      text,
    lease       uuid,
    lease_until timestamptz,
    finished    timestamptz,
    expires     timestamptz,
    updated     timestamptz NOT NULL DEFAULT now()
);
-- Claims walk this index in (due, seq) order, skipping locked rows.
CREATE INDEX items_claimable ON {schema}.items (queue, due, seq) WHERE state = 'pending';
-- Expired leases (a dead worker) are found here.
CREATE INDEX items_leased ON {schema}.items (queue, lease_until) WHERE state = 'processing';
-- `once_every` lookups and cancel by name / tid.
CREATE INDEX items_pending_name ON {schema}.items (name, tid) WHERE state = 'pending';
-- Retention cleanup of kept done items.
CREATE INDEX items_expiring ON {schema}.items (expires) WHERE state = 'done';
-- `once_every` is atomic: two never-claimed dedupe items of one (queue, name, tid)
-- cannot be pending together; publishers insert with ON CONFLICT DO NOTHING.
CREATE UNIQUE INDEX items_once_every
    ON {schema}.items (queue, name, (tid IS NULL), (coalesce(tid, '')))
    WHERE state = 'pending' AND dedupe;

-- The state as wrkr reports it at time `at`: pending splits into scheduled / ready by
-- due time, and an item whose lease ran out is ready again.
CREATE FUNCTION {schema}.item_state(state text, due timestamptz, lease_until timestamptz,
                                    at timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN state = 'pending' AND due > at THEN 'scheduled'
        WHEN state = 'pending' THEN 'ready'
        WHEN state = 'processing' AND lease_until <= at THEN 'ready'
        ELSE state
    END
$$;

-- For applications: read item status directly (the server's clock decides scheduled).
CREATE VIEW {schema}.item_status AS
    SELECT id, queue, name, tid, {schema}.item_state(state, due, lease_until, now()) AS state,
           attempts, errors, worker, due, created, updated, finished, expires
    FROM {schema}.items
    WHERE NOT (state = 'done' AND expires IS NOT NULL AND expires <= now());
