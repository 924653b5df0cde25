//! Mails the server did not take (`mail_pending`): which export, which files. The files are the
//! export's timestamped files, which never change once written, so a retry sends exactly what
//! the failed mail would have.

use std::path::PathBuf;

use rusqlite::params;

use super::{Store, StoreError, now_text};

/// One mail still to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMail {
    /// The row, to clear it once sent.
    pub(crate) id: i64,
    /// The export's configured name.
    export: String,
    /// The files to send.
    pub(crate) files: Vec<PathBuf>,
    /// When the files were written.
    written_at: String,
    /// How often sending was tried.
    pub(crate) attempts: i64,
    /// The server's last answer.
    last_error: String,
}

impl Store {
    /// Records that the mail of `files` (export `export`) failed with `error`.
    pub(crate) fn add_pending_mail(
        &self,
        export: &str,
        files: &[PathBuf],
        error: &str,
    ) -> Result<(), StoreError> {
        let files: Vec<String> = files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let files = serde_json::to_string(&files).unwrap_or_else(|_| "[]".into());
        self.conn
            .execute(
                "INSERT INTO mail_pending (export, files, written_at, last_error) VALUES (?1, ?2, ?3, ?4)",
                params![export, files, now_text(), error],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The mails of export `export` still to send, oldest first.
    pub(crate) fn pending_mails(&self, export: &str) -> Result<Vec<PendingMail>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT id, export, files, written_at, attempts, last_error FROM mail_pending \
                 WHERE export = ?1 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map([export], |r| {
                let files: String = r.get(2)?;
                Ok(PendingMail {
                    id: r.get(0)?,
                    export: r.get(1)?,
                    files: serde_json::from_str::<Vec<String>>(&files)
                        .unwrap_or_default()
                        .into_iter()
                        .map(PathBuf::from)
                        .collect(),
                    written_at: r.get(3)?,
                    attempts: r.get(4)?,
                    last_error: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Every mail still to send, of any export (`status`, tests).
    pub fn pending_mail_count(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM mail_pending", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// Another failed try of pending mail `id`.
    pub(crate) fn retry_pending_mail(&self, id: i64, error: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE mail_pending SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id, error],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Pending mail `id` was sent (or can no longer be: its files are gone).
    pub(crate) fn clear_pending_mail(&self, id: i64) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM mail_pending WHERE id = ?1", [id])
            .map(drop)
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_mail_is_kept_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("a.db")).unwrap();
        let f = vec![PathBuf::from("/x/daily-20261206T060000Z.html")];
        s.add_pending_mail("daily", &f, "550 relay denied").unwrap();
        s.add_pending_mail("other", &f, "down").unwrap();
        let p = s.pending_mails("daily").unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].files, f);
        assert_eq!(
            (p[0].attempts, p[0].last_error.as_str()),
            (1, "550 relay denied")
        );
        s.retry_pending_mail(p[0].id, "421 busy").unwrap();
        let p = s.pending_mails("daily").unwrap();
        assert_eq!((p[0].attempts, p[0].last_error.as_str()), (2, "421 busy"));
        s.clear_pending_mail(p[0].id).unwrap();
        assert!(s.pending_mails("daily").unwrap().is_empty());
        assert_eq!(s.pending_mail_count().unwrap(), 1);
    }
}
