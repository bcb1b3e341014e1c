-- A start is stamped when its taker holds the window's lock, not when it asked: the
-- caller's `now` moved on by the time this statement waited for the lock. A taker that
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
