-- The statements PostgresStore runs, one per `-- name:` section (see _sql.py).
-- {schema} is the quoted schema; {columns} the item columns that _rows.py reads.
-- Every time is passed by the client (`now`), so the backend's clock is the one used.

-- name: subscribe
INSERT INTO {schema}.subscriptions (queue, pattern, regex)
VALUES (%(queue)s, %(pattern)s, %(regex)s)
ON CONFLICT DO NOTHING

-- name: unsubscribe
DELETE FROM {schema}.subscriptions WHERE queue = %(queue)s AND pattern = %(pattern)s

-- name: queues_for
SELECT DISTINCT queue FROM {schema}.subscriptions
WHERE pattern = %(name)s OR (regex IS NOT NULL AND ('.' || %(name)s) ~ regex)

-- name: subscriptions
SELECT queue, pattern FROM {schema}.subscriptions ORDER BY queue, pattern

-- name: enqueue
-- One statement for the batch: route every message through the subscriptions, skip
-- `once_every` messages whose (queue, name, tid) is already pending, insert in message
-- order, and NOTIFY each queue that got an item (delivered at commit). A message without
-- a root (published outside a handler) makes roots: each copy's root is its own id.
WITH msg AS (
    SELECT * FROM unnest(%(names)b::text[], %(tids)b::text[], %(payloads)b::bytea[],
                         %(dues)b::timestamptz[], %(createds)b::timestamptz[],
                         %(dedupes)b::boolean[], %(parents)b::text[], %(roots)b::text[],
                         %(traces)b::text[])
        WITH ORDINALITY AS m(name, tid, payload, due, created, dedupe, parent, root, trace,
                             ord)
), routed AS (
    SELECT DISTINCT m.ord, s.queue
    FROM msg m JOIN {schema}.subscriptions s
      ON s.pattern = m.name OR (s.regex IS NOT NULL AND ('.' || m.name) ~ s.regex)
), ided AS (
    SELECT r.ord, r.queue, gen_random_uuid() AS id FROM routed r
), ins AS (
    INSERT INTO {schema}.items AS i (id, queue, name, tid, payload, due, created, dedupe,
                                     updated, parent, root, trace)
    SELECT r.id, r.queue, m.name, m.tid, m.payload, m.due, m.created, m.dedupe, %(now)s,
           m.parent, coalesce(m.root, replace(r.id::text, '-', '')), m.trace
    FROM ided r JOIN msg m USING (ord)
    WHERE NOT (m.dedupe AND EXISTS (
        SELECT 1 FROM {schema}.items p
        WHERE p.state = 'pending' AND p.name = m.name AND p.tid IS NOT DISTINCT FROM m.tid
          AND p.queue = r.queue))
    ORDER BY r.ord, r.queue
    ON CONFLICT DO NOTHING
    RETURNING i.id, i.seq, i.queue
), woken AS (
    SELECT count(pg_notify(%(channel)s, q.queue)) AS n FROM (SELECT DISTINCT queue FROM ins) q
)
SELECT ins.id, ins.queue, r.ord FROM ins JOIN ided r USING (id), woken ORDER BY ins.seq

-- name: enqueue_one
-- `enqueue` for a batch of one message, its fields as scalars: the usual publish (one
-- event per call) skips dumping nine one-element arrays (about 150 us of client CPU),
-- and a plain INSERT ... SELECT with no CTE is the cheapest for the server to run.
-- Items come back in insertion order (queues in name order), NOTIFY done per queue.
INSERT INTO {schema}.items AS i (id, queue, name, tid, payload, due, created, dedupe,
                                 updated, parent, root, trace)
SELECT r.id, r.queue, %(name)s::text, %(tid)s::text, %(payload)b::bytea,
       %(due)s::timestamptz, %(created)s::timestamptz, %(dedupe)s::boolean, %(now)s,
       %(parent)s::text, coalesce(%(root)s::text, replace(r.id::text, '-', '')),
       %(trace)s::text
FROM (SELECT q.queue, gen_random_uuid() AS id
      FROM (SELECT DISTINCT s.queue FROM {schema}.subscriptions s
            WHERE s.pattern = %(name)s::text
               OR (s.regex IS NOT NULL AND ('.' || %(name)s::text) ~ s.regex)) q) r
WHERE NOT (%(dedupe)s::boolean AND EXISTS (
    SELECT 1 FROM {schema}.items p
    WHERE p.state = 'pending' AND p.name = %(name)s::text
      AND p.tid IS NOT DISTINCT FROM %(tid)s::text AND p.queue = r.queue))
ORDER BY r.queue
ON CONFLICT DO NOTHING
RETURNING i.id, i.queue, pg_notify(%(channel)s, i.queue)::text

-- name: claim
-- Expired leases first (their workers died), then due items in (due, seq) order; rows
-- another worker is claiming right now are skipped, not waited for.
WITH expired AS (
    SELECT seq FROM {schema}.items
    WHERE queue = %(queue)s AND state = 'processing' AND lease_until <= %(now)s
    ORDER BY lease_until LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), due AS (
    SELECT seq FROM {schema}.items
    WHERE queue = %(queue)s AND state = 'pending' AND due <= %(now)s
    ORDER BY due, seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT seq FROM (SELECT seq FROM expired UNION ALL SELECT seq FROM due) AS both_
    LIMIT %(limit)s
)
UPDATE {schema}.items i
SET state = 'processing', attempts = i.attempts + 1, worker = %(worker)s, dedupe = false,
    lease = %(lease)s, lease_until = %(until)s, updated = %(now)s
FROM picked WHERE i.seq = picked.seq
RETURNING {columns}

-- name: claim_coordinated
-- An exclusive or rated queue's claim (see the function in 0002_coordination.sql).
SELECT {columns} FROM {schema}.claim_coordinated(
    %(queue)s, %(worker)s, %(now)s, %(until)s, %(limit)s, %(lease)s, %(exclusive)s,
    %(window)s, %(rate_limit)s, %(period)s) AS i

-- name: configure
-- Store a queue's options unless it has some; return what is stored.
WITH ins AS (
    INSERT INTO {schema}.queues (queue, exclusive, rate_limit, rate_period)
    VALUES (%(queue)s, %(exclusive)s, %(rate_limit)s, %(rate_period)s)
    ON CONFLICT DO NOTHING
    RETURNING exclusive, rate_limit, rate_period
)
SELECT exclusive, rate_limit, rate_period FROM ins
UNION ALL
SELECT exclusive, rate_limit, rate_period FROM {schema}.queues WHERE queue = %(queue)s
LIMIT 1

-- name: take_slots
SELECT {schema}.take_slots(%(window)s, %(limit)s, %(period)s, %(wanted)s, %(now)s)

-- name: next_slot
-- When the window next has room: the time its oldest starts leave it, enough of them
-- that fewer than `limit` remain; no row when it has room at `now`.
SELECT at + %(period)s FROM (
    SELECT s.at, sum(s.n) OVER (ORDER BY s.at DESC) AS newer_and_this
    FROM {schema}.starts s
    WHERE s.window_key = %(window)s AND s.at > %(now)s::timestamptz - %(period)s
) w
WHERE newer_and_this >= %(limit)s
ORDER BY at DESC LIMIT 1

-- name: next_change
-- For an exclusive queue's idle consumer: the earliest due time after `now`, or lease end.
SELECT least(
    (SELECT min(due) FROM {schema}.items
     WHERE queue = %(queue)s AND state = 'pending' AND due > %(now)s),
    (SELECT min(lease_until) FROM {schema}.items
     WHERE queue = %(queue)s AND state = 'processing'))

-- name: next_due
SELECT least(
    (SELECT min(due) FROM {schema}.items WHERE queue = %(queue)s AND state = 'pending'),
    (SELECT min(lease_until) FROM {schema}.items
     WHERE queue = %(queue)s AND state = 'processing'))

-- name: renew
-- A batch of renewals, fenced by the lease token and by time: rows returned still held
-- their item (a lease that ended is not renewed, even if nobody claimed the item since).
UPDATE {schema}.items i SET lease_until = %(until)s
FROM unnest(%(seqs)b::bigint[], %(leases)b::uuid[]) AS r(seq, lease)
WHERE i.seq = r.seq AND i.lease = r.lease AND i.state = 'processing'
  AND i.lease_until > %(now)s
RETURNING i.seq, i.lease

-- name: ack
-- The hot path of `settle`: a batch of plain acks (items deleted), fenced by the token.
DELETE FROM {schema}.items i
USING unnest(%(seqs)b::bigint[], %(leases)b::uuid[]) AS a(seq, lease)
WHERE i.seq = a.seq AND i.lease = a.lease AND i.state = 'processing'
RETURNING i.seq, i.lease

-- name: ack_waking
-- `ack` in an exclusive queue: each ack frees a tid, so its queue is NOTIFYed (at commit;
-- PostgreSQL sends one per queue however many rows ask, and a RETURNING always runs).
WITH gone AS (
    DELETE FROM {schema}.items i
    USING unnest(%(seqs)b::bigint[], %(leases)b::uuid[]) AS a(seq, lease)
    WHERE i.seq = a.seq AND i.lease = a.lease AND i.state = 'processing'
    RETURNING i.seq, i.lease, pg_notify(%(channel)s, i.queue)
)
SELECT seq, lease FROM gone

-- name: settle
-- A batch of settlements (Settle: ack, nack, fail, release, abandon), fenced by the lease
-- token: the rows returned still held their item. An ack without `keep` deletes the row;
-- the others update it. Queues getting an item back are NOTIFYed (at commit), and with
-- `wake_all` (an exclusive queue: an ack or fail frees a tid) every queue settled in.
WITH s AS (
    SELECT * FROM unnest(%(seqs)b::bigint[], %(leases)b::uuid[], %(hows)b::text[],
                         %(dues)s::timestamptz[], %(errors)s::text[], %(keeps)b::boolean[],
                         %(expires)s::timestamptz[])
        AS s(seq, lease, how, due, error, keep, expires)
), gone AS (
    DELETE FROM {schema}.items i USING s
    WHERE i.seq = s.seq AND i.lease = s.lease AND i.state = 'processing'
      AND s.how = 'ack' AND NOT s.keep
    RETURNING i.seq, s.lease, CASE WHEN %(wake_all)s THEN pg_notify(%(channel)s, i.queue) END
), changed AS (
    UPDATE {schema}.items i
    SET state = CASE s.how WHEN 'ack' THEN 'done' WHEN 'fail' THEN 'failed'
                           ELSE 'pending' END,
        due = coalesce(s.due, i.due),
        errors = CASE WHEN s.error IS NULL THEN i.errors ELSE i.errors || s.error::jsonb END,
        attempts = i.attempts - (CASE WHEN s.how = 'release' THEN 1 ELSE 0 END),
        worker = CASE WHEN s.how IN ('ack', 'fail') THEN i.worker END,
        finished = CASE WHEN s.how IN ('ack', 'fail') THEN %(now)s ELSE i.finished END,
        expires = CASE WHEN s.how = 'ack' THEN s.expires ELSE i.expires END,
        lease = NULL, lease_until = NULL, updated = %(now)s
    FROM s
    WHERE i.seq = s.seq AND i.lease = s.lease AND i.state = 'processing'
      AND NOT (s.how = 'ack' AND NOT s.keep)
    RETURNING i.seq, s.lease, i.queue, s.how
), woken AS (
    SELECT count(pg_notify(%(channel)s, q.queue)) AS n
    FROM (SELECT DISTINCT queue FROM changed
          WHERE %(wake_all)s OR how NOT IN ('ack', 'fail')) q
)
SELECT seq, lease FROM gone UNION ALL SELECT seq, lease FROM changed, woken

-- name: items
SELECT {columns} FROM {schema}.items i
WHERE (%(queue)s::text IS NULL OR i.queue = %(queue)s)
  AND (%(name)s::text IS NULL OR i.name = %(name)s)
  AND (%(tid)s::text IS NULL OR i.tid = %(tid)s)
  AND (%(state)s::text IS NULL
       OR {schema}.item_state(i.state, i.due, i.lease_until, %(now)s) = %(state)s)
  AND NOT (i.state = 'done' AND i.expires IS NOT NULL AND i.expires <= %(now)s)
ORDER BY i.due, i.seq
LIMIT %(limit)s OFFSET %(offset)s

-- name: tree
-- `items` for one tree (lineage): `root` is always given, so items_root is walked.
SELECT {columns} FROM {schema}.items i
WHERE i.root = %(root)s
  AND (%(queue)s::text IS NULL OR i.queue = %(queue)s)
  AND (%(name)s::text IS NULL OR i.name = %(name)s)
  AND (%(tid)s::text IS NULL OR i.tid = %(tid)s)
  AND (%(state)s::text IS NULL
       OR {schema}.item_state(i.state, i.due, i.lease_until, %(now)s) = %(state)s)
  AND NOT (i.state = 'done' AND i.expires IS NOT NULL AND i.expires <= %(now)s)
ORDER BY i.due, i.seq
LIMIT %(limit)s OFFSET %(offset)s

-- name: get
SELECT {columns} FROM {schema}.items i
WHERE i.id = %(id)s AND NOT (i.state = 'done' AND i.expires IS NOT NULL AND i.expires <= %(now)s)

-- name: cancel
WITH gone AS (
    DELETE FROM {schema}.items i
    WHERE i.state = 'pending'
      AND (%(queue)s::text IS NULL OR i.queue = %(queue)s)
      AND (%(name)s::text IS NULL OR i.name = %(name)s)
      AND (%(tid)s::text IS NULL OR i.tid = %(tid)s)
    RETURNING 1
)
SELECT count(*) FROM gone

-- name: retry
WITH u AS (
    UPDATE {schema}.items
    SET state = 'pending', due = %(now)s, attempts = 0, worker = NULL, lease = NULL,
        lease_until = NULL, finished = NULL, updated = %(now)s
    WHERE id = %(id)s AND state = 'failed'
    RETURNING queue
)
SELECT queue, pg_notify(%(channel)s, queue) FROM u

-- name: state_of
SELECT {schema}.item_state(state, due, lease_until, %(now)s) FROM {schema}.items
WHERE id = %(id)s

-- name: counts
SELECT i.queue, {schema}.item_state(i.state, i.due, i.lease_until, %(now)s), count(*)
FROM {schema}.items i
WHERE NOT (i.state = 'done' AND i.expires IS NOT NULL AND i.expires <= %(now)s)
GROUP BY 1, 2

-- name: purge
-- Finished (done or failed) items of a queue, or of all, finished before `older_than`.
WITH gone AS (
    DELETE FROM {schema}.items i
    WHERE i.state = %(state)s
      AND (%(queue)s::text IS NULL OR i.queue = %(queue)s)
      AND (%(older_than)s::timestamptz IS NULL
           OR coalesce(i.finished, i.updated) < %(older_than)s)
    RETURNING 1
)
SELECT count(*) FROM gone

-- name: expire
-- Kept done items past their retention (the janitor, every cleanup_interval).
DELETE FROM {schema}.items WHERE state = 'done' AND expires <= %(now)s
