//! Quiet polls kept in memory: a poll that stored nothing and moved no cursor writes nothing when
//! it ends. Its bookkeeping (the quiet streak's run row, the API calls the budget counts, the
//! settled watermark) waits here and is written for every tenant at once, in one transaction, at
//! most every [`FLUSH_EVERY`], before anything else the tenant writes, and when the store is
//! closed.
//!
//! Why: at 1,000 tenants a quiet poll that wrote its run row, its calls and its watermark in four
//! small transactions cost each tenant about a quarter of a megabyte of WAL and checkpoint traffic
//! per poll, gigabytes an hour for a service that had nothing to say. One transaction for every
//! tenant's streak touches each B-tree page once.
//!
//! What a crash costs: at most [`FLUSH_EVERY`] of quiet bookkeeping, never an alert nor a cursor.
//! The settled watermark then starts the next poll a little earlier (its overlap is read again:
//! `Unchanged` rows), the runs table counts fewer quiet polls, and the budget's history misses a
//! few calls of one call each, far below its limits.
//!
//! Readers in this process ([`Store::runs`], [`Store::settled`], [`Store::recent_calls`]) see the
//! pending polls as if written, so the service's metrics and its next poll are exact; `status`,
//! another process, sees the store at most [`FLUSH_EVERY`] late.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{OptionalExtension, params};

use super::{Counts, RunRow, Store, StoreError, classify};
use crate::alert::time::ApiTime;

/// How long a quiet poll's bookkeeping may wait in memory before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(60);

/// A quiet poll that ended: read to the end, stored nothing, moved no cursor, not throttled.
#[derive(Debug, Clone)]
pub struct QuietPoll {
    /// API calls it made.
    pub(crate) api_calls: u64,
    /// Pages it read.
    pub(crate) pages: u64,
    /// Alerts it read again unchanged.
    pub(crate) unchanged: u64,
    /// Time it waited for the budget.
    pub(crate) waited: Duration,
    /// When each of its calls was made (for the budget of a later process).
    pub(crate) calls: Vec<SystemTime>,
    /// The settled watermark it proved, if the tenant has a cursor.
    pub(crate) settled: Option<ApiTime>,
}

/// One tenant's quiet polls since its bookkeeping was last written.
#[derive(Debug, Clone)]
pub(super) struct Streak {
    first_started: String,
    last_started: String,
    finished: String,
    polls: i64,
    api_calls: i64,
    pages: i64,
    unchanged: i64,
    waited_ms: i64,
    calls: Vec<SystemTime>,
    settled: Option<ApiTime>,
    /// The tenant's cursor, which quiet polls do not move.
    cursor: Option<ApiTime>,
    /// When the first of them ended: the streak is written [`FLUSH_EVERY`] after.
    since: Instant,
}

/// What the store keeps in memory between flushes.
#[derive(Debug, Default)]
pub(super) struct Pending {
    streaks: BTreeMap<String, Streak>,
    /// Polls begun and not yet ended, with their start: a poll cut short (a signal, a panic)
    /// before it wrote anything is still recorded by [`Store::close_running`].
    open: BTreeMap<String, String>,
}

/// The quiet-streak condition on a `runs` row, shared with the fold of finished runs.
pub(super) const QUIET: &str = "kind = 'poll' AND outcome = 'ok' AND new = 0 AND updated = 0 \
     AND stale = 0 AND invalid = 0 AND throttled = 0 AND error IS NULL";

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Writes `tenant`'s streak inside `tx`: its calls, its watermark, and its run row, folded into
/// the tenant's newest run when that one is a quiet poll too (as [`Store::finish_run`] folds).
pub(super) fn write_streak(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    s: &Streak,
) -> rusqlite::Result<()> {
    super::writer::insert_calls(tx, tenant, &s.calls)?;
    super::writer::prune_calls(tx, tenant)?;
    if let Some(settled) = s.settled {
        tx.prepare_cached(
            "UPDATE cursors SET settled = max(coalesce(settled, ?2), ?2) WHERE tenant = ?1",
        )?
        .execute(params![tenant, settled.ticks()])?;
    }
    let cursor = s.cursor.map(ApiTime::ticks);
    let before: Option<i64> = tx
        .prepare_cached(&format!(
            "SELECT id FROM runs WHERE id = (SELECT max(id) FROM runs WHERE tenant = ?1) AND {QUIET}"
        ))?
        .query_row([tenant], |r| r.get(0))
        .optional()?;
    match before {
        Some(id) => {
            tx.prepare_cached(
                "UPDATE runs SET finished_at = ?2, api_calls = api_calls + ?3, pages = pages + ?4, \
                 unchanged = unchanged + ?5, waited_ms = waited_ms + ?6, polls = polls + ?7, \
                 last_started_at = ?8, cursor_after = ?9 WHERE id = ?1",
            )?
            .execute(params![
                id,
                s.finished,
                s.api_calls,
                s.pages,
                s.unchanged,
                s.waited_ms,
                s.polls,
                s.last_started,
                cursor
            ])?;
        }
        None => {
            tx.prepare_cached(
                "INSERT INTO runs (tenant, kind, started_at, finished_at, outcome, api_calls, pages, \
                 unchanged, waited_ms, polls, last_started_at, cursor_before, cursor_after) \
                 VALUES (?1, 'poll', ?2, ?3, 'ok', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
            )?
            .execute(params![
                tenant,
                s.first_started,
                s.finished,
                s.api_calls,
                s.pages,
                s.unchanged,
                s.waited_ms,
                s.polls,
                (s.polls > 1).then_some(&s.last_started),
                cursor
            ])?;
        }
    }
    Ok(())
}

impl Pending {
    pub(super) fn is_empty(&self) -> bool {
        self.streaks.is_empty()
    }
}

impl Store {
    /// Notes that a poll of `tenant` began. Nothing is written (a quiet poll writes nothing),
    /// unless a run of the tenant was left `running` by a killed process: it is closed as
    /// `interrupted`, so that `status` does not show it running while the tenant stays quiet.
    pub(crate) fn poll_begun(&mut self, tenant: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE runs SET outcome = 'interrupted', finished_at = ?2 \
                 WHERE tenant = ?1 AND outcome = 'running'",
            )
            .and_then(|mut st| st.execute(params![tenant, ApiTime::now().to_api_string()]))
            .map_err(|e| classify(&self.path, e))?;
        self.pending
            .open
            .insert(tenant.to_owned(), ApiTime::now().to_api_string());
        Ok(())
    }

    /// When the poll of `tenant` under way began (see [`Store::poll_begun`]).
    pub(super) fn poll_started_at(&self, tenant: &str) -> String {
        self.pending
            .open
            .get(tenant)
            .cloned()
            .unwrap_or_else(|| ApiTime::now().to_api_string())
    }

    /// Notes that a poll of `tenant` ended (its run row, if it has one, is finished).
    pub(crate) fn poll_ended(&mut self, tenant: &str) {
        self.pending.open.remove(tenant);
    }

    /// Whether a poll of `tenant` began and has not ended.
    pub(super) fn poll_open(&self, tenant: &str) -> bool {
        self.pending.open.contains_key(tenant)
    }

    /// Records a quiet poll of `tenant` in memory, and writes every tenant's quiet bookkeeping if
    /// the oldest has waited [`FLUSH_EVERY`].
    pub(crate) fn quiet_poll(&mut self, tenant: &str, poll: QuietPoll) -> Result<(), StoreError> {
        let started_at = self.poll_started_at(tenant);
        self.poll_ended(tenant);
        let finished = ApiTime::now().to_api_string();
        let cursor = self.cursor(tenant)?;
        let QuietPoll {
            api_calls,
            pages,
            unchanged,
            waited,
            mut calls,
            settled,
        } = poll;
        // A streak's first poll is written at once, so that another process (`status`, a
        // monitor reading the store) sees a tenant recover, or poll for the first time, without
        // waiting; only the streak's continuation waits.
        let starts = !self.pending.streaks.contains_key(tenant) && !self.newest_is_quiet(tenant)?;
        match self.pending.streaks.get_mut(tenant) {
            Some(s) => {
                s.last_started = started_at;
                s.finished = finished;
                s.polls = s.polls.saturating_add(1);
                s.api_calls = s.api_calls.saturating_add(int(api_calls));
                s.pages = s.pages.saturating_add(int(pages));
                s.unchanged = s.unchanged.saturating_add(int(unchanged));
                s.waited_ms = s.waited_ms.saturating_add(ms(waited));
                s.calls.append(&mut calls);
                s.settled = s.settled.max(settled);
                s.cursor = cursor;
            }
            None => {
                self.pending.streaks.insert(
                    tenant.to_owned(),
                    Streak {
                        first_started: started_at.clone(),
                        last_started: started_at,
                        finished,
                        polls: 1,
                        api_calls: int(api_calls),
                        pages: int(pages),
                        unchanged: int(unchanged),
                        waited_ms: ms(waited),
                        calls,
                        settled,
                        cursor,
                        since: Instant::now(),
                    },
                );
            }
        }
        if starts {
            self.flush_tenant(tenant)?;
        }
        self.flush_quiet_if_due()
    }

    /// Whether the tenant's newest run row on disk is a quiet poll's (a streak goes on).
    fn newest_is_quiet(&self, tenant: &str) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE id = (SELECT max(id) FROM runs WHERE tenant = ?1) AND {QUIET})"
            ))
            .and_then(|mut st| st.query_row([tenant], |r| r.get(0)))
            .map_err(|e| classify(&self.path, e))
    }

    /// Writes `tenant`'s quiet streak in memory now.
    fn flush_tenant(&mut self, tenant: &str) -> Result<(), StoreError> {
        let Some(streak) = self.pending.streaks.get(tenant) else {
            return Ok(());
        };
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e))?;
        write_streak(&tx, tenant, streak).map_err(|e| classify(&path, e))?;
        tx.commit().map_err(|e| classify(&path, e))?;
        self.pending.streaks.remove(tenant);
        Ok(())
    }

    /// How long until the quiet bookkeeping in memory is due to be written; `None` when there is
    /// none.
    pub(crate) fn quiet_due_in(&self) -> Option<Duration> {
        self.pending
            .streaks
            .values()
            .map(|s| s.since)
            .min()
            .map(|since| FLUSH_EVERY.saturating_sub(since.elapsed()))
    }

    /// Writes the quiet bookkeeping in memory if the oldest has waited [`FLUSH_EVERY`].
    pub(crate) fn flush_quiet_if_due(&mut self) -> Result<(), StoreError> {
        match self.quiet_due_in() {
            Some(d) if d.is_zero() => self.flush_quiet(),
            _ => Ok(()),
        }
    }

    /// Writes every tenant's quiet bookkeeping in memory, in one transaction.
    pub(crate) fn flush_quiet(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e))?;
        for (tenant, s) in &self.pending.streaks {
            write_streak(&tx, tenant, s).map_err(|e| classify(&path, e))?;
        }
        tx.commit().map_err(|e| classify(&path, e))?;
        self.pending.streaks.clear();
        Ok(())
    }

    /// `tenant`'s quiet streak in memory, to be written with the next transaction that writes
    /// anything for it (see [`Store::quiet_written`]).
    pub(super) fn quiet_streak(&self, tenant: &str) -> Option<Streak> {
        self.pending.streaks.get(tenant).cloned()
    }

    /// Forgets `tenant`'s streak once a committed transaction has written it.
    pub(crate) fn quiet_written(&mut self, tenant: &str) {
        self.pending.streaks.remove(tenant);
    }

    /// The settled watermark a pending quiet poll of `tenant` proved.
    pub(super) fn pending_settled(&self, tenant: &str) -> Option<ApiTime> {
        self.pending.streaks.get(tenant).and_then(|s| s.settled)
    }

    /// The calls of `tenant`'s pending quiet polls.
    pub(super) fn pending_calls(&self, tenant: &str) -> &[SystemTime] {
        self.pending
            .streaks
            .get(tenant)
            .map_or(&[], |s| s.calls.as_slice())
    }

    /// `rows` (newest first, as [`Store::runs`] reads them) with the pending quiet streaks shown
    /// as written: folded into the tenant's newest row when that one is a quiet poll, else as a
    /// row of their own.
    pub(super) fn with_pending(&self, tenant: Option<&str>, mut rows: Vec<RunRow>) -> Vec<RunRow> {
        let streaks = self
            .pending
            .streaks
            .iter()
            .filter(|(t, _)| tenant.is_none_or(|x| x == t.as_str()));
        for (t, s) in streaks {
            let newest = rows.iter_mut().find(|r| &r.tenant == t);
            match newest {
                Some(r) if is_quiet(r) => {
                    r.finished_at = Some(s.finished.clone());
                    r.api_calls = r.api_calls.saturating_add(s.api_calls);
                    r.pages = r.pages.saturating_add(s.pages);
                    r.counts.unchanged = r.counts.unchanged.saturating_add(s.unchanged as u64);
                    r.waited_ms = r.waited_ms.saturating_add(s.waited_ms);
                    r.polls = r.polls.saturating_add(s.polls);
                    r.last_started_at = Some(s.last_started.clone());
                }
                _ => rows.insert(
                    0,
                    RunRow {
                        #[cfg(test)]
                        id: i64::MAX,
                        tenant: t.clone(),
                        kind: "poll".to_owned(),
                        started_at: s.first_started.clone(),
                        finished_at: Some(s.finished.clone()),
                        outcome: "ok".to_owned(),
                        api_calls: s.api_calls,
                        pages: s.pages,
                        counts: Counts {
                            unchanged: s.unchanged as u64,
                            ..Counts::default()
                        },
                        cursor_after: s.cursor,
                        error: None,
                        fix: None,
                        throttled: 0,
                        waited_ms: s.waited_ms,
                        polls: s.polls,
                        last_started_at: (s.polls > 1).then(|| s.last_started.clone()),
                    },
                ),
            }
        }
        rows
    }
}

/// Whether a run row is a quiet poll (as [`QUIET`] says in SQL).
fn is_quiet(r: &RunRow) -> bool {
    r.kind == "poll"
        && r.outcome == "ok"
        && r.counts.new == 0
        && r.counts.updated == 0
        && r.counts.stale == 0
        && r.counts.invalid == 0
        && r.throttled == 0
        && r.error.is_none()
}

/// Written when the store is closed: a one-off `poll` ends with its bookkeeping on disk.
impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.flush_quiet() {
            tracing::warn!(error = %e, fix = e.hint().as_deref(), "Cannot record the last quiet polls in the store; only their bookkeeping is lost.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Outcome;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.db")).unwrap();
        (dir, store)
    }

    /// The rows another process (`status`) reads.
    fn on_disk(dir: &tempfile::TempDir) -> Vec<RunRow> {
        Store::open_read_only(&dir.path().join("a.db"))
            .unwrap()
            .runs(None, 100)
            .unwrap()
    }

    fn quiet(calls: Vec<SystemTime>, settled: Option<ApiTime>) -> QuietPoll {
        QuietPoll {
            api_calls: calls.len() as u64,
            pages: 1,
            unchanged: 2,
            waited: Duration::from_millis(5),
            calls,
            settled,
        }
    }

    fn wal_bytes(dir: &tempfile::TempDir) -> u64 {
        std::fs::metadata(dir.path().join("a.db-wal")).map_or(0, |m| m.len())
    }

    #[test]
    fn quiet_polls_wait_in_memory_and_are_one_row_when_written() {
        let (dir, mut s) = open();
        let now = SystemTime::now();
        // The streak's first poll is written at once: other processes see the tenant polled.
        s.poll_begun("t").unwrap();
        s.quiet_poll("t", quiet(vec![now], None)).unwrap();
        assert_eq!(on_disk(&dir).len(), 1);
        let wal = wal_bytes(&dir);
        for _ in 0..2 {
            s.poll_begun("t").unwrap();
            s.quiet_poll("t", quiet(vec![now], None)).unwrap();
        }
        assert_eq!(wal_bytes(&dir), wal, "nothing written");
        assert_eq!(on_disk(&dir)[0].polls, 1);
        // This process sees them as written.
        let shown = s.runs(Some("t"), 10).unwrap();
        assert_eq!(shown.len(), 1);
        assert_eq!((shown[0].polls, shown[0].api_calls), (3, 3));
        assert_eq!(
            (shown[0].counts.unchanged, shown[0].outcome.as_str()),
            (6, "ok")
        );
        assert_eq!(s.recent_calls("t").unwrap().len(), 3);
        assert!(s.quiet_due_in().unwrap() <= FLUSH_EVERY);
        s.flush_quiet().unwrap();
        let rows = on_disk(&dir);
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].polls, rows[0].api_calls, rows[0].pages), (3, 3, 3));
        assert!(rows[0].last_started_at.is_some());
        assert_eq!(s.quiet_due_in(), None);
        // Calls are on disk for the budget of the next process, once.
        drop(s);
        let s = Store::open(&dir.path().join("a.db")).unwrap();
        assert_eq!(s.recent_calls("t").unwrap().len(), 3);
    }

    #[test]
    fn a_later_streak_folds_into_the_quiet_row_before_it() {
        let (dir, mut s) = open();
        s.poll_begun("t").unwrap();
        s.quiet_poll("t", quiet(vec![], None)).unwrap();
        s.flush_quiet().unwrap();
        s.poll_begun("t").unwrap();
        s.quiet_poll("t", quiet(vec![], None)).unwrap();
        s.poll_begun("u").unwrap();
        s.quiet_poll("u", quiet(vec![], None)).unwrap();
        s.flush_quiet().unwrap();
        let rows = on_disk(&dir);
        assert_eq!(rows.len(), 2, "{rows:#?}");
        let t = rows.iter().find(|r| r.tenant == "t").unwrap();
        assert_eq!(t.polls, 2);
    }

    #[test]
    fn the_store_closing_writes_what_waits() {
        let (dir, mut s) = open();
        for _ in 0..2 {
            s.poll_begun("t").unwrap();
            s.quiet_poll("t", quiet(vec![], None)).unwrap();
        }
        assert_eq!(on_disk(&dir)[0].polls, 1);
        drop(s);
        assert_eq!(on_disk(&dir)[0].polls, 2);
    }

    #[test]
    fn a_tenant_that_recovers_is_seen_at_once() {
        let (dir, mut s) = open();
        let run = s.begin_run("t", "poll").unwrap();
        s.finish_run(run, Outcome::Failed, Default::default(), Some("x"), None)
            .unwrap();
        s.poll_begun("t").unwrap();
        s.quiet_poll("t", quiet(vec![], None)).unwrap();
        let rows = on_disk(&dir);
        assert_eq!(rows[0].outcome, "ok", "{rows:#?}");
    }

    #[test]
    fn a_poll_that_writes_writes_the_streak_before_its_own_row() {
        let (dir, mut s) = open();
        for _ in 0..2 {
            s.poll_begun("t").unwrap();
            s.quiet_poll("t", quiet(vec![], None)).unwrap();
        }
        s.poll_begun("t").unwrap();
        let mut w = s.poll_writer("t").unwrap();
        let run = w.poll_run("t", None).unwrap();
        assert!(w.wrote_streak());
        w.commit(Some(run), 1).unwrap();
        s.quiet_written("t");
        s.finish_run(run, Outcome::Failed, Default::default(), Some("x"), None)
            .unwrap();
        s.poll_ended("t");
        let rows = on_disk(&dir);
        assert_eq!(rows.len(), 2);
        // Newest first: the failed poll after the quiet one.
        assert_eq!(rows[0].outcome, "failed");
        assert_eq!((rows[1].outcome.as_str(), rows[1].polls), ("ok", 2));
        assert_eq!(s.quiet_due_in(), None, "written once");
        drop(s);
        assert_eq!(on_disk(&dir).len(), 2);
    }

    #[test]
    fn a_poll_cut_before_it_wrote_anything_is_recorded() {
        let (dir, mut s) = open();
        s.poll_begun("t").unwrap();
        s.close_running("t", Outcome::Interrupted, "stopped by SIGTERM")
            .unwrap();
        let rows = on_disk(&dir);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].outcome, "interrupted");
        assert_eq!(rows[0].error.as_deref(), Some("stopped by SIGTERM"));
        // A tenant with no poll under way gets no row.
        s.close_running("u", Outcome::Interrupted, "x").unwrap();
        s.close_running("t", Outcome::Interrupted, "x").unwrap();
        assert_eq!(on_disk(&dir).len(), 1);
    }

    #[test]
    fn a_run_left_running_by_a_killed_process_is_closed_by_the_next_poll() {
        let (dir, mut s) = open();
        s.begin_run("t", "poll").unwrap();
        drop(s);
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        s.poll_begun("t").unwrap();
        assert_eq!(on_disk(&dir)[0].outcome, "interrupted");
    }

    #[test]
    fn the_settled_watermark_of_a_quiet_poll_is_where_the_next_starts() {
        let (_dir, mut s) = open();
        let t0 = ApiTime::from_ticks(1_000);
        let mut w = s.writer().unwrap();
        w.advance_cursor("t", t0, t0, ("graph", "x")).unwrap();
        w.commit(None, 0).unwrap();
        let t1 = ApiTime::from_ticks(2_000);
        s.poll_begun("t").unwrap();
        s.quiet_poll("t", quiet(vec![], Some(t1))).unwrap();
        assert_eq!(s.settled("t").unwrap(), Some(t1));
        s.flush_quiet().unwrap();
        assert_eq!(s.settled("t").unwrap(), Some(t1));
        assert_eq!(s.cursor("t").unwrap(), Some(t0), "the cursor stays");
    }
}
