//! Retention: `[store] keep_revisions` applied to the history, and the space given back.
//!
//! # The rule
//!
//! A revision is removed when it is **not the latest** of its alert (the `alerts` row does not
//! point at it) and it was **superseded before the cutoff** (`now − keep_revisions`): a newer
//! revision of the same alert was stored before the cutoff. So every state an alert had at any
//! instant inside the window stays readable, including the one it had at the cutoff itself, and
//! the latest revision of every alert stays whatever its age. Age is the store's clock
//! (`stored_at`), not the alert's `lastUpdateTime`: a backfill of year-old versions imported today
//! is kept for the full window, never removed on arrival.
//!
//! "Stored before the cutoff" is a revision number: revisions are numbered in the order they were
//! stored, so the first revision stored at or after the cutoff (`first_rev_at`, a binary search
//! on the primary key, some twenty lookups) splits the history. A clock stepped back can only make
//! this split conservative by a few revisions.
//!
//! Bookkeeping has its own bound: runs that started more than [`RUNS_KEPT_FOR`] ago (or before
//! the cutoff, if that is sooner) are removed, except each tenant's newest `KEEP_RUNS` runs and
//! its last successful poll (what `status` and the metrics read), and never a run still
//! `running`, whatever `keep_revisions` says (with `keep_revisions = 0` too); rejected elements stored before the cutoff go too (they
//! are kept for an admin to look at, like the history). The budget's `api_calls` already keep only
//! the last hour.
//!
//! # Short transactions
//!
//! The work is cut into `Step`s, each one short write transaction (a few thousand alerts' worth
//! of history), so a poll of the service waits at most one step for the store; the daemon takes
//! its store mutex per step (`prune_shared`). The candidates are read through the revisions'
//! unique index (tenant, alert id, hash — it holds the revision number), never through the
//! revisions' JSON, so a daily prune of a large store reads indexes, not gigabytes.
//!
//! # Space
//!
//! Deleted rows leave free pages, which SQLite reuses for new revisions: the file stops growing
//! either way. To shrink the file, a store must be in `auto_vacuum = INCREMENTAL` mode, in which
//! `PRAGMA incremental_vacuum` hands free pages back to the file system (and the WAL checkpoint
//! that follows truncates it). A store created by this version is made so at creation (the mode
//! can only be chosen before the first table exists, see [`super::Store::open`]). An older store
//! needs one `VACUUM`, which rewrites the whole file, needs free space of its size and holds the
//! store for minutes on a large one: a migration cannot do it (migrations run in a transaction,
//! and VACUUM cannot), and the service must not stall its polls for it, so only `mde-alerts store
//! prune` does it ([`convert_to_incremental`]), once, with the service stopped (it takes the
//! writer lock). Until then the service's daily prune frees pages for reuse and says how to
//! reclaim them.

use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, params};

use super::{Store, StoreError, classify};
use crate::alert::time::ApiTime;

/// Alerts whose history one step examines (one short write transaction).
const ALERTS_PER_STEP: i64 = 5_000;
/// Bytes of free pages handed back per step: a bound on the step's time whatever the store's
/// page size (4 KiB for older stores, 16 KiB for new ones).
const VACUUM_BYTES_PER_STEP: i64 = 16 << 20;
/// Runs kept per tenant whatever their age: `status` and the metrics read the newest 200.
pub(crate) const KEEP_RUNS: i64 = 200;
/// How long runs are kept (beyond each tenant's newest `KEEP_RUNS`), whatever
/// `keep_revisions` says: a run is bookkeeping, not history, and at a thousand tenants a year of
/// them was gigabytes.
pub const RUNS_KEPT_FOR: Duration = Duration::from_secs(90 * 86_400);
/// `keep_revisions = 0` (keep every revision) as a window: a century. Retention then removes no
/// revision and no rejected element, and still bounds the runs.
pub const KEEP_ALL: Duration = Duration::from_secs(100 * 365 * 86_400);

/// What a prune did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Superseded revisions removed.
    pub revisions: u64,
    /// Runs removed.
    pub runs: u64,
    /// Rejected elements removed.
    pub rejected: u64,
    /// Bytes the file gave back (pages handed back by the incremental vacuum × page size).
    pub bytes_reclaimed: u64,
    /// Free pages left in the file for reuse (a store not in incremental auto-vacuum mode keeps
    /// what was freed here).
    free_pages: u64,
    /// Whether the store is in incremental auto-vacuum mode (so the file can shrink).
    pub incremental: bool,
}

/// Where a prune is: which part is next.
#[derive(Debug, Clone)]
enum Phase {
    /// Revisions, alert by alert, after this (tenant, id) key.
    Revisions { after: (String, String) },
    /// Runs and rejected elements.
    Bookkeeping,
    /// Handing free pages back.
    Vacuum,
    /// Done.
    Done,
}

/// A prune under way: call [`Step::run`] until it returns `false`. Each call is one short
/// transaction; the store may be used by others in between.
#[derive(Debug, Clone)]
struct Step {
    cutoff: String,
    /// Runs that started before this go (see [`RUNS_KEPT_FOR`]).
    runs_cutoff: String,
    /// The first revision stored at or after the cutoff (revisions below it are "before").
    split: i64,
    phase: Phase,
    report: PruneReport,
    page_count_at_start: i64,
    /// [`ALERTS_PER_STEP`]; tests make it small.
    alerts_per_step: i64,
}

impl Step {
    /// Starts a prune of `store` keeping `keep` of history as of `now`.
    fn start(store: &Store, keep: Duration, now: ApiTime) -> Result<Step, StoreError> {
        let cutoff = now.minus(keep).to_api_string();
        let runs_cutoff = now.minus(keep.min(RUNS_KEPT_FOR)).to_api_string();
        let conn = store.connection();
        let run = || -> rusqlite::Result<Step> {
            let split = first_rev_at(conn, &cutoff)?;
            let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
            Ok(Step {
                cutoff: cutoff.clone(),
                runs_cutoff: runs_cutoff.clone(),
                split,
                phase: Phase::Revisions {
                    after: (String::new(), String::new()),
                },
                report: PruneReport {
                    incremental: mode == 2,
                    ..PruneReport::default()
                },
                page_count_at_start: pragma(conn, "page_count")?,
                alerts_per_step: ALERTS_PER_STEP,
            })
        };
        run().map_err(|e| store.err(e))
    }

    /// Does the next piece of work in one transaction; `false` when nothing is left.
    fn run(&mut self, store: &mut Store) -> Result<bool, StoreError> {
        let path = store.path.clone();
        let r = self.run_inner(&mut store.conn);
        r.map_err(|e| classify(&path, e))
    }

    fn run_inner(&mut self, conn: &mut Connection) -> rusqlite::Result<bool> {
        match &self.phase {
            Phase::Revisions { after } => {
                let after = after.clone();
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                // The last alert key of this step; none: the rest of the table.
                let upto: Option<(String, String)> = tx
                    .query_row(
                        "SELECT tenant, id FROM alerts WHERE (tenant, id) > (?1, ?2) \
                         ORDER BY tenant, id LIMIT 1 OFFSET ?3",
                        params![after.0, after.1, self.alerts_per_step - 1],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map(Some)
                    .or_else(none_if_no_rows)?;
                let (hi_t, hi_i) = upto.clone().unzip();
                // Two statements rather than `?3 IS NULL OR …`: an OR would hide the upper bound
                // from the index range, and every step would scan to the end of the table.
                let removed = match (hi_t, hi_i) {
                    (Some(t), Some(i)) => tx
                        .prepare_cached(&prune_revisions("AND (r.tenant, r.alert_id) <= (?4, ?5)"))?
                        .execute(params![after.0, after.1, self.split, t, i])?,
                    _ => tx
                        .prepare_cached(&prune_revisions(""))?
                        .execute(params![after.0, after.1, self.split])?,
                };
                tx.commit()?;
                self.report.revisions += removed as u64;
                self.phase = match upto {
                    Some(key) => Phase::Revisions { after: key },
                    None => Phase::Bookkeeping,
                };
            }
            Phase::Bookkeeping => {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                tx.execute(FOLD_PRUNED_RUNS, params![self.runs_cutoff, KEEP_RUNS])?;
                self.report.runs +=
                    tx.execute(PRUNE_RUNS, params![self.runs_cutoff, KEEP_RUNS])? as u64;
                self.report.rejected += tx.execute(
                    "DELETE FROM rejected_elements WHERE stored_at < ?1",
                    [&self.cutoff],
                )? as u64;
                tx.commit()?;
                self.phase = Phase::Vacuum;
            }
            Phase::Vacuum => {
                let free = pragma(conn, "freelist_count")?;
                if self.report.incremental && free > 0 {
                    // One statement, its own short transaction.
                    let pages = VACUUM_BYTES_PER_STEP / pragma(conn, "page_size")?.max(512);
                    conn.execute_batch(&format!("PRAGMA incremental_vacuum({pages})"))?;
                } else {
                    // Writes the vacuumed pages back into the file and truncates it (and the
                    // WAL); PASSIVE when a reader is in the way: then a later checkpoint does it.
                    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
                    let pages = pragma(conn, "page_count")?;
                    let size = pragma(conn, "page_size")?;
                    self.report.bytes_reclaimed =
                        ((self.page_count_at_start - pages).max(0) * size) as u64;
                    self.report.free_pages = pragma(conn, "freelist_count")?.max(0) as u64;
                    self.phase = Phase::Done;
                }
            }
            Phase::Done => return Ok(false),
        }
        Ok(!matches!(self.phase, Phase::Done))
    }

    /// What the prune did so far.
    fn report(&self) -> PruneReport {
        self.report
    }
}

/// Removes the superseded revisions of the alerts in one key range: `(?1, ?2) < key`, then
/// `upper` (`<= (?4, ?5)`, or nothing for the last step), superseded before revision ?3. The
/// alert's own revision is never removed (and the foreign key from `alerts` would refuse it).
/// Reads only the alerts' primary key and the revisions' unique index (which holds `rev`).
fn prune_revisions(upper: &str) -> String {
    format!(
        "DELETE FROM alert_revisions WHERE rev IN (
  SELECT r.rev FROM alerts a
  JOIN alert_revisions r ON r.tenant = a.tenant AND r.alert_id = a.id
  WHERE (r.tenant, r.alert_id) > (?1, ?2) {upper}
    AND r.rev < ?3 AND r.rev <> a.rev
    AND EXISTS (SELECT 1 FROM alert_revisions n
                WHERE n.tenant = r.tenant AND n.alert_id = r.alert_id
                  AND n.rev > r.rev AND n.rev < ?3))"
    )
}

/// Runs started before ?1, except each tenant's newest ?2, its last successful poll, and any
/// still running.
macro_rules! pruned_runs {
    () => {
        "started_at < ?1 AND outcome <> 'running'
  AND id NOT IN (SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY tenant ORDER BY id DESC) AS n FROM runs) WHERE n <= ?2)
  AND id NOT IN (SELECT max(id) FROM runs WHERE kind = 'poll' AND outcome IN ('ok', 'partial') GROUP BY tenant)"
    };
}

const PRUNE_RUNS: &str = concat!("DELETE FROM runs WHERE ", pruned_runs!());

/// Adds what the runs about to be pruned counted to `run_totals` (the metrics' counters), in the
/// same transaction as the prune.
const FOLD_PRUNED_RUNS: &str = concat!(
    "INSERT INTO run_totals (tenant, polls, failed, api_calls, throttled, new, updated)
  SELECT tenant,
    sum(CASE WHEN kind = 'poll' THEN polls ELSE 0 END),
    sum(CASE WHEN kind = 'poll' AND outcome NOT IN ('ok', 'partial') THEN polls ELSE 0 END),
    sum(api_calls), sum(throttled), sum(new), sum(updated)
  FROM runs WHERE ",
    pruned_runs!(),
    " GROUP BY tenant
  ON CONFLICT (tenant) DO UPDATE SET polls = polls + excluded.polls,
    failed = failed + excluded.failed, api_calls = api_calls + excluded.api_calls,
    throttled = throttled + excluded.throttled, new = new + excluded.new,
    updated = updated + excluded.updated"
);

fn none_if_no_rows<T>(e: rusqlite::Error) -> rusqlite::Result<Option<T>> {
    match e {
        rusqlite::Error::QueryReturnedNoRows => Ok(None),
        e => Err(e),
    }
}

fn pragma(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
}

/// The first revision stored at or after `cutoff` (one past the newest when none is): a binary
/// search on the revision number, which grows with `stored_at`.
fn first_rev_at(conn: &Connection, cutoff: &str) -> rusqlite::Result<i64> {
    let (lo, hi): (Option<i64>, Option<i64>) =
        conn.query_row("SELECT min(rev), max(rev) FROM alert_revisions", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let (Some(mut lo), Some(max)) = (lo, hi) else {
        return Ok(0);
    };
    // Invariant: every revision below `lo` was stored before the cutoff; `hi` is a candidate.
    let mut hi = max + 1;
    let mut at = conn.prepare(
        "SELECT rev, stored_at FROM alert_revisions WHERE rev >= ?1 ORDER BY rev LIMIT 1",
    )?;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let (rev, stored): (i64, String) = at.query_row([mid], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if stored.as_str() < cutoff {
            lo = rev + 1;
        } else {
            hi = mid.min(rev);
        }
    }
    Ok(lo)
}

/// Prunes `store` now: every step in a row (the store is this caller's alone meanwhile).
pub fn prune(store: &mut Store, keep: Duration, now: ApiTime) -> Result<PruneReport, StoreError> {
    let mut step = Step::start(store, keep, now)?;
    while step.run(store)? {}
    Ok(step.report())
}

/// [`prune`] on a store shared with the service's polls: the mutex is taken per step, so a poll
/// waits at most one short transaction.
fn prune_shared(
    store: &Mutex<Store>,
    keep: Duration,
    now: ApiTime,
) -> Result<PruneReport, StoreError> {
    let lock = || store.lock().unwrap_or_else(|p| p.into_inner());
    let mut step = Step::start(&lock(), keep, now)?;
    while step.run(&mut lock())? {}
    Ok(step.report())
}

/// The service's daily prune: first [`FIRST_PRUNE_AFTER`] after start (not in the way of the
/// first polls), then every 24 hours; each prune runs on a blocking thread and takes the store per
/// step ([`prune_shared`]). Failures are logged and retried the next day. Runs until aborted.
pub(crate) async fn daily(store: std::sync::Arc<Mutex<Store>>, keep: Duration) {
    let start = tokio::time::Instant::now() + FIRST_PRUNE_AFTER;
    let mut every = tokio::time::interval_at(start, Duration::from_secs(86_400));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let s = store.clone();
        let started = std::time::Instant::now();
        match tokio::task::spawn_blocking(move || prune_shared(&s, keep, ApiTime::now())).await {
            Ok(Ok(r)) => {
                tracing::info!(
                    revisions = r.revisions,
                    runs = r.runs,
                    rejected = r.rejected,
                    bytes_reclaimed = r.bytes_reclaimed,
                    secs = started.elapsed().as_secs_f64(),
                    "Retention: removed {} superseded revisions, {} runs, {} rejected elements; {} bytes reclaimed.",
                    r.revisions,
                    r.runs,
                    r.rejected,
                    r.bytes_reclaimed
                );
                if !r.incremental && r.free_pages > 0 {
                    tracing::warn!(
                        free_pages = r.free_pages,
                        "The store was created before incremental auto-vacuum: the space freed is reused for new alerts but the file does not shrink. Run `mde-alerts store prune` once with the service stopped to convert it."
                    );
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, fix = e.hint().as_deref(), "Retention failed; it is tried again tomorrow.")
            }
            Err(e) => {
                tracing::error!(error = %e, "Retention panicked; it is tried again tomorrow.")
            }
        }
    }
}

/// When the service's first prune runs after it starts.
const FIRST_PRUNE_AFTER: Duration = Duration::from_secs(600);

/// Whether the store can give space back to the file system (`auto_vacuum = INCREMENTAL`).
#[cfg(test)]
fn is_incremental(store: &Store) -> Result<bool, StoreError> {
    pragma(store.connection(), "auto_vacuum")
        .map(|m| m == 2)
        .map_err(|e| store.err(e))
}

/// Turns an older store into an incremental auto-vacuum one: one `VACUUM`, which rewrites the
/// file (needs free space of its size) and holds the store meanwhile; see the module's docs for
/// why only `store prune` does this. Returns the bytes the file shrank by.
pub fn convert_to_incremental(store: &mut Store) -> Result<u64, StoreError> {
    let conn = store.connection();
    let run = || -> rusqlite::Result<u64> {
        let before = pragma(conn, "page_count")? * pragma(conn, "page_size")?;
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        let after = pragma(conn, "page_count")? * pragma(conn, "page_size")?;
        Ok((before - after).max(0) as u64)
    };
    run().map_err(|e| store.err(e))
}

/// The store's size on disk: the database file and its WAL.
pub fn size_on_disk(store: &Store) -> u64 {
    let (db, wal) = sizes_on_disk(store);
    db + wal
}

/// The database file's size and the write-ahead log's, apart: the WAL grows while a service
/// writes and shrinks at a checkpoint, so a figure that mixed them would jump between two runs of
/// `status` with nothing stored.
pub(crate) fn sizes_on_disk(store: &Store) -> (u64, u64) {
    let len = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    (len(store.path()), len(&super::wal_path(store.path())))
}

/// When the oldest revision still stored was stored (`None` for an empty store): how far back
/// the history reaches. One lookup (the lowest revision number).
pub(crate) fn oldest_revision(store: &Store) -> Result<Option<String>, StoreError> {
    store
        .connection()
        .query_row(
            "SELECT stored_at FROM alert_revisions ORDER BY rev LIMIT 1",
            [],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(none_if_no_rows)
        .map_err(|e| store.err(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Alert;

    fn alert(id: &str, t: &str, status: &str) -> Alert {
        Alert::parse(&format!(
            r#"{{"id":"{id}","lastUpdateTime":"{t}","status":"{status}","pad":"{}"}}"#,
            "x".repeat(3000)
        ))
        .unwrap()
    }

    /// Stores `alerts` as if on `day` (the store's clock is set through `stored_at`).
    fn store_on(s: &mut Store, day: &str, alerts: &[Alert]) {
        let mut w = s.writer().unwrap();
        w.stored_at = format!("{day}T00:00:00.0000000Z");
        for a in alerts {
            w.upsert("t", a).unwrap();
        }
        w.commit(None, 0).unwrap();
    }

    fn revs(s: &Store, id: &str) -> Vec<i64> {
        let mut st = s
            .connection()
            .prepare("SELECT rev FROM alert_revisions WHERE alert_id = ?1 ORDER BY rev")
            .unwrap();
        st.query_map([id], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn the_split_is_the_first_revision_stored_at_the_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        assert_eq!(first_rev_at(s.connection(), "2024").unwrap(), 0);
        for (i, day) in ["2024-01-01", "2024-01-02", "2024-01-02", "2024-01-05"]
            .iter()
            .enumerate()
        {
            store_on(
                &mut s,
                day,
                &[alert(&format!("a{i}"), "2024-01-01T00:00:00Z", "New")],
            );
        }
        let c = s.connection();
        assert_eq!(first_rev_at(c, "2023-12-31").unwrap(), 1);
        assert_eq!(first_rev_at(c, "2024-01-02").unwrap(), 2);
        assert_eq!(first_rev_at(c, "2024-01-03").unwrap(), 4);
        assert_eq!(first_rev_at(c, "2024-02-01").unwrap(), 5);
    }

    /// The rule: superseded before the cutoff goes; the latest, and the state at the cutoff,
    /// stay; the foreign key and the step boundaries change nothing.
    #[test]
    fn removes_only_what_was_superseded_before_the_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        assert!(is_incremental(&s).unwrap(), "new stores shrink");
        // a: three versions long ago, the last still current.
        // b: v1 long ago, v2 long ago, v3 yesterday: v1 goes, v2 was current at the cutoff.
        // c: one version long ago: the latest, kept whatever its age.
        store_on(
            &mut s,
            "2020-01-01",
            &[
                alert("a", "2020-01-01T00:00:00Z", "New"),
                alert("b", "2020-01-01T00:00:00Z", "New"),
                alert("c", "2020-01-01T00:00:00Z", "New"),
            ],
        );
        store_on(
            &mut s,
            "2020-02-01",
            &[
                alert("a", "2020-02-01T00:00:00Z", "InProgress"),
                alert("b", "2020-02-01T00:00:00Z", "InProgress"),
            ],
        );
        store_on(
            &mut s,
            "2020-03-01",
            &[alert("a", "2020-03-01T00:00:00Z", "Resolved")],
        );
        store_on(
            &mut s,
            "2024-06-01",
            &[alert("b", "2024-06-01T00:00:00Z", "Resolved")],
        );
        let before_a = revs(&s, "a");
        let before_b = revs(&s, "b");
        assert_eq!((before_a.len(), before_b.len()), (3, 3));
        let now = ApiTime::parse("2024-06-02T00:00:00Z").unwrap();
        let r = prune(&mut s, Duration::from_secs(400 * 86_400), now).unwrap();
        assert_eq!(r.revisions, 3, "{r:?}");
        assert_eq!(revs(&s, "a"), vec![before_a[2]]);
        assert_eq!(revs(&s, "b"), before_b[1..].to_vec());
        assert_eq!(revs(&s, "c").len(), 1);
        // Every alert still points at its (latest) revision.
        let latest: i64 = s
            .connection()
            .query_row(
                "SELECT count(*) FROM alerts a JOIN alert_revisions r ON r.rev = a.rev",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(latest, 3);
        // Idempotent.
        assert_eq!(
            prune(&mut s, Duration::from_secs(400 * 86_400), now)
                .unwrap()
                .revisions,
            0
        );
    }

    /// Steps cover every alert whatever the step size: many alerts, each with an old superseded
    /// version.
    #[test]
    fn steps_cover_every_alert_and_space_is_reclaimed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        let n = 100;
        let v1: Vec<Alert> = (0..n)
            .map(|i| alert(&format!("a{i:05}"), "2020-01-01T00:00:00Z", "New"))
            .collect();
        let v2: Vec<Alert> = (0..n)
            .map(|i| alert(&format!("a{i:05}"), "2020-01-02T00:00:00Z", "Resolved"))
            .collect();
        store_on(&mut s, "2020-01-01", &v1);
        store_on(&mut s, "2020-01-02", &v2);
        let size = |s: &Store| std::fs::metadata(s.path()).unwrap().len();
        s.connection()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let before = size(&s);
        let mut step = Step::start(&s, Duration::from_secs(86_400), ApiTime::now()).unwrap();
        step.alerts_per_step = 7;
        let mut steps = 0;
        while step.run(&mut s).unwrap() {
            steps += 1;
        }
        assert!(steps > n / 7, "{steps}");
        let r = step.report();
        assert_eq!(r.revisions, n as u64);
        assert!(r.incremental);
        // Whole pages are handed back: a page shared with a kept revision at each end of the
        // removed run stays (16 KiB pages in a new store).
        let slack = 2 * u64::from(crate::store::PAGE_SIZE);
        assert!(r.bytes_reclaimed > (n as u64) * 3000 - slack, "{r:?}");
        assert_eq!(r.free_pages, 0);
        let after = size(&s);
        assert!(
            after < before - (n as u64) * 3000 + slack,
            "{before} → {after}"
        );
    }

    /// The prune reads indexes, not the revisions' JSON: no full scan of either table.
    #[test]
    fn the_prune_reads_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("a.db")).unwrap();
        for sql in [
            prune_revisions("AND (r.tenant, r.alert_id) <= (?4, ?5)"),
            prune_revisions(""),
        ] {
            let mut stmt = s
                .connection()
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join("\n");
            assert!(
                !plan.contains("SCAN a") && !plan.contains("SCAN r"),
                "{plan}"
            );
            assert!(plan.contains("(tenant,alert_id)>(?,?)"), "{plan}");
            assert!(
                plan.contains("COVERING INDEX") || plan.contains("PRIMARY KEY"),
                "{plan}"
            );
        }
    }

    #[test]
    fn runs_keep_their_own_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        let c = s.connection();
        c.execute_batch("BEGIN").unwrap();
        // An old successful poll, then KEEP_RUNS + 10 old failed ones, then one running.
        let ins = |outcome: &str| {
            c.execute(
                "INSERT INTO runs (tenant, kind, started_at, outcome) VALUES ('t', 'poll', '2020-01-01T00:00:00.0000000Z', ?1)",
                [outcome],
            )
            .unwrap();
        };
        ins("ok");
        for _ in 0..KEEP_RUNS + 10 {
            ins("failed");
        }
        c.execute(
            "INSERT INTO runs (tenant, kind, started_at, outcome) VALUES ('u', 'poll', '2020-01-01T00:00:00.0000000Z', 'running')",
            [],
        )
        .unwrap();
        c.execute_batch("COMMIT").unwrap();
        let r = prune(&mut s, Duration::from_secs(86_400), ApiTime::now()).unwrap();
        assert_eq!(r.runs, 10);
        let ok: i64 = s
            .connection()
            .query_row(
                "SELECT count(*) FROM runs WHERE outcome IN ('ok', 'running')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(ok, 2, "the last success and the running run stay");
    }

    /// Runs have their own bound: with every revision kept (`keep_revisions = 0`), or a window
    /// longer than [`RUNS_KEPT_FOR`], runs older than that still go; revisions do not.
    #[test]
    fn runs_are_bounded_whatever_keep_revisions_says() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        let old = ApiTime::now()
            .minus(RUNS_KEPT_FOR)
            .minus(Duration::from_secs(86_400))
            .to_api_string();
        let recent = ApiTime::now()
            .minus(Duration::from_secs(86_400))
            .to_api_string();
        let c = s.connection();
        c.execute_batch("BEGIN").unwrap();
        for (at, n) in [(&old, KEEP_RUNS + 50), (&recent, 30)] {
            for _ in 0..n {
                c.execute(
                    "INSERT INTO runs (tenant, kind, started_at, outcome) VALUES ('t', 'poll', ?1, 'failed')",
                    [at],
                )
                .unwrap();
            }
        }
        c.execute_batch("COMMIT").unwrap();
        for keep in [KEEP_ALL, Duration::from_secs(400 * 86_400)] {
            prune(&mut s, keep, ApiTime::now()).unwrap();
        }
        let left: i64 = s
            .connection()
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            left, KEEP_RUNS,
            "the newest {KEEP_RUNS} of the tenant stay, no more"
        );
    }
}
