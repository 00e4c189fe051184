-- Where each model rollout stands at each station: the stations' retained .../rollout
-- state, the latest one kept per (station, rollout).
CREATE TABLE rollout_states (
    site text NOT NULL,
    line text NOT NULL,
    station text NOT NULL,
    rollout text NOT NULL,
    phase text NOT NULL,
    at timestamptz NOT NULL,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, line, station, rollout)
);
CREATE INDEX rollout_states_at ON rollout_states (site, line, station, at DESC);
