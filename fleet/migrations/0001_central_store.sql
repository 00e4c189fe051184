-- The plant's central store: what every station published, once each.
-- Every row is keyed by where it comes from and the station's own id (never reused), so a
-- message the broker delivers twice (QoS 1) is one row.

CREATE TABLE verdicts (
    site text NOT NULL,
    line text NOT NULL,
    station text NOT NULL,
    id bigint NOT NULL,
    captured_at timestamptz NOT NULL,
    verdict text NOT NULL,
    label text NOT NULL,
    defect_score double precision,
    model text,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, line, station, id)
);
CREATE INDEX verdicts_captured ON verdicts (captured_at);

CREATE TABLE reviews (
    site text NOT NULL,
    line text NOT NULL,
    station text NOT NULL,
    id bigint NOT NULL,
    verdict_id bigint NOT NULL,
    reviewed_at timestamptz NOT NULL,
    reviewer text NOT NULL,
    action text NOT NULL,
    before text NOT NULL,
    after text NOT NULL,
    reason text,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, line, station, id)
);
CREATE INDEX reviews_verdict ON reviews (site, line, station, verdict_id);

CREATE TABLE alarms (
    site text NOT NULL,
    line text NOT NULL,
    station text NOT NULL,
    id bigint NOT NULL,
    raised_at timestamptz NOT NULL,
    chart text NOT NULL,
    rule text NOT NULL,
    message text NOT NULL,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, line, station, id)
);

-- KPI reports are retained snapshots: one row per station and the report's end.
CREATE TABLE kpi_reports (
    site text NOT NULL,
    line text NOT NULL,
    station text NOT NULL,
    until timestamptz NOT NULL,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, line, station, until)
);

-- Each station's presence: the state it announced, and since when (a stale retained
-- message never overwrites a newer one).
CREATE TABLE station_status (
    site text NOT NULL,
    line text NOT NULL,
    station text NOT NULL,
    state text NOT NULL,
    since timestamptz NOT NULL,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, line, station)
);

-- What could not be stored, with why: kept, never retried, never a crash.
CREATE TABLE dead_letters (
    id bigserial PRIMARY KEY,
    topic text NOT NULL,
    payload bytea NOT NULL,
    reason text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- Shifts are 8 hours from 06:00 UTC (06-14, 14-22, 22-06).
CREATE FUNCTION shift_start(at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT date_bin('8 hours', at, TIMESTAMPTZ '2000-01-01 06:00:00+00')
$$;

-- Each part as it is held now: the latest review's answer, else the model's.
CREATE VIEW parts AS
SELECT v.site, v.line, v.station, v.id, v.captured_at, shift_start(v.captured_at) AS shift,
       v.verdict, v.model, v.defect_score,
       r.action AS review_action, r.after AS reviewed_as,
       COALESCE(r.after, v.label) AS final_label
FROM verdicts v
LEFT JOIN LATERAL (
    SELECT action, after FROM reviews r
    WHERE r.site = v.site AND r.line = v.line AND r.station = v.station AND r.verdict_id = v.id
    ORDER BY r.id DESC LIMIT 1
) r ON true;

-- Yield, uncertain, override and false-reject rates per station and shift. A false reject
-- is a part the model called a defect that a person held to be good.
CREATE VIEW fleet_shift_kpis AS
SELECT site, line, station, shift,
       count(*) AS parts,
       count(*) FILTER (WHERE final_label = 'good') AS good,
       round(count(*) FILTER (WHERE final_label = 'good')::numeric / count(*), 4) AS yield,
       round(count(*) FILTER (WHERE verdict = 'uncertain')::numeric / count(*), 4) AS uncertain_rate,
       round(count(*) FILTER (WHERE review_action = 'override')::numeric / count(*), 4) AS override_rate,
       round(count(*) FILTER (WHERE verdict = 'defect' AND reviewed_as = 'good')::numeric
             / GREATEST(count(*) FILTER (WHERE verdict = 'defect'), 1), 4) AS false_reject_rate
FROM parts
GROUP BY site, line, station, shift;

-- The same, rolled up per line and per site.
CREATE VIEW fleet_line_kpis AS
SELECT site, line, shift, sum(parts) AS parts, sum(good) AS good,
       round(sum(good) / sum(parts), 4) AS yield
FROM fleet_shift_kpis GROUP BY site, line, shift;

CREATE VIEW fleet_site_kpis AS
SELECT site, shift, sum(parts) AS parts, sum(good) AS good,
       round(sum(good) / sum(parts), 4) AS yield
FROM fleet_shift_kpis GROUP BY site, shift;

-- Defect Pareto: how often each defect label was held, per line and shift, largest first.
CREATE VIEW fleet_defect_pareto AS
SELECT site, line, shift, final_label AS defect, count(*) AS parts
FROM parts
-- An uncertain part nobody has answered yet is no defect of any kind.
WHERE final_label <> 'good' AND (verdict <> 'uncertain' OR reviewed_as IS NOT NULL)
GROUP BY site, line, shift, final_label
ORDER BY site, line, shift, count(*) DESC;

CREATE VIEW fleet_alarms AS
SELECT site, line, station, id, raised_at, shift_start(raised_at) AS shift, chart, rule, message
FROM alarms ORDER BY raised_at DESC;
