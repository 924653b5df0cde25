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
}
