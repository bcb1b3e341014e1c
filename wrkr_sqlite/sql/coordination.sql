-- The statements of exclusive and rated queues and of limiters, one per `-- name:`
-- section (see _sql.py and _coordination.py). Times are integer µs, passed in.

-- name: configure
INSERT OR IGNORE INTO wrkr_queues (queue, exclusive, rate_limit, rate_period)
VALUES (:queue, :exclusive, :rate_limit, :rate_period)

-- name: options
SELECT exclusive, rate_limit, rate_period FROM wrkr_queues WHERE queue = :queue

-- name: tid_index_processing
-- An exclusive claim probes, per candidate, its tid's processing item and earlier
-- pending ones: two index seeks, however many tids are in flight. Each exclusive queue
-- has indexes of its own, partial on its name ({queue}: the name as a SQL literal;
-- {index}: a name made from it), created when it is configured, so items of other
-- queues never enter them: a plain queue's publishes, claims and acks maintain nothing
-- more (the two indexes over all items cost a plain queue a fifth of its throughput).
CREATE INDEX IF NOT EXISTS {index}_processing ON wrkr_items (tid)
    WHERE queue = {queue} AND state = 'processing' AND tid IS NOT NULL

-- name: tid_index_pending
CREATE INDEX IF NOT EXISTS {index}_pending ON wrkr_items (tid, due, seq)
    WHERE queue = {queue} AND state = 'pending' AND tid IS NOT NULL

-- name: claim_exclusive
-- `claim`, where a pending item is skipped when its tid has an item processing (lease
-- ended or not: an expired one is taken back in the first branch, and keeps its tid) or
-- an earlier-due pending one. Both probes are seeks in the queue's own tid indexes: the
-- queue is a literal there ({queue}), as SQLite uses a partial index only for a query
-- whose terms match its WHERE, and a bound parameter matches nothing.
-- Claims are serialised by BEGIN IMMEDIATE, so a claim sees every item the previous
-- one made processing: two claims can never start two items of one tid.
UPDATE wrkr_items
SET state = 'processing', attempts = attempts + 1, worker = :worker, dedupe = 0,
    lease = :lease, lease_until = :until, updated = :now
WHERE seq IN (
    SELECT seq FROM (
        SELECT seq FROM wrkr_items
        WHERE queue = :queue AND state = 'processing' AND lease_until <= :now
        ORDER BY lease_until LIMIT :limit)
    UNION ALL
    SELECT seq FROM (
        SELECT i.seq FROM wrkr_items AS i
        WHERE i.queue = :queue AND i.state = 'pending' AND i.due <= :now
          AND (i.tid IS NULL OR (
              NOT EXISTS (SELECT 1 FROM wrkr_items AS b
                          WHERE b.queue = {queue} AND b.tid = i.tid
                            AND b.state = 'processing')
              AND NOT EXISTS (SELECT 1 FROM wrkr_items AS e
                              WHERE e.queue = {queue} AND e.tid = i.tid
                                AND e.state = 'pending' AND (e.due, e.seq) < (i.due, i.seq))))
        ORDER BY i.due, i.seq LIMIT :limit)
    LIMIT :limit)
RETURNING {columns}

-- name: next_change
-- For an exclusive queue's idle consumer: the earliest due time after :now, or lease end.
SELECT min(
    coalesce((SELECT min(due) FROM wrkr_items
              WHERE queue = :queue AND state = 'pending' AND due > :now),
             9223372036854775807),
    coalesce((SELECT min(lease_until) FROM wrkr_items
              WHERE queue = :queue AND state = 'processing'), 9223372036854775807))

-- name: forget_starts
DELETE FROM wrkr_starts WHERE window_key = :window AND at <= :now - :period

-- name: used
SELECT coalesce(sum(n), 0), coalesce(max(at), :now) FROM wrkr_starts WHERE window_key = :window

-- name: record_starts
INSERT INTO wrkr_starts (window_key, at, n) VALUES (:window, :at, :n)

-- name: next_slot
-- When the window next has room: the time its oldest starts leave it, enough of them
-- that fewer than :limit remain; no row when it has room at :now.
SELECT at + :period FROM (
    SELECT at, sum(n) OVER (ORDER BY at DESC) AS newer_and_this
    FROM wrkr_starts WHERE window_key = :window AND at > :now - :period)
WHERE newer_and_this >= :limit
ORDER BY at DESC LIMIT 1
