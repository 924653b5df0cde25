//! Runs: one row per poll or import, with its outcome and figures.

use super::Counts;
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
    pub fn as_str(self) -> &'static str {
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
    pub fn parse(word: &str) -> Option<Outcome> {
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
    pub fn succeeded(self) -> bool {
        matches!(self, Outcome::Ok | Outcome::Partial)
    }
}

/// Extra figures recorded when a run finishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunFigures {
    /// API calls, retries included.
    pub api_calls: u64,
    /// 429 answers.
    pub throttled: u64,
    /// Time spent waiting for budget or `Retry-After`.
    pub waited: std::time::Duration,
}

/// A run, as `status` shows it.
#[derive(Debug, Clone)]
pub struct RunRow {
    /// Row id.
    pub id: i64,
    /// Tenant.
    pub tenant: String,
    /// `poll` or `import`.
    pub kind: String,
    /// Start, RFC 3339.
    pub started_at: String,
    /// End, RFC 3339.
    pub finished_at: Option<String>,
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
    /// 429 answers.
    pub throttled: i64,
    /// Time spent waiting, in milliseconds.
    pub waited_ms: i64,
    /// Polls this row stands for: a streak of quiet polls is one row.
    pub polls: i64,
    /// When the newest poll of a streak began (`None` for a row of one run).
    pub last_started_at: Option<String>,
}

impl RunRow {
    /// When the newest run this row stands for began.
    pub fn last_start(&self) -> &str {
        self.last_started_at.as_deref().unwrap_or(&self.started_at)
    }
}

impl super::Store {
    /// Folds run `run`, just finished, into the tenant's run before it when both are quiet polls
    /// (ok, nothing new, changed, stale or invalid, not throttled): a quiet streak is one row, so a
    /// quiet service adds no row per poll. The row keeps the streak's first start, and takes the
    /// newest poll's start, end and cursor; calls and pages add up.
    pub(super) fn fold_quiet(&mut self, run: RunId) -> Result<(), super::StoreError> {
        const QUIET: &str = "kind = 'poll' AND outcome = 'ok' AND new = 0 AND updated = 0 \
             AND stale = 0 AND invalid = 0 AND throttled = 0 AND error IS NULL";
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
