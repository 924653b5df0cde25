-- Issue 13: keep only the indexes a query needs; each secondary index is written on every upsert.
-- Checked with EXPLAIN QUERY PLAN against every query on `alerts` (store, export, health, report,
-- compare, retention, check): none reads these two.
-- alerts_by_status (status, severity): the counts per status and severity are per tenant and go
--   through the primary key (tenant, id); scope "open" filters rows read in the export's order.
-- alerts_by_store_change (updated_at): scope "changed" has read `rev` since 0004_export_rev.
-- Kept: alerts_by_update (tenant, last_update_time) gives exports their order without a sort;
-- alerts_by_rev serves scope "changed" and the foreign key check when retention removes a
-- revision; the revisions' unique index is the dedup key.
DROP INDEX IF EXISTS alerts_by_status;
DROP INDEX IF EXISTS alerts_by_store_change;
