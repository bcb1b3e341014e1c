-- The statements PostgresBackend runs, one per `-- name:` section (see _sql.py).
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

-- name: enqueue
-- One statement for the batch: route every message through the subscriptions, skip
-- `once_every` messages whose (queue, name, tid) is already pending, insert in message
-- order, and NOTIFY each queue that got an item (delivered at commit).
WITH msg AS (
    SELECT * FROM unnest(%(names)b::text[], %(tids)b::text[], %(payloads)b::bytea[],
                         %(dues)b::timestamptz[], %(createds)b::timestamptz[],
                         %(dedupes)b::boolean[])
        WITH ORDINALITY AS m(name, tid, payload, due, created, dedupe, ord)
), routed AS (
    SELECT DISTINCT m.ord, s.queue
    FROM msg m JOIN {schema}.subscriptions s
      ON s.pattern = m.name OR (s.regex IS NOT NULL AND ('.' || m.name) ~ s.regex)
), ins AS (
    INSERT INTO {schema}.items AS i (id, queue, name, tid, payload, due, created, dedupe,
                                     updated)
    SELECT gen_random_uuid(), r.queue, m.name, m.tid, m.payload, m.due, m.created,
           m.dedupe, %(now)s
    FROM routed r JOIN msg m USING (ord)
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
SELECT ins.id FROM ins, woken ORDER BY ins.seq

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

-- name: next_change
SELECT least(
    (SELECT min(due) FROM {schema}.items WHERE queue = %(queue)s AND state = 'pending'),
    (SELECT min(lease_until) FROM {schema}.items
     WHERE queue = %(queue)s AND state = 'processing'))

-- name: renew
UPDATE {schema}.items SET lease_until = %(until)s
WHERE seq = %(seq)s AND lease = %(lease)s AND state = 'processing'
RETURNING seq

-- name: ack
-- A batch of acks (see _acks.py): delete, or keep as done; fenced by the lease token.
WITH a AS (
    SELECT * FROM unnest(%(seqs)b::bigint[], %(leases)b::uuid[], %(keeps)b::boolean[],
                         %(expires)b::timestamptz[]) AS a(seq, lease, keep, expires)
), gone AS (
    DELETE FROM {schema}.items i USING a
    WHERE i.seq = a.seq AND i.lease = a.lease AND i.state = 'processing' AND NOT a.keep
    RETURNING i.seq
), kept AS (
    UPDATE {schema}.items i
    SET state = 'done', finished = %(now)s, expires = a.expires, lease = NULL,
        lease_until = NULL, updated = %(now)s
    FROM a WHERE i.seq = a.seq AND i.lease = a.lease AND i.state = 'processing' AND a.keep
    RETURNING i.seq
)
SELECT seq FROM gone UNION ALL SELECT seq FROM kept

-- name: nack
WITH u AS (
    UPDATE {schema}.items
    SET state = 'pending', due = %(due)s, errors = errors || %(error)s::jsonb, worker = NULL,
        lease = NULL, lease_until = NULL, updated = %(now)s
    WHERE seq = %(seq)s AND lease = %(lease)s AND state = 'processing'
    RETURNING queue
)
SELECT pg_notify(%(channel)s, queue) FROM u

-- name: fail
UPDATE {schema}.items
SET state = 'failed', errors = errors || %(error)s::jsonb, lease = NULL, lease_until = NULL,
    updated = %(now)s
WHERE seq = %(seq)s AND lease = %(lease)s AND state = 'processing'
RETURNING seq

-- name: give_back
-- Release (`uncount`: the attempt does not count) or abandon (a closing backend: as if
-- the leases had expired) held items; fenced by the lease token.
WITH u AS (
    UPDATE {schema}.items i
    SET state = 'pending', attempts = i.attempts - (CASE WHEN %(uncount)s THEN 1 ELSE 0 END),
        worker = NULL, lease = NULL, lease_until = NULL, updated = %(now)s
    FROM unnest(%(seqs)b::bigint[], %(leases)b::uuid[]) AS g(seq, lease)
    WHERE i.seq = g.seq AND i.lease = g.lease AND i.state = 'processing'
    RETURNING i.seq, i.queue
), woken AS (
    SELECT count(pg_notify(%(channel)s, q.queue)) AS n FROM (SELECT DISTINCT queue FROM u) q
)
SELECT u.seq FROM u, woken

-- name: items
SELECT {columns} FROM {schema}.items i
WHERE (%(queue)s::text IS NULL OR i.queue = %(queue)s)
  AND (%(name)s::text IS NULL OR i.name = %(name)s)
  AND (%(tid)s::text IS NULL OR i.tid = %(tid)s)
  AND (%(state)s::text IS NULL
       OR {schema}.item_state(i.state, i.due, i.lease_until, %(now)s) = %(state)s)
  AND NOT (i.state = 'done' AND i.expires IS NOT NULL AND i.expires <= %(now)s)
ORDER BY i.due, i.seq
LIMIT %(limit)s

-- name: get
SELECT {columns} FROM {schema}.items i
WHERE i.id = %(id)s AND NOT (i.state = 'done' AND i.expires IS NOT NULL AND i.expires <= %(now)s)

-- name: cancel
DELETE FROM {schema}.items i
WHERE i.state = 'pending'
  AND (%(queue)s::text IS NULL OR i.queue = %(queue)s)
  AND (%(name)s::text IS NULL OR i.name = %(name)s)
  AND (%(tid)s::text IS NULL OR i.tid = %(tid)s)
  AND (%(state)s::text IS NULL
       OR {schema}.item_state(i.state, i.due, i.lease_until, %(now)s) = %(state)s)

-- name: retry
WITH u AS (
    UPDATE {schema}.items
    SET state = 'pending', due = %(now)s, attempts = 0, worker = NULL, lease = NULL,
        lease_until = NULL, finished = NULL, updated = %(now)s
    WHERE id = %(id)s AND state = 'failed'
    RETURNING queue
)
SELECT pg_notify(%(channel)s, queue) FROM u

-- name: state_of
SELECT {schema}.item_state(state, due, lease_until, %(now)s) FROM {schema}.items
WHERE id = %(id)s

-- name: counts
SELECT i.queue, {schema}.item_state(i.state, i.due, i.lease_until, %(now)s), count(*)
FROM {schema}.items i
WHERE NOT (i.state = 'done' AND i.expires IS NOT NULL AND i.expires <= %(now)s)
GROUP BY 1, 2

-- name: purge
DELETE FROM {schema}.items WHERE state = 'done' AND expires <= %(now)s
