-- Which API returned each revision (`mde`: Defender for Endpoint's /api/alerts; `graph`: Microsoft
-- Graph's security/alerts_v2), and which API and which Defender products last moved each tenant's
-- cursor: a tenant switched from one API to the other re-reads one overlap, since the two need not
-- make an alert visible at the same moment; one whose `services` grew reads back
-- `initial_lookback`, since the cursor says nothing of the products it did not cover; so does one
-- switched back from Graph to the MDE API (Graph leaves out tuned and standalone alerts). Such a
-- read-back is resumable: `readback` is how far it has read, NULL when none is under way.
-- Rows from before this migration came from the MDE API (endpoint alerts).
ALTER TABLE alert_revisions ADD COLUMN api TEXT NOT NULL DEFAULT 'mde';
ALTER TABLE cursors ADD COLUMN api TEXT;
ALTER TABLE cursors ADD COLUMN services TEXT;
ALTER TABLE cursors ADD COLUMN readback INTEGER;
