//! Runs: one row per poll or import, with its outcome and figures.

use rusqlite::{OptionalExtension, params};

use super::{Counts, StoreError};
use crate::alert::time::ApiTime;

/// A run's row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunId(pub i64);

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Completed.
    Ok,
    /// Stopped at its deadline (the next scheduled poll) with everything so far stored; the next
    /// poll continues. Healthy.
    Partial,
    /// Failed with an error.
    Failed,
    /// Stopped at its deadline without moving the settled watermark: it made no progress, and is
    /// not counted as a success (the same overlap would only be read again).
    Stalled,
    /// Stopped by a signal (or its process died) before it finished.
    Interrupted,
}

impl Outcome {
    /// The word stored in `runs.outcome`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Stalled => "stalled",
            Outcome::Interrupted => "interrupted",
        }
    }

    /// The outcome `runs.outcome` holds as `word`; `None` for a run still `running` (or a word
    /// this version does not know).
    pub(crate) fn parse(word: &str) -> Option<Outcome> {
        [
            Outcome::Ok,
            Outcome::Partial,
            Outcome::Failed,
            Outcome::Stalled,
            Outcome::Interrupted,
        ]
        .into_iter()
        .find(|o| o.as_str() == word)
    }

    /// Whether a poll that ended so counts as a success: it completed, or stopped at its
    /// deadline with progress stored.
    pub(crate) fn succeeded(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Partial)
    }
}

/// Extra figures recorded when a run finishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunFigures {
    /// API calls, retries included.
    pub(crate) api_calls: u64,
    /// 429 answers.
    pub(crate) throttled: u64,
    /// Time spent waiting for budget or `Retry-After`.
    pub(crate) waited: std::time::Duration,
}

/// A run, as `status` shows it.
#[derive(Debug, Clone)]
pub struct RunRow {
    /// Row id.
    #[cfg(test)]
    pub(crate) id: i64,
    /// Tenant.
    pub tenant: String,
    /// `poll` or `import`.
    pub(crate) kind: String,
    /// Start, RFC 3339.
    pub(crate) started_at: String,
    /// End, RFC 3339.
    pub(crate) finished_at: Option<String>,
    /// `running`, `ok`, `failed`, `interrupted`.
    pub outcome: String,
    /// HTTP calls to the API.
    pub api_calls: i64,
    /// Pages committed.
    pub pages: i64,
    /// Counters.
    pub counts: Counts,
    /// The cursor after the run.
    pub cursor_after: Option<ApiTime>,
    /// The error, if it failed.
    pub error: Option<String>,
    /// What to do about the error, when there is something to do.
    pub(crate) fix: Option<String>,
    /// 429 answers.
    pub(crate) throttled: i64,
    /// Time spent waiting, in milliseconds.
    pub(crate) waited_ms: i64,
    /// Polls this row stands for: a streak of quiet polls is one row.
    pub polls: i64,
    /// When the newest poll of a streak began (`None` for a row of one run).
    pub(crate) last_started_at: Option<String>,
}

impl RunRow {
    /// When the newest run this row stands for began.
    pub(crate) fn last_start(&self) -> &str {
        self.last_started_at.as_deref().unwrap_or(&self.started_at)
    }
}

impl super::Store {
    /// Records the start of a run, marking any run of the tenant left `running` by a killed process
    /// as `interrupted`.
    pub fn begin_run(&mut self, tenant: &str, kind: &str) -> Result<RunId, StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| super::classify(&path, e))?;
        let cursor: Option<i64> = tx
            .query_row(
                "SELECT last_update_time FROM cursors WHERE tenant = ?1",
                [tenant],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| super::classify(&path, e))?;
        tx.execute(
            "UPDATE runs SET outcome = 'interrupted', finished_at = ?2 \
             WHERE tenant = ?1 AND outcome = 'running'",
            params![tenant, super::now_text()],
        )
        .map_err(|e| super::classify(&path, e))?;
        tx.execute(
            "INSERT INTO runs (tenant, kind, started_at, cursor_before, cursor_after) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![tenant, kind, super::now_text(), cursor],
        )
        .map_err(|e| super::classify(&path, e))?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(|e| super::classify(&path, e))?;
        Ok(RunId(id))
    }

    /// Records how a run ended.
    pub fn finish_run(
        &mut self,
        run: RunId,
        outcome: Outcome,
        figures: RunFigures,
        error: Option<&str>,
        fix: Option<&str>,
    ) -> Result<(), StoreError> {
        let outcome = outcome.as_str();
        self.conn
            .execute(
                "UPDATE runs SET outcome = ?2, finished_at = ?3, api_calls = ?4, error = ?5, \
                 throttled = ?6, waited_ms = ?7, fix = ?8 WHERE id = ?1",
                params![
                    run.0,
                    outcome,
                    super::now_text(),
                    figures.api_calls as i64,
                    error,
                    figures.throttled as i64,
                    figures.waited.as_millis() as i64,
                    fix
                ],
            )
            .map_err(|e| self.err(e))?;
        self.fold_quiet(run)
    }

    /// Closes the tenant's runs still `running` with `outcome` and `why`: a signal stopped this
    /// process (`Interrupted`), or the job panicked (`Failed`), so no run stays "running" for ever.
    /// A poll cut short before it wrote anything has no row yet: it is given one, so the cut is
    /// recorded all the same.
    pub(crate) fn close_running(
        &mut self,
        tenant: &str,
        outcome: Outcome,
        why: &str,
    ) -> Result<(), StoreError> {
        let open = self.poll_open(tenant);
        let path = self.path.clone();
        let mut w = self.poll_writer(tenant)?;
        let running: bool =
            w.tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE tenant = ?1 AND outcome = 'running')",
                [tenant],
                |r| r.get(0),
            )
            .map_err(|e| super::classify(&path, e))?;
        if !running && open {
            w.poll_run(tenant, None)?;
        }
        w.tx.execute(
            "UPDATE runs SET outcome = ?2, finished_at = ?3, error = ?4 \
             WHERE tenant = ?1 AND outcome = 'running'",
            params![tenant, outcome.as_str(), super::now_text(), why],
        )
        .map_err(|e| super::classify(&path, e))?;
        let wrote = w.wrote_streak();
        w.commit(None, 0)?;
        if wrote {
            self.quiet_written(tenant);
        }
        self.poll_ended(tenant);
        Ok(())
    }

    /// Runs, newest first, with the quiet polls still in memory shown as written.
    pub fn runs(&self, tenant: Option<&str>, limit: u32) -> Result<Vec<RunRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, tenant, kind, started_at, finished_at, outcome, api_calls, pages, new, updated, \
                 unchanged, stale, invalid, cursor_after, error, throttled, waited_ms, polls, \
                 last_started_at, fix FROM runs \
                 WHERE (?1 IS NULL OR tenant = ?1) ORDER BY id DESC LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![tenant, limit], |r| {
                Ok(RunRow {
                    #[cfg(test)]
                    id: r.get(0)?,
                    tenant: r.get(1)?,
                    kind: r.get(2)?,
                    started_at: r.get(3)?,
                    finished_at: r.get(4)?,
                    outcome: r.get(5)?,
                    api_calls: r.get(6)?,
                    pages: r.get(7)?,
                    counts: Counts {
                        new: r.get::<_, i64>(8)? as u64,
                        updated: r.get::<_, i64>(9)? as u64,
                        unchanged: r.get::<_, i64>(10)? as u64,
                        stale: r.get::<_, i64>(11)? as u64,
                        invalid: r.get::<_, i64>(12)? as u64,
                    },
                    cursor_after: r.get::<_, Option<i64>>(13)?.map(ApiTime::from_ticks),
                    error: r.get(14)?,
                    throttled: r.get(15)?,
                    waited_ms: r.get(16)?,
                    polls: r.get(17)?,
                    last_started_at: r.get(18)?,
                    fix: r.get(19)?,
                })
            })
            .map_err(|e| self.err(e))?;
        let rows = rows.collect::<Result<_, _>>().map_err(|e| self.err(e))?;
        let mut rows = self.with_pending(tenant, rows);
        rows.truncate(limit as usize);
        Ok(rows)
    }

    /// Folds run `run`, just finished, into the tenant's run before it when both are quiet polls
    /// (ok, nothing new, changed, stale or invalid, not throttled): a quiet streak is one row, so a
    /// quiet service adds no row per poll. The row keeps the streak's first start, and takes the
    /// newest poll's start, end and cursor; calls and pages add up.
    pub(super) fn fold_quiet(&mut self, run: RunId) -> Result<(), super::StoreError> {
        use super::quiet::QUIET;
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|e| super::classify(&path, e))?;
        let fold = || -> rusqlite::Result<()> {
            use rusqlite::OptionalExtension;
            let this: Option<(String, String)> = tx
                .query_row(
                    &format!("SELECT tenant, started_at FROM runs WHERE id = ?1 AND {QUIET}"),
                    [run.0],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((tenant, started)) = this else {
                return Ok(());
            };
            let before: Option<i64> = tx
                .query_row(
                    "SELECT id FROM runs WHERE tenant = ?1 AND id < ?2 ORDER BY id DESC LIMIT 1",
                    rusqlite::params![tenant, run.0],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(before) = before else {
                return Ok(());
            };
            let quiet: bool = tx.query_row(
                &format!("SELECT EXISTS (SELECT 1 FROM runs WHERE id = ?1 AND {QUIET})"),
                [before],
                |r| r.get(0),
            )?;
            if !quiet {
                return Ok(());
            }
            tx.execute(
                "UPDATE runs SET (finished_at, api_calls, pages, unchanged, cursor_after, waited_ms, \
                 polls, last_started_at) = (SELECT t.finished_at, runs.api_calls + t.api_calls, \
                 runs.pages + t.pages, runs.unchanged + t.unchanged, t.cursor_after, \
                 runs.waited_ms + t.waited_ms, runs.polls + t.polls, ?3 FROM runs AS t WHERE t.id = ?2) \
                 WHERE id = ?1",
                rusqlite::params![before, run.0, started],
            )?;
            tx.execute("DELETE FROM runs WHERE id = ?1", [run.0])?;
            Ok(())
        };
        let folded = fold();
        folded
            .and_then(|()| tx.commit())
            .map_err(|e| super::classify(&path, e))
    }
}
