//! What each export was last written from (`export_state.written_from`): see
//! `export::fingerprint`.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, now_text};

impl Store {
    /// What export set `name` was last written from (see `export::fingerprint`).
    pub(crate) fn export_written_from(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT written_from FROM export_state WHERE name = ?1",
                [name],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err(e))
    }

    /// Records what export set `name` was written from.
    pub fn set_export_written_from(&self, name: &str, from: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO export_state (name, last_run_at, written_from) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET written_from = excluded.written_from",
                params![name, now_text(), from],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The newest revision of any of `tenants`' alerts (0 when none), and the oldest
    /// `lastUpdateTime` among their alerts at or after `since` when asked: what an export of
    /// them depends on in the store.
    pub(crate) fn newest_rev_of(
        &self,
        tenants: &[&str],
        since: Option<crate::alert::time::ApiTime>,
    ) -> Result<(i64, Option<i64>), StoreError> {
        let mut newest = 0i64;
        let mut oldest: Option<i64> = None;
        let mut rev = self
            .conn
            .prepare_cached("SELECT coalesce(max(rev), 0) FROM alerts WHERE tenant = ?1")
            .map_err(|e| self.err(e))?;
        let mut first = self
            .conn
            .prepare_cached(
                "SELECT min(last_update_time) FROM alerts WHERE tenant = ?1 AND last_update_time >= ?2",
            )
            .map_err(|e| self.err(e))?;
        for t in tenants {
            newest = newest.max(
                rev.query_row([t], |r| r.get::<_, i64>(0))
                    .map_err(|e| self.err(e))?,
            );
            if let Some(since) = since {
                let o: Option<i64> = first
                    .query_row(params![t, since.ticks()], |r| r.get(0))
                    .map_err(|e| self.err(e))?;
                oldest = match (oldest, o) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        Ok((newest, oldest))
    }
}
