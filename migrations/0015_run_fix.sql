-- What the admin can do about a failed run, kept beside its error so that `status`, read in
-- another process long after the log scrolled away, says the fix as the failing run did.
ALTER TABLE runs ADD COLUMN fix TEXT;
