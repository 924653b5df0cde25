-- Which Entra tenant each stored tenant name belongs to. The store keys rows by the configured
-- `name` (a label people read); this table lets a renamed tenant (same tenant_id, new name) keep
-- its alerts, cursor and history instead of being backfilled again under the new name.
CREATE TABLE tenants (
    name      TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL    -- lower case
);
CREATE INDEX tenants_by_id ON tenants (tenant_id);
