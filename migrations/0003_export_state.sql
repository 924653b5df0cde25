-- When each configured export last completed, for scope = "changed" ("what's new since the
-- last file"): alerts whose row changed in the store after this instant.
CREATE TABLE export_state (
    name        TEXT PRIMARY KEY,
    last_run_at TEXT NOT NULL   -- the store's own clock, same format as alerts.updated_at
);
CREATE INDEX alerts_by_store_change ON alerts (updated_at);
