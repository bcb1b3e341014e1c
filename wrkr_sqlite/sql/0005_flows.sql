-- wrkr_sqlite schema, version 5: workflows (app.start_flow).

-- The flow an item belongs to (a job's item), else NULL.
ALTER TABLE wrkr_items ADD COLUMN flow TEXT;

-- One row per flow: the core's document (steps, jobs, items, results), opaque here, and
-- its state beside it for queries; times as integer microseconds (UTC). Every change to
-- a flow is one BEGIN IMMEDIATE transaction that reads this row after taking the file's
-- write lock: the acks of a step's last items, from any number of processes, run one
-- after another, so exactly one of them starts the next step.
CREATE TABLE wrkr_flows (
    id       TEXT PRIMARY KEY,
    state    TEXT NOT NULL,
    document BLOB NOT NULL,
    created  INTEGER NOT NULL,
    updated  INTEGER NOT NULL
);
CREATE INDEX wrkr_flows_state ON wrkr_flows (state, updated);
