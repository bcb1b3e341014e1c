-- wrkr_postgres schema: recurring schedules (app.schedule). Every object lives in {schema}.

-- One row per schedule, by name. A firing is a compare-and-set on `next`: the UPDATE
-- that finds `next` still at the firing's due time moves it on and publishes the items
-- in the same transaction; a concurrent one finds it moved and publishes nothing.
CREATE TABLE {schema}.schedules (
    name     text PRIMARY KEY,
    cron     text,
    every    interval,
    tz       text NOT NULL,
    tid      text,
    payload  bytea NOT NULL,
    catch_up text NOT NULL CHECK (catch_up IN ('latest', 'all', 'none')),
    next     timestamptz NOT NULL,
    last     timestamptz,
    updated  timestamptz NOT NULL,
    CHECK ((cron IS NULL) <> (every IS NULL))
);
