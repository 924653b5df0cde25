-- What each export's file set was last written from (its settings, the tenants it covers, the
-- newest revision among them, and for time-relative exports the instant that bounds them): an
-- export that follows a poll is not written again while that stays the same, so a quiet service
-- writes no file.
ALTER TABLE export_state ADD COLUMN written_from TEXT;
