-- API calls of the last hour per tenant, so that the budget outlives the process (poll usually
-- runs once per timer tick). Pruned to the last hour on every write.
CREATE TABLE api_calls (
    tenant TEXT    NOT NULL,
    at_ms  INTEGER NOT NULL   -- Unix milliseconds
);
CREATE INDEX api_calls_by_tenant ON api_calls (tenant, at_ms);

-- 429 answers per run, and time spent waiting (for budget or for Retry-After).
ALTER TABLE runs ADD COLUMN throttled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN waited_ms INTEGER NOT NULL DEFAULT 0;
