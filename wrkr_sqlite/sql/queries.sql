-- The statements SQLiteStore runs, one per `-- name:` section (see _sql.py).
-- {columns} is the item column list that _rows.py reads; {state} the state as wrkr
-- reports it at :now. Every time is passed in (:now), so the backend's clock decides.

-- name: subscribe
INSERT OR IGNORE INTO wrkr_subscriptions (queue, pattern, created) VALUES (:queue, :pattern, :now)

-- name: unsubscribe
DELETE FROM wrkr_subscriptions WHERE queue = :queue AND pattern = :pattern

-- name: subscriptions
SELECT queue, pattern FROM wrkr_subscriptions ORDER BY queue, pattern

-- name: enqueue
-- One queue copy of one message. A `once_every` message creates nothing where the queue
-- already holds a pending item of its name and tid: writers are serialised by BEGIN
-- IMMEDIATE, so the check and the insert are atomic among publishers of every process.
INSERT INTO wrkr_items (id, queue, name, tid, payload, due, created, dedupe, updated,
                        parent, root, trace, flow)
SELECT :id, :queue, :name, :tid, :payload, :due, :created, :dedupe, :now,
       :parent, :root, :trace, :flow
WHERE NOT (:dedupe AND EXISTS (
    SELECT 1 FROM wrkr_items
    WHERE state = 'pending' AND name = :name AND tid IS :tid AND queue = :queue))

-- name: enqueue_many
-- One queue copy of one message without `once_every`, run by executemany for a run of
-- them (one prepared statement, no dedupe check); parameters by position, as
-- _publish.insert builds them.
INSERT INTO wrkr_items (id, queue, name, tid, payload, due, created, updated,
                        parent, root, trace, flow)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)

-- name: claim
-- Expired leases first (their workers died), then due items in (due, seq) order. A
-- coordination filter (a tid exclusion, a rate) goes into the two WHERE clauses marked.
UPDATE wrkr_items
SET state = 'processing', attempts = attempts + 1, worker = :worker, dedupe = 0,
    lease = :lease, lease_until = :until, updated = :now
WHERE seq IN (
    SELECT seq FROM (
        SELECT seq FROM wrkr_items
        WHERE queue = :queue AND state = 'processing' AND lease_until <= :now  -- filter
        ORDER BY lease_until LIMIT :limit)
    UNION ALL
    SELECT seq FROM (
        SELECT seq FROM wrkr_items
        WHERE queue = :queue AND state = 'pending' AND due <= :now  -- filter
        ORDER BY due, seq LIMIT :limit)
    LIMIT :limit)
RETURNING {columns}

-- name: next_due
SELECT min(
    coalesce((SELECT min(due) FROM wrkr_items WHERE queue = :queue AND state = 'pending'),
             9223372036854775807),
    coalesce((SELECT min(lease_until) FROM wrkr_items
              WHERE queue = :queue AND state = 'processing'), 9223372036854775807))

-- name: renew
-- Fenced by the lease token and by time: a lease that ended is not renewed, even if
-- nobody claimed the item since.
UPDATE wrkr_items SET lease_until = :until
WHERE seq = :seq AND lease = :lease AND state = 'processing' AND lease_until > :now

-- name: ack
DELETE FROM wrkr_items WHERE seq = :seq AND lease = :lease AND state = 'processing'

-- name: ack_many
-- Every plain ack of a settlement batch under one lease token, in one statement: the
-- seqs come as a JSON array (one statement text for any batch size); RETURNING says
-- which were still held.
DELETE FROM wrkr_items
WHERE seq IN (SELECT value FROM json_each(:seqs)) AND lease = :lease AND state = 'processing'
RETURNING seq

-- name: settle
-- Every settlement but a plain ack (Settle: ack with keep, nack, fail, release, abandon),
-- fenced by the lease token.
UPDATE wrkr_items
SET state = CASE :how WHEN 'ack' THEN 'done' WHEN 'fail' THEN 'failed' ELSE 'pending' END,
    due = coalesce(:due, due),
    errors = CASE WHEN :error IS NULL THEN errors
                  WHEN json_valid(errors) AND json_type(errors) = 'array'
                  THEN json_insert(errors, '$[#]', json(:error))
                  -- a history another tool wrote, not a JSON array: kept as its first entry
                  ELSE json_array(CASE WHEN json_valid(errors) THEN json(errors) ELSE errors END,
                                  json(:error)) END,
    attempts = attempts - (CASE WHEN :how = 'release' THEN 1 ELSE 0 END),
    worker = CASE WHEN :how IN ('ack', 'fail') THEN worker END,
    finished = CASE WHEN :how IN ('ack', 'fail') THEN :now ELSE finished END,
    expires = CASE WHEN :how = 'ack' THEN :expires ELSE expires END,
    lease = NULL, lease_until = NULL, updated = :now
WHERE seq = :seq AND lease = :lease AND state = 'processing'
RETURNING queue

-- name: items
SELECT {columns} FROM wrkr_items
WHERE (:queue IS NULL OR queue = :queue)
  AND (:name IS NULL OR name = :name)
  AND (:tid IS NULL OR tid = :tid)
  AND (:state IS NULL OR {state} = :state)
  AND NOT (state = 'done' AND expires IS NOT NULL AND expires <= :now)
ORDER BY due, seq
LIMIT :limit OFFSET :offset

-- name: tree
-- `items` for one tree (lineage): `root` is always given, so the root's row is found by
-- `id` and its descendants by wrkr_items_root (a root stores NULL: 0006_root_index.sql).
SELECT {columns} FROM wrkr_items
WHERE (root = :root OR id = :root)
  AND (:queue IS NULL OR queue = :queue)
  AND (:name IS NULL OR name = :name)
  AND (:tid IS NULL OR tid = :tid)
  AND (:state IS NULL OR {state} = :state)
  AND NOT (state = 'done' AND expires IS NOT NULL AND expires <= :now)
ORDER BY due, seq
LIMIT :limit OFFSET :offset

-- name: get
SELECT {columns} FROM wrkr_items
WHERE id = :id AND NOT (state = 'done' AND expires IS NOT NULL AND expires <= :now)

-- name: cancel
DELETE FROM wrkr_items
WHERE state = 'pending'
  AND (:queue IS NULL OR queue = :queue)
  AND (:name IS NULL OR name = :name)
  AND (:tid IS NULL OR tid = :tid)

-- name: retry
UPDATE wrkr_items
SET state = 'pending', due = :now, attempts = 0, worker = NULL, lease = NULL,
    lease_until = NULL, finished = NULL, updated = :now
WHERE id = :id AND state = 'failed'
RETURNING queue

-- name: state_of
SELECT {state} FROM wrkr_items WHERE id = :id

-- name: counts
SELECT queue, {state}, count(*) FROM wrkr_items
WHERE NOT (state = 'done' AND expires IS NOT NULL AND expires <= :now)
GROUP BY 1, 2

-- name: purge
-- Finished (done or failed) items of a queue, or of all, finished before :older_than.
DELETE FROM wrkr_items
WHERE state = :state
  AND (:queue IS NULL OR queue = :queue)
  AND (:older_than IS NULL OR coalesce(finished, updated) < :older_than)

-- name: expire
-- Kept done items past their retention (the janitor, every cleanup_interval).
DELETE FROM wrkr_items WHERE state = 'done' AND expires <= :now
