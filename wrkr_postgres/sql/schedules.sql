-- The statements of recurring schedules, one per `-- name:` section (see _sql.py).

-- name: schedules
SELECT name, cron, every, tz, tid, payload, catch_up, next, last
FROM {schema}.schedules ORDER BY name

-- name: save_schedule
-- Insert, or update a different definition; `next` changes only with the timing.
INSERT INTO {schema}.schedules AS s (name, cron, every, tz, tid, payload, catch_up, next,
                                     updated)
VALUES (%(name)s, %(cron)s, %(every)s, %(tz)s, %(tid)s, %(payload)s, %(catch_up)s,
        %(next)s, %(now)s)
ON CONFLICT (name) DO UPDATE SET
    next = CASE WHEN (s.cron, s.every, s.tz)
                     IS NOT DISTINCT FROM (excluded.cron, excluded.every, excluded.tz)
                THEN s.next ELSE excluded.next END,
    cron = excluded.cron, every = excluded.every, tz = excluded.tz, tid = excluded.tid,
    payload = excluded.payload, catch_up = excluded.catch_up, updated = excluded.updated
WHERE (s.cron, s.every, s.tz, s.tid, s.payload, s.catch_up)
      IS DISTINCT FROM (excluded.cron, excluded.every, excluded.tz, excluded.tid,
                        excluded.payload, excluded.catch_up)
RETURNING 1

-- name: remove_schedule
DELETE FROM {schema}.schedules WHERE name = %(name)s RETURNING 1

-- name: take_firing
-- The firing's key is (name, due): only the transaction that still finds `next` at
-- `due` moves it on (a concurrent one waits on the row lock, then finds it moved).
UPDATE {schema}.schedules
SET next = %(next)s, last = coalesce(%(fired)s, last), updated = %(now)s
WHERE name = %(name)s AND next = %(due)s
RETURNING 1
