-- wrkr_postgres schema: workflows (app.start_flow). Every object lives in {schema}.

-- The flow an item belongs to (a job's item), else NULL.
ALTER TABLE {schema}.items ADD COLUMN flow text;

-- One row per flow: the core's document (steps, jobs, items, results), opaque here, and
-- its state beside it for queries. Every change to a flow is one transaction that first
-- takes this row's lock (SELECT ... FOR UPDATE): the acks of a step's last items, from
-- any number of workers, run one after another, so exactly one starts the next step.
CREATE TABLE {schema}.flows (
    id       text PRIMARY KEY,
    state    text NOT NULL,
    document bytea NOT NULL,
    created  timestamptz NOT NULL,
    updated  timestamptz NOT NULL
);
CREATE INDEX flows_state ON {schema}.flows (state, updated);
