-- wrkr_sqlite schema, version 3: recurring schedules (app.schedule).

-- One row per schedule, by name; times in µs. A firing is a compare-and-set on `next`:
-- the UPDATE that finds `next` still at the firing's due time moves it on, and the
-- items are inserted in the same BEGIN IMMEDIATE transaction; a concurrent firing
-- (serialised behind it by the file's lock) finds `next` moved and publishes nothing.
CREATE TABLE wrkr_schedules (
    name     TEXT PRIMARY KEY,
    cron     TEXT,
    every    INTEGER,  -- µs
    tz       TEXT NOT NULL,
    tid      TEXT,
    payload  BLOB NOT NULL,
    catch_up TEXT NOT NULL CHECK (catch_up IN ('latest', 'all', 'none')),
    next     INTEGER NOT NULL,
    last     INTEGER,
    updated  INTEGER NOT NULL,
    CHECK ((cron IS NULL) <> (every IS NULL))
) WITHOUT ROWID;
