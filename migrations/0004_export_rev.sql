-- scope = "changed" by revision number instead of wall-clock time: revision ids only grow, so an
-- alert stored while an export runs (or after the clock stepped back) is never skipped.
ALTER TABLE export_state ADD COLUMN last_rev INTEGER;
CREATE INDEX alerts_by_rev ON alerts (rev);
