//! The metrics' counters per tenant: every poll, call, 429, failure and stored alert since the
//! store was made — the runs still stored plus what pruned runs added up to (`run_totals`), so
//! that a counter never goes down. A quiet streak is one row whose `polls` counts its polls.

use super::{Store, StoreError};

/// One tenant's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCounters {
    /// Finished polls.
    pub(crate) polls: i64,
    /// Polls that failed or were interrupted.
    pub(crate) failed: i64,
    /// API calls, retries included.
    pub(crate) api_calls: i64,
    /// 429 answers.
    pub(crate) throttled: i64,
    /// Alerts stored new (polls and imports).
    pub(crate) new: i64,
    /// Alerts stored with a changed state.
    pub(crate) updated: i64,
}

const COUNTERS: &str = "\
SELECT tenant, sum(polls), sum(failed), sum(api_calls), sum(throttled), sum(new), sum(updated) FROM (
  SELECT tenant,
    CASE WHEN kind = 'poll' AND outcome <> 'running' THEN polls ELSE 0 END AS polls,
    CASE WHEN kind = 'poll' AND outcome NOT IN ('ok', 'partial', 'running') THEN polls ELSE 0 END AS failed,
    api_calls, throttled, new, updated
  FROM runs WHERE tenant = ?1
  UNION ALL
  SELECT tenant, polls, failed, api_calls, throttled, new, updated FROM run_totals WHERE tenant = ?1
)";

impl Store {
    /// `tenant`'s counters (all zero for a tenant never polled).
    pub(crate) fn run_counters(&self, tenant: &str) -> Result<RunCounters, StoreError> {
        let mut q = self
            .conn
            .prepare_cached(COUNTERS)
            .map_err(|e| self.err(e))?;
        let n = |r: &rusqlite::Row<'_>, i| {
            Ok::<_, rusqlite::Error>(r.get::<_, Option<i64>>(i)?.unwrap_or(0))
        };
        q.query_row([tenant], |r| {
            Ok(RunCounters {
                polls: n(r, 1)?,
                failed: n(r, 2)?,
                api_calls: n(r, 3)?,
                throttled: n(r, 4)?,
                new: n(r, 5)?,
                updated: n(r, 6)?,
            })
        })
        .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Outcome, RunFigures};

    /// Runs that retention prunes still count: a counter never goes down.
    #[test]
    fn counters_survive_the_pruning_of_old_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        let n = crate::store::retention::KEEP_RUNS + 10;
        for i in 0..n {
            let run = s.begin_run("t1", "poll").unwrap();
            // Throttled, so no two runs fold into one quiet row.
            let figures = RunFigures {
                api_calls: 3,
                throttled: 1,
                ..RunFigures::default()
            };
            let outcome = if i % 2 == 0 {
                Outcome::Ok
            } else {
                Outcome::Failed
            };
            s.finish_run(run, outcome, figures, None, None).unwrap();
        }
        let before = s.run_counters("t1").unwrap();
        assert_eq!(
            (
                before.polls,
                before.failed,
                before.api_calls,
                before.throttled
            ),
            (n, n / 2, 3 * n, n)
        );
        s.connection()
            .execute("UPDATE runs SET started_at = '2000-01-01T00:00:00Z'", [])
            .unwrap();
        let report = crate::store::retention::prune(
            &mut s,
            std::time::Duration::from_secs(86_400),
            crate::alert::time::ApiTime::now(),
        )
        .unwrap();
        assert!(report.runs >= 9, "{report:?}");
        assert_eq!(s.run_counters("t1").unwrap(), before);
        assert_eq!(s.run_counters("nobody").unwrap(), RunCounters::default());
    }
}
