-- wrkr_postgres schema, version 5: lineage and trace context.
-- `parent` is the id (32 hex digits) of the item whose handler published this one, NULL
-- for a root; `root` the first item of that chain, a root's own id; `trace` the
-- publisher's W3C traceparent. Ids are text: a handler may publish to another backend.

ALTER TABLE {schema}.items
    ADD COLUMN parent text,
    ADD COLUMN root   text,
    ADD COLUMN trace  text;
-- Items stored before lineage are roots.
UPDATE {schema}.items SET root = replace(id::text, '-', '') WHERE root IS NULL;
-- lineage(): every item of one tree.
CREATE INDEX items_root ON {schema}.items (root);

CREATE OR REPLACE VIEW {schema}.item_status AS
    SELECT id, queue, name, tid, {schema}.item_state(state, due, lease_until, now()) AS state,
           attempts, errors, worker, due, created, updated, finished, expires, parent, root
    FROM {schema}.items
    WHERE NOT (state = 'done' AND expires IS NOT NULL AND expires <= now());
