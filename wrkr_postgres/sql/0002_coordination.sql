-- wrkr_postgres schema, version 2: one item per tid at a time, and rate limits.

-- A queue's options, stored by its first consumer; later ones must ask for the same.
CREATE TABLE {schema}.queues (
    queue       text PRIMARY KEY,
    exclusive   boolean NOT NULL,
    rate_limit  integer,
    rate_period double precision  -- seconds
);

-- Starts counted in sliding windows (a rated queue's claims, a limiter's acquisitions):
-- one row per claim or acquisition, `n` starts at `at`; rows a period old are deleted.
CREATE TABLE {schema}.starts (
    window_key text NOT NULL,
    at         timestamptz NOT NULL,
    n          integer NOT NULL
);
CREATE INDEX starts_by_window ON {schema}.starts (window_key, at);

-- Exclusive claims probe, per candidate, its tid's processing item and earlier pending ones.
CREATE INDEX items_tid_processing ON {schema}.items (queue, tid)
    WHERE state = 'processing' AND tid IS NOT NULL;
CREATE INDEX items_tid_pending ON {schema}.items (queue, tid, due, seq)
    WHERE state = 'pending' AND tid IS NOT NULL;

-- Take up to `wanted` starts that `window_key` allows at `now` (at most `lim` in any
-- `period`) and record them; return how many. An advisory lock per window serialises
-- takers of one window across every process, so the count and the record are atomic.
CREATE FUNCTION {schema}.take_slots(window_key text, lim integer, period interval,
                                    wanted integer, now timestamptz) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    used integer;
    taken integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('{schema}'), hashtext(window_key));
    DELETE FROM {schema}.starts s WHERE s.window_key = take_slots.window_key
        AND s.at <= take_slots.now - period;
    SELECT coalesce(sum(s.n), 0) INTO used FROM {schema}.starts s
        WHERE s.window_key = take_slots.window_key;
    taken := greatest(0, least(wanted, lim - used));
    IF taken > 0 THEN
        -- A caller that waited for the lock stamps no earlier than the latest start, so
        -- its start leaves the window no sooner than the ones granted before it.
        INSERT INTO {schema}.starts
        SELECT take_slots.window_key, greatest(take_slots.now, max(s.at)), taken
        FROM {schema}.starts s WHERE s.window_key = take_slots.window_key;
    END IF;
    RETURN taken;
END
$$;

-- A claim of an exclusive or rated queue (a plain one takes the `claim` statement).
-- Exclusive claims of one queue are serialised by an advisory lock, and each statement
-- below reads a snapshot taken after it, so a claim sees every item the previous claim
-- made processing: two claims can never start two items of one tid. A rated claim takes
-- at most what its window allows and records what it took (`starts`), in the same
-- transaction. Candidates walk `items_claimable` in (due, seq) order; one is skipped when
-- its tid has an item processing or an earlier-due pending one (`items_tid_*` indexes).
CREATE FUNCTION {schema}.claim_coordinated(
    q text, worker text, now timestamptz, until timestamptz, lim integer, token uuid,
    exclusive boolean, window_key text, rate_limit integer, period interval
) RETURNS SETOF {schema}.items
    LANGUAGE plpgsql AS $$
DECLARE
    room integer := lim;
    claimed integer;
BEGIN
    IF exclusive THEN
        PERFORM pg_advisory_xact_lock(hashtext('{schema}'), hashtext('claim:' || q));
    END IF;
    IF window_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('{schema}'), hashtext(window_key));
        DELETE FROM {schema}.starts s WHERE s.window_key = claim_coordinated.window_key
            AND s.at <= claim_coordinated.now - period;
        SELECT least(lim, rate_limit - coalesce(sum(s.n), 0)::integer) INTO room
            FROM {schema}.starts s WHERE s.window_key = claim_coordinated.window_key;
        IF room <= 0 THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY
    WITH expired AS (
        SELECT i.seq FROM {schema}.items i
        WHERE i.queue = q AND i.state = 'processing' AND i.lease_until <= now
        ORDER BY i.lease_until LIMIT room FOR UPDATE SKIP LOCKED
    ), due AS (
        SELECT i.seq FROM {schema}.items i
        WHERE i.queue = q AND i.state = 'pending' AND i.due <= now
          AND (NOT exclusive OR i.tid IS NULL OR (
              NOT EXISTS (SELECT 1 FROM {schema}.items b
                          WHERE b.queue = q AND b.tid = i.tid AND b.state = 'processing')
              AND NOT EXISTS (SELECT 1 FROM {schema}.items e
                              WHERE e.queue = q AND e.tid = i.tid AND e.state = 'pending'
                                AND (e.due, e.seq) < (i.due, i.seq))))
        ORDER BY i.due, i.seq LIMIT room FOR UPDATE SKIP LOCKED
    ), picked AS (
        SELECT seq FROM (SELECT seq FROM expired UNION ALL SELECT seq FROM due) AS both_
        LIMIT room
    )
    UPDATE {schema}.items i
    SET state = 'processing', attempts = i.attempts + 1, worker = claim_coordinated.worker,
        dedupe = false, lease = token, lease_until = until, updated = now
    FROM picked WHERE i.seq = picked.seq
    RETURNING i.*;
    GET DIAGNOSTICS claimed = ROW_COUNT;
    IF window_key IS NOT NULL AND claimed > 0 THEN
        INSERT INTO {schema}.starts
        SELECT claim_coordinated.window_key, greatest(now, max(s.at)), claimed
        FROM {schema}.starts s WHERE s.window_key = claim_coordinated.window_key;
    END IF;
END
$$;
