-- A streak of quiet polls (ok, nothing new, changed, stale or invalid, no throttling) is one row:
-- each quiet poll folds into the quiet row before it, so a service that polls a quiet tenant every
-- five minutes adds no row per poll. `polls` counts the polls in the row; `last_started_at` is when
-- the newest of them began (`started_at` stays the first's).
ALTER TABLE runs ADD COLUMN polls INTEGER NOT NULL DEFAULT 1;
ALTER TABLE runs ADD COLUMN last_started_at TEXT;
