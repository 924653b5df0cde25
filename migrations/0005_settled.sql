-- The settled watermark: every alert whose lastUpdateTime is at or before it was read at least
-- `overlap` after that time, so no late-visible alert can still appear below it. A poll starts
-- here (not at `cursor − overlap`), so a poll cut short at its deadline resumes where it stopped
-- instead of re-reading the same overlap for ever. NULL for stores written before it existed.
ALTER TABLE cursors ADD COLUMN settled INTEGER;
