-- What the plant view asks for often: one shift's parts, and times as RFC 3339 text.

-- A shift's parts without reading every part ever stored (shift_start is immutable).
CREATE INDEX verdicts_shift ON verdicts (shift_start(captured_at));

-- UTC, second precision, the form links and the browser show.
CREATE FUNCTION utc_text(at timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;
