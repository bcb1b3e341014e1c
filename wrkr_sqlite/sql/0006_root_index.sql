-- wrkr_sqlite schema, version 6: a root item stores `root` as NULL (it is its own id,
-- which the `id` index already finds), so the lineage index holds only the items a
-- handler published. Every publish of a root no longer writes that index, and every
-- ack no longer deletes from it (bench/README.md, SQLite section). Readers take a NULL
-- root as the item's own id, as they did for items stored before version 4.

UPDATE wrkr_items SET root = NULL WHERE root = id;
DROP INDEX wrkr_items_root;
-- tree: `root = :root` finds the descendants here, `id = :root` the root itself.
CREATE INDEX wrkr_items_root ON wrkr_items (root) WHERE root IS NOT NULL;
