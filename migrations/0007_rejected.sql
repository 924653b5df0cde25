-- Elements of an API page that are not valid alerts (no id, an unreadable lastUpdateTime, not an
-- object): kept verbatim rather than dropped, once each, so that nothing the API sent is lost and
-- an admin can see what it was. `status` counts them.
CREATE TABLE rejected_elements (
    id        INTEGER PRIMARY KEY,
    tenant    TEXT NOT NULL,
    reason    TEXT NOT NULL,
    raw       TEXT NOT NULL,
    hash      BLOB NOT NULL,     -- BLAKE3 of raw
    stored_at TEXT NOT NULL,
    UNIQUE (tenant, hash)
);
