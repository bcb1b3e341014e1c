-- The statements of recurring schedules, one per `-- name:` section (see _schedules.py).

-- name: schedules
SELECT name, cron, every, tz, tid, payload, catch_up, next, last
FROM wrkr_schedules ORDER BY name

-- name: save_schedule
-- Insert, or update a different definition (no row changed when it is the same one);
-- `next` changes only with the timing (cron, every, tz), `last` never.
INSERT INTO wrkr_schedules (name, cron, every, tz, tid, payload, catch_up, next, updated)
VALUES (:name, :cron, :every, :tz, :tid, :payload, :catch_up, :next, :now)
ON CONFLICT (name) DO UPDATE SET
    next = CASE WHEN cron IS excluded.cron AND every IS excluded.every AND tz = excluded.tz
                THEN next ELSE excluded.next END,
    cron = excluded.cron, every = excluded.every, tz = excluded.tz, tid = excluded.tid,
    payload = excluded.payload, catch_up = excluded.catch_up, updated = excluded.updated
WHERE NOT (cron IS excluded.cron AND every IS excluded.every AND tz = excluded.tz
           AND tid IS excluded.tid AND payload = excluded.payload
           AND catch_up = excluded.catch_up)

-- name: remove_schedule
DELETE FROM wrkr_schedules WHERE name = :name

-- name: take_firing
-- The firing's key is (name, due): only the transaction that still finds `next` at
-- `due` moves it on.
UPDATE wrkr_schedules
SET next = :next, last = coalesce(:fired, last), updated = :now
WHERE name = :name AND next = :due
