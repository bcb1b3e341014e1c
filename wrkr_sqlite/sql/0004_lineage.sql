-- wrkr_sqlite schema, version 4: lineage and trace context (versions 2 and 3 may be
-- applied before or after it: the runner applies each missing version once, in order).
-- `parent` is the id of the item whose handler published this one, NULL for a root;
-- `root` the first item of that chain, a root's own id; `trace` the publisher's W3C
-- traceparent.

ALTER TABLE wrkr_items ADD COLUMN parent TEXT;
ALTER TABLE wrkr_items ADD COLUMN root TEXT;
ALTER TABLE wrkr_items ADD COLUMN trace TEXT;
-- Items stored before lineage are roots.
UPDATE wrkr_items SET root = id WHERE root IS NULL;
-- lineage(): every item of one tree.
CREATE INDEX wrkr_items_root ON wrkr_items (root);
