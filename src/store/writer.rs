//! The write transaction: a page of alerts, the cursor it allows and the run's counters, committed
//! together or not at all; rolled back when dropped.

use std::path::PathBuf;

use rusqlite::{OptionalExtension, params};

use super::{Counts, RunId, StoreError, Upsert, classify, unix_ms};
use crate::alert::Alert;
use crate::alert::time::ApiTime;

/// One write transaction: upserts, the cursor, a run's counters. Dropped without
/// [`Writer::commit`], it rolls back.
pub struct Writer<'a> {
    pub(super) tx: rusqlite::Transaction<'a>,
    pub(super) path: PathBuf,
    pub(super) stored_at: String,
    pub(super) counts: Counts,
    /// Updates that replaced a different version with the same `lastUpdateTime`.
    pub(super) same_time: u64,
    /// The poll this transaction writes for, when it came from [`super::Store::poll_writer`].
    pub(super) poll: Option<PollRun>,
}

/// What a poll's first writing transaction needs to begin its run row.
#[derive(Debug)]
pub(super) struct PollRun {
    pub(super) tenant: String,
    pub(super) started_at: String,
    /// The tenant's quiet polls still in memory: written first, so that runs stay in order.
    pub(super) streak: Option<super::quiet::Streak>,
    pub(super) wrote_streak: bool,
}

/// Records API calls for the budget of later processes.
pub(super) fn insert_calls(
    tx: &rusqlite::Transaction<'_>,
    tenant: &str,
    calls: &[std::time::SystemTime],
) -> rusqlite::Result<()> {
    let mut ins = tx.prepare_cached("INSERT INTO api_calls (tenant, at_ms) VALUES (?1, ?2)")?;
    for c in calls {
        ins.execute(params![tenant, unix_ms(*c)])?;
    }
    Ok(())
}

/// Forgets the tenant's calls older than an hour: the budget looks no further back.
pub(super) fn prune_calls(tx: &rusqlite::Transaction<'_>, tenant: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM api_calls WHERE tenant = ?1 AND at_ms <= ?2")?
        .execute(params![
            tenant,
            unix_ms(std::time::SystemTime::now()) - 3_600_000
        ])
        .map(drop)
}

impl Writer<'_> {
    fn err(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.path, e)
    }

    /// Applies the dedup rule to one alert.
    pub fn upsert(&mut self, tenant: &str, a: &Alert) -> Result<Upsert, StoreError> {
        let outcome = self.upsert_inner(tenant, a).map_err(|e| self.err(e))?;
        self.counts.add(outcome);
        Ok(outcome)
    }

    fn upsert_inner(&mut self, tenant: &str, a: &Alert) -> rusqlite::Result<Upsert> {
        let current: Option<(i64, Vec<u8>, String)> = self
            .tx
            .prepare_cached(
                "SELECT last_update_time, content_hash, first_stored_at FROM alerts WHERE tenant = ?1 AND id = ?2",
            )?
            .query_row(params![tenant, a.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let t = a.last_update.ticks();
        let outcome = match &current {
            None => Upsert::New,
            Some((stored, ..)) if t < *stored => return Ok(Upsert::Stale),
            Some((stored, hash, _)) if t == *stored && hash.as_slice() == a.hash => {
                return Ok(Upsert::Unchanged);
            }
            Some((stored, ..)) if t == *stored => {
                self.same_time += 1;
                Upsert::Updated
            }
            Some(_) => Upsert::Updated,
        };
        let inserted = self
            .tx
            .prepare_cached(
                "INSERT INTO alert_revisions (tenant, alert_id, last_update_time, content_hash, raw, stored_at, api) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (tenant, alert_id, content_hash) DO NOTHING",
            )?
            .execute(params![tenant, a.id, t, &a.hash[..], &*a.raw, self.stored_at, a.shape.as_str()])?;
        let rev: i64 = if inserted == 1 {
            self.tx.last_insert_rowid()
        } else {
            // This exact version was stored before (the alert went back to it): reuse it.
            self.tx
                .prepare_cached(
                    "SELECT rev FROM alert_revisions WHERE tenant = ?1 AND alert_id = ?2 AND content_hash = ?3",
                )?
                .query_row(params![tenant, a.id, &a.hash[..]], |r| r.get(0))?
        };
        let f = &a.fields;
        // A changed alert's row is deleted and inserted again, not updated: an UPDATE of a table
        // with a foreign key (`rev`) is a "multi-write" statement that may abort, so SQLite keeps
        // a statement journal for it, a copy of every 16 KiB page it touches (3.6 % of an
        // import's CPU). A DELETE of a child row cannot break the key and a one-row INSERT checks
        // it without a statement journal; the key stays checked on every write. The row has no
        // other column to carry over than `first_stored_at`, read above.
        if outcome != Upsert::New {
            self.tx
                .prepare_cached("DELETE FROM alerts WHERE tenant = ?1 AND id = ?2")?
                .execute(params![tenant, a.id])?;
        }
        let first_stored_at = current
            .as_ref()
            .map_or(&self.stored_at, |(.., first)| first);
        self.tx
            .prepare_cached(
                "INSERT INTO alerts (tenant, id, rev, last_update_time, content_hash, status, severity, category, created, first_stored_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                tenant,
                a.id,
                rev,
                t,
                &a.hash[..],
                f.status,
                f.severity,
                f.category,
                f.created.map(ApiTime::ticks),
                first_stored_at,
                self.stored_at
            ])?;
        Ok(outcome)
    }

    /// Records API calls for the budget, and forgets those older than an hour.
    pub(crate) fn record_calls(
        &mut self,
        tenant: &str,
        calls: &[std::time::SystemTime],
    ) -> Result<(), StoreError> {
        insert_calls(&self.tx, tenant, calls)
            .and_then(|()| prune_calls(&self.tx, tenant))
            .map_err(|e| classify(&self.path, e))
    }

    /// The poll's run: `run` if it has one, else a row begun now in this transaction, after the
    /// tenant's quiet polls still in memory. A poll's row is written with the first transaction
    /// that writes anything else, so a quiet poll writes none.
    pub fn poll_run(&mut self, tenant: &str, run: Option<RunId>) -> Result<RunId, StoreError> {
        if let Some(run) = run {
            return Ok(run);
        }
        let stored_at = self.stored_at.clone();
        let poll = self.poll.get_or_insert_with(|| PollRun {
            tenant: tenant.to_owned(),
            started_at: stored_at,
            streak: None,
            wrote_streak: false,
        });
        let begin = |tx: &rusqlite::Transaction<'_>, poll: &mut PollRun| -> rusqlite::Result<i64> {
            if let Some(streak) = poll.streak.take() {
                super::quiet::write_streak(tx, &poll.tenant, &streak)?;
                poll.wrote_streak = true;
            }
            let cursor: Option<i64> = tx
                .prepare_cached("SELECT last_update_time FROM cursors WHERE tenant = ?1")?
                .query_row([&poll.tenant], |r| r.get(0))
                .optional()?
                .flatten();
            tx.prepare_cached(
                "INSERT INTO runs (tenant, kind, started_at, cursor_before, cursor_after) \
                 VALUES (?1, 'poll', ?2, ?3, ?3)",
            )?
            .execute(params![poll.tenant, poll.started_at, cursor])?;
            Ok(tx.last_insert_rowid())
        };
        begin(&self.tx, poll)
            .map(RunId)
            .map_err(|e| classify(&self.path, e))
    }

    /// Whether this transaction wrote the tenant's quiet polls from memory (the store forgets
    /// them once it commits).
    pub(crate) fn wrote_streak(&self) -> bool {
        self.poll.as_ref().is_some_and(|p| p.wrote_streak)
    }

    /// Whether moving the tenant's cursor to `to` for `api` and `services` changes it.
    pub(crate) fn cursor_moves(
        &self,
        tenant: &str,
        to: ApiTime,
        (api, services): (&str, &str),
    ) -> Result<bool, StoreError> {
        let now: Option<(Option<i64>, String, String)> = self
            .tx
            .prepare_cached(
                "SELECT last_update_time, coalesce(api, 'mde'), \
                 coalesce(services, 'microsoftDefenderForEndpoint') FROM cursors WHERE tenant = ?1",
            )
            .and_then(|mut st| {
                st.query_row([tenant], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .map_err(|e| self.err(e))?;
        Ok(match now {
            Some((Some(at), a, s)) => to.ticks() > at || a != api || s != services,
            _ => true,
        })
    }

    /// Adds alerts read again unchanged by pages that wrote nothing, for a run begun late.
    pub(crate) fn add_unchanged(&mut self, n: u64) {
        self.counts.unchanged = self.counts.unchanged.saturating_add(n);
    }

    /// Counts rejected elements.
    pub(crate) fn add_invalid(&mut self, n: u64) {
        self.counts.invalid += n;
    }

    /// Keeps an element that is not a valid alert, verbatim and once (counted as invalid): what
    /// the API sent is never dropped, even when it cannot be stored as an alert.
    pub(crate) fn reject(
        &mut self,
        tenant: &str,
        reason: &str,
        raw: &str,
    ) -> Result<(), StoreError> {
        self.counts.invalid += 1;
        let hash = blake3::hash(raw.as_bytes());
        self.tx
            .prepare_cached(
                "INSERT INTO rejected_elements (tenant, reason, raw, hash, stored_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (tenant, hash) DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    tenant,
                    reason,
                    raw,
                    &hash.as_bytes()[..],
                    self.stored_at
                ])
            })
            .map(drop)
            .map_err(|e| classify(&self.path, e))
    }

    /// Moves the tenant's cursor forward to `to` and its settled watermark forward to `settled`
    /// (neither ever moves back), recording which API and Defender products (`(api, services)`,
    /// see [`super::Store::cursor_owner`]) moved them.
    pub fn advance_cursor(
        &mut self,
        tenant: &str,
        to: ApiTime,
        settled: ApiTime,
        (api, services): (&str, &str),
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO cursors (tenant, last_update_time, updated_at, settled, api, services) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (tenant) DO UPDATE SET last_update_time = max(last_update_time, excluded.last_update_time), \
                 settled = max(coalesce(settled, excluded.settled), excluded.settled), \
                 updated_at = excluded.updated_at, api = excluded.api, services = excluded.services",
            )
            .and_then(|mut s| {
                s.execute(params![
                    tenant,
                    to.ticks(),
                    self.stored_at,
                    settled.ticks(),
                    api,
                    services
                ])
            })
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Starts a read-back from `from` (or keeps one already under way from further back) and
    /// records the API and Defender products now reading, in this transaction: an interrupted
    /// read-back resumes where it stopped, instead of being forgotten because the record says
    /// the new products were read.
    pub(crate) fn start_readback(
        &mut self,
        tenant: &str,
        from: ApiTime,
        (api, services): (&str, &str),
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE cursors SET readback = min(coalesce(readback, ?2), ?2), api = ?3, services = ?4 \
                 WHERE tenant = ?1",
            )
            .and_then(|mut s| s.execute(params![tenant, from.ticks(), api, services]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Moves a read-back under way forward to `to` (never back); no-op when none is.
    pub(crate) fn advance_readback(&mut self, tenant: &str, to: ApiTime) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE cursors SET readback = max(readback, ?2) WHERE tenant = ?1 AND readback IS NOT NULL",
            )
            .and_then(|mut s| s.execute(params![tenant, to.ticks()]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Ends a read-back: the poll read to the end.
    pub(crate) fn finish_readback(&mut self, tenant: &str) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("UPDATE cursors SET readback = NULL WHERE tenant = ?1")
            .and_then(|mut s| s.execute(params![tenant]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The tenant's cursor as this transaction sees it.
    pub(crate) fn cursor(&self, tenant: &str) -> Result<Option<ApiTime>, StoreError> {
        super::read_cursor(&self.tx, tenant).map_err(|e| self.err(e))
    }

    /// Moves the settled watermark forward to `to` (never back) without touching the cursor: a
    /// poll that read to the end proves more than its last alert's time. No-op before the first
    /// cursor exists.
    pub(crate) fn advance_settled(&mut self, tenant: &str, to: ApiTime) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "UPDATE cursors SET settled = max(coalesce(settled, ?2), ?2) WHERE tenant = ?1",
            )
            .and_then(|mut s| s.execute(params![tenant, to.ticks()]))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Updates so far that replaced a different version with the same `lastUpdateTime` (the
    /// dedup rule cannot order them: the later write wins, both stay in the history).
    pub(crate) fn same_time_changes(&self) -> u64 {
        self.same_time
    }

    /// What this transaction did so far.
    pub(crate) fn counts(&self) -> Counts {
        self.counts
    }

    /// Commits, adding this transaction's counts (and one page) to the run.
    pub fn commit(self, run: Option<RunId>, api_calls: u64) -> Result<Counts, StoreError> {
        let c = self.counts;
        if let Some(run) = run {
            self.tx
                .execute(
                    "UPDATE runs SET pages = pages + 1, new = new + ?2, updated = updated + ?3, \
                     unchanged = unchanged + ?4, stale = stale + ?5, invalid = invalid + ?6, api_calls = ?7, \
                     cursor_after = (SELECT c.last_update_time FROM cursors c WHERE c.tenant = runs.tenant) \
                     WHERE id = ?1",
                    params![
                        run.0,
                        c.new as i64,
                        c.updated as i64,
                        c.unchanged as i64,
                        c.stale as i64,
                        c.invalid as i64,
                        api_calls as i64
                    ],
                )
                .map_err(|e| classify(&self.path, e))?;
        }
        let path = self.path.clone();
        self.tx.commit().map_err(|e| classify(&path, e))?;
        Ok(c)
    }
}
