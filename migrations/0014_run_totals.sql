-- What the runs that retention removed added up to, per tenant: the metrics' counters are these
-- plus the runs still stored, so they never go down when old runs are pruned (Prometheus would
-- read a drop as a restart of the counter).
CREATE TABLE run_totals (
    tenant     TEXT PRIMARY KEY,
    polls      INTEGER NOT NULL DEFAULT 0,
    failed     INTEGER NOT NULL DEFAULT 0,
    api_calls  INTEGER NOT NULL DEFAULT 0,
    throttled  INTEGER NOT NULL DEFAULT 0,
    new        INTEGER NOT NULL DEFAULT 0,
    updated    INTEGER NOT NULL DEFAULT 0
);
