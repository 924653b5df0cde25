-- Mails of written exports that the mail server did not take: the export's files stay on disk,
-- and the next run of that export sends these files before its own, so an outage costs a late
-- mail, never a second export.
CREATE TABLE mail_pending (
    id          INTEGER PRIMARY KEY,
    export      TEXT NOT NULL,
    files       TEXT NOT NULL,   -- JSON array of the written files' paths
    written_at  TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 1,
    last_error  TEXT NOT NULL
);
CREATE INDEX mail_pending_export ON mail_pending (export);
