-- A start is stamped when its taker holds the window's lock, not when it asked: the
-- caller's `now` moved on by the time this statement waited for the lock, for a
-- limiter's take and for a rated queue's claim alike (items are still claimed by `now`). A taker that
-- waited longer than the period used to stamp a time before starts that others had
-- already counted and deleted, so a log of the stamps could show N+1 in one period.
-- (Only a duration is added, so a store's own clock, virtual or not, still rules.)
CREATE OR REPLACE FUNCTION {schema}.take_slots(window_key text, lim integer, period interval,
                                               wanted integer, now timestamptz) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    used integer;
    taken integer;
    stamp timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('{schema}'), hashtext(window_key));
    stamp := take_slots.now + (clock_timestamp() - statement_timestamp());
    DELETE FROM {schema}.starts s WHERE s.window_key = take_slots.window_key
        AND s.at <= stamp - period;
    SELECT coalesce(sum(s.n), 0) INTO used FROM {schema}.starts s
        WHERE s.window_key = take_slots.window_key;
    taken := greatest(0, least(wanted, lim - used));
    IF taken > 0 THEN
        -- Never earlier than the latest start either, so a start leaves the window no
        -- sooner than the ones granted before it.
        INSERT INTO {schema}.starts
        SELECT take_slots.window_key, greatest(stamp, max(s.at)), taken
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
CREATE OR REPLACE FUNCTION {schema}.claim_coordinated(
    q text, worker text, now timestamptz, until timestamptz, lim integer, token uuid,
    exclusive boolean, window_key text, rate_limit integer, period interval
) RETURNS SETOF {schema}.items
    LANGUAGE plpgsql AS $$
DECLARE
    room integer := lim;
    claimed integer;
    stamp timestamptz;
BEGIN
    IF exclusive THEN
        PERFORM pg_advisory_xact_lock(hashtext('{schema}'), hashtext('claim:' || q));
    END IF;
    IF window_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('{schema}'), hashtext(window_key));
        stamp := claim_coordinated.now + (clock_timestamp() - statement_timestamp());
        DELETE FROM {schema}.starts s WHERE s.window_key = claim_coordinated.window_key
            AND s.at <= stamp - period;
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
        SELECT claim_coordinated.window_key, greatest(stamp, max(s.at)), claimed
        FROM {schema}.starts s WHERE s.window_key = claim_coordinated.window_key;
    END IF;
END
$$;
