-- Which API each tenant reads now and why: decided for a tenant with source = "auto" (Microsoft
-- Graph when its app holds Graph's alerts permission, else the Defender for Endpoint API), or
-- pinned by the config. `status` shows it without asking Microsoft. A row changes only when the
-- decision does, so a quiet poll writes nothing here.
CREATE TABLE api_choice (
    tenant TEXT PRIMARY KEY,
    api TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    since TEXT NOT NULL
);
