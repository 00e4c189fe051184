-- What the plant view asks for often (one shift's parts, times as RFC 3339 text), and dead
-- letters kept once each.

-- A shift's parts without reading every part ever stored (shift_start is immutable).
CREATE INDEX verdicts_shift ON verdicts (shift_start(captured_at));

-- UTC, second precision, the form links and the browser show.
CREATE FUNCTION utc_text(at timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- A bad message delivered twice (to each ingest, or again after a restart) is one dead letter.
DELETE FROM dead_letters d USING dead_letters e
WHERE d.topic = e.topic AND d.payload = e.payload AND d.id > e.id;
CREATE UNIQUE INDEX dead_letters_once ON dead_letters (topic, sha256(payload));
