-- mde-alerts store, version 1. See src/store.rs for the transaction and durability contract.

-- Every distinct version of every alert, verbatim, exactly once.
CREATE TABLE alert_revisions (
    rev              INTEGER PRIMARY KEY,
    tenant           TEXT    NOT NULL,
    alert_id         TEXT    NOT NULL,
    last_update_time INTEGER NOT NULL,   -- 100 ns ticks since the Unix epoch
    content_hash     BLOB    NOT NULL,   -- BLAKE3 of the canonical JSON
    raw              TEXT    NOT NULL,   -- the alert exactly as the API returned it
    stored_at        TEXT    NOT NULL,
    UNIQUE (tenant, alert_id, content_hash)
);

-- One row per alert: its latest state, pointing at the revision that holds the JSON.
CREATE TABLE alerts (
    tenant           TEXT    NOT NULL,
    id               TEXT    NOT NULL,
    rev              INTEGER NOT NULL REFERENCES alert_revisions (rev),
    last_update_time INTEGER NOT NULL,
    content_hash     BLOB    NOT NULL,
    status           TEXT,
    severity         TEXT,
    category         TEXT,
    created          INTEGER,
    first_stored_at  TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

CREATE INDEX alerts_by_update ON alerts (tenant, last_update_time);
CREATE INDEX alerts_by_status ON alerts (status, severity);

-- The poll cursor: the largest lastUpdateTime committed, moved only in the transaction that stored
-- the alerts it covers.
CREATE TABLE cursors (
    tenant           TEXT    PRIMARY KEY,
    last_update_time INTEGER NOT NULL,
    updated_at       TEXT    NOT NULL
);

-- One row per poll or import.
CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    kind          TEXT    NOT NULL,                    -- poll | import
    started_at    TEXT    NOT NULL,
    finished_at   TEXT,
    outcome       TEXT    NOT NULL DEFAULT 'running',  -- running | ok | failed | interrupted
    api_calls     INTEGER NOT NULL DEFAULT 0,
    pages         INTEGER NOT NULL DEFAULT 0,
    new           INTEGER NOT NULL DEFAULT 0,
    updated       INTEGER NOT NULL DEFAULT 0,
    unchanged     INTEGER NOT NULL DEFAULT 0,
    stale         INTEGER NOT NULL DEFAULT 0,
    invalid       INTEGER NOT NULL DEFAULT 0,
    cursor_before INTEGER,
    cursor_after  INTEGER,
    error         TEXT
);

CREATE INDEX runs_by_tenant ON runs (tenant, id);
