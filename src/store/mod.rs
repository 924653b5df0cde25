//! The SQLite store: every alert in its latest state, every version once, and the poll cursor.
//!
//! # Contract
//!
//! - **Dedup key**: (tenant, alert id). An incoming version replaces the stored one when its
//!   `lastUpdateTime` is newer, or equal with different content (a canonical-JSON hash); equal
//!   content changes nothing; an older version is counted as *stale* and ignored. Every distinct
//!   version lands in `alert_revisions` once (`UNIQUE (tenant, alert_id, content_hash)`), and the
//!   verbatim JSON lives only there: `alerts` points at its revision.
//! - **Transactions**: a page of alerts, the cursor advance that page allows, and the run's counters
//!   are written in one transaction ([`Writer`]). The cursor therefore never covers an alert that is
//!   not stored, and a crash at any instant leaves either the whole page or none of it.
//! - **Durability**: WAL with `synchronous=FULL`, so a committed page survives power loss too, not
//!   only a killed process; the pragmas are read back at open and the store refuses to run if
//!   SQLite did not accept them.
//! - **Recovery**: nothing to do beyond SQLite's own WAL recovery; runs left `running` by a killed
//!   process are marked `interrupted` when the next run of that tenant starts.
//! - **Migrations**: `migrations/NNNN_name.sql`, applied at open by `rusqlite_migration`, which
//!   records the version in `PRAGMA user_version` (nothing else may touch it).
//!
//! rusqlite is synchronous: async callers use it from `spawn_blocking`, never across an `.await`.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use rusqlite_migration::{M, Migrations};

pub use crate::alert::filter::Filter;
use crate::alert::time::ApiTime;

mod api_choice;
pub mod backup;
pub mod check;
mod configured;
mod counters;
mod export_state;
mod lock;
mod mail_pending;
mod quiet;
pub mod retention;
mod runs;
mod writer;

pub use api_choice::ApiChoiceRow;
pub use configured::reconcile_configured;
pub use counters::RunCounters;
pub use lock::{WRITER_WAIT, WriterLock};
pub use mail_pending::PendingMail;
pub use quiet::{FLUSH_EVERY, QuietPoll};
pub use runs::{Outcome, RunFigures, RunId, RunRow};
pub use writer::Writer;

/// The page size of a new store, in bytes (see [`Store::open`]).
pub const PAGE_SIZE: u32 = 16_384;

/// The schema, in order. Never edit a released migration; add a new one.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_budget.sql"),
    include_str!("../../migrations/0003_export_state.sql"),
    include_str!("../../migrations/0004_export_rev.sql"),
    include_str!("../../migrations/0005_settled.sql"),
    include_str!("../../migrations/0006_tenants.sql"),
    include_str!("../../migrations/0007_rejected.sql"),
    include_str!("../../migrations/0008_source_api.sql"),
    include_str!("../../migrations/0009_lean_indexes.sql"),
    include_str!("../../migrations/0010_api_choice.sql"),
    include_str!("../../migrations/0011_export_written_from.sql"),
    include_str!("../../migrations/0012_quiet_streak.sql"),
    include_str!("../../migrations/0013_mail_pending.sql"),
    include_str!("../../migrations/0014_run_totals.sql"),
    include_str!("../../migrations/0015_run_fix.sql"),
];

fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect())
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or set up.
    #[error("cannot open the store {path}: {reason}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
        /// What to do.
        fix: String,
    },
    /// The disk is full or failed while writing; the transaction was rolled back.
    #[error(
        "the store {path} could not be written ({reason}); the last transaction was rolled back and nothing was lost"
    )]
    Disk {
        /// The database file.
        path: PathBuf,
        /// SQLite's words.
        reason: String,
    },
    /// Another process holds the writer lock.
    #[error("another mde-alerts is writing to {path} ({holder}); waited {waited_secs}s")]
    Busy {
        /// The database file.
        path: PathBuf,
        /// Who holds it ("pid N").
        holder: String,
        /// How long this process waited.
        waited_secs: u64,
    },
    /// Any other SQLite error.
    #[error("store {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The error.
        #[source]
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// What the admin can do about it, when there is something to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            StoreError::Open { fix, .. } => Some(fix.clone()),
            StoreError::Disk { .. } => Some("free disk space or check the disk, then run again".into()),
            StoreError::Busy { .. } => Some("let it finish (a poll or import), or stop the other process; runs never overlap on one store".into()),
            StoreError::Sqlite { .. } => None,
        }
    }
}

/// What one upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// A new alert.
    New,
    /// A newer version (or same time, new content) replaced the stored one.
    Updated,
    /// The same version again.
    Unchanged,
    /// An older version than the stored one: ignored.
    Stale,
}

/// Counts of upsert outcomes, plus rejected elements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// New alerts.
    pub new: u64,
    /// Alerts replaced by a newer version.
    pub updated: u64,
    /// Versions seen again.
    pub unchanged: u64,
    /// Older versions ignored.
    pub stale: u64,
    /// Elements without an id or a readable `lastUpdateTime`.
    pub invalid: u64,
}

impl Counts {
    /// Adds one outcome.
    pub fn add(&mut self, u: Upsert) {
        match u {
            Upsert::New => self.new += 1,
            Upsert::Updated => self.updated += 1,
            Upsert::Unchanged => self.unchanged += 1,
            Upsert::Stale => self.stale += 1,
        }
    }
    /// Sums two counts.
    pub fn merge(&mut self, o: Counts) {
        self.new += o.new;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.stale += o.stale;
        self.invalid += o.invalid;
    }
}

/// What [`Store::reconcile_tenants`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantChange {
    /// A tenant was renamed in the config: its rows now go under the new name.
    Renamed {
        /// The name the rows had.
        old: String,
        /// The configured name.
        new: String,
    },
    /// A rename that was not carried out, because the new name already has rows.
    Conflict {
        /// The name with the older rows.
        old: String,
        /// The configured name, which has rows too.
        new: String,
    },
}

impl std::fmt::Display for TenantChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TenantChange::Renamed { old, new } => write!(
                f,
                "tenant \"{old}\" was renamed to \"{new}\" in the config (same tenant_id): its alerts, cursor and history now go under \"{new}\""
            ),
            TenantChange::Conflict { old, new } => write!(
                f,
                "tenant \"{new}\" has the tenant_id of \"{old}\", and both names have alerts in the store; \"{old}\" is left out of exports (rename \"{new}\" back to \"{old}\" to keep one history)"
            ),
        }
    }
}

/// The store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Quiet polls not yet written (see [`quiet`]).
    pending: quiet::Pending,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn unix_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn now_text() -> String {
    ApiTime::now().to_api_string()
}

impl Store {
    /// Opens (creating if needed) and migrates the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |reason: String, fix: &str| StoreError::Open {
            path: path.to_path_buf(),
            reason,
            fix: fix.to_owned(),
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(open_err(
                format!("the directory {} does not exist", parent.display()),
                "create it (the systemd unit's StateDirectory= does this), or change [store] path",
            ));
        }
        let mut conn = Connection::open(path).map_err(|e| {
            open_err(
                e.to_string(),
                "check that the service's user may write the file and its directory",
            )
        })?;
        // Another program's database is never converted to WAL nor given our tables.
        identify(&conn, path, true)?;
        let setup = |conn: &mut Connection| -> rusqlite::Result<(String, i64, i64)> {
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            // A new store gives freed pages back to the file system on demand (retention's
            // incremental vacuum). The mode can only be chosen before the first table exists; an
            // older store keeps its mode until `store prune` converts it (see `retention`).
            let fresh: bool =
                conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM sqlite_master)", [], |r| {
                    r.get(0)
                })?;
            if fresh {
                // 16 KiB pages: an alert's revision (~2.6 KB of JSON) takes a whole 4 KiB page
                // (two do not fit), wasting a third of every page that is written, fsynced and
                // checkpointed; six fit in 16 KiB. Like auto_vacuum, the page size is fixed when
                // the first table is created (a WAL store cannot change it without VACUUM), so an
                // older store keeps its 4 KiB pages.
                conn.execute_batch(&format!(
                    "PRAGMA page_size = {PAGE_SIZE}; PRAGMA auto_vacuum = INCREMENTAL"
                ))?;
            }
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            // temp_store=MEMORY keeps statement journals off the disk; a 32 MiB page cache keeps a
            // large import's index pages from being spilled to the WAL again and again.
            conn.execute_batch(
                "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                 PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32768;",
            )?;
            let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
            let fk: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
            Ok((mode, sync, fk))
        };
        let (mode, sync, fk) = setup(&mut conn).map_err(|e| {
            open_err(
                e.to_string(),
                "check permissions; the store must be on a local file system (WAL does not work over NFS)",
            )
        })?;
        if !mode.eq_ignore_ascii_case("wal") || sync != 2 || fk != 1 {
            return Err(open_err(
                format!(
                    "SQLite did not accept the required settings (journal_mode={mode}, synchronous={sync}, foreign_keys={fk})"
                ),
                "put the store on a local file system that supports WAL",
            ));
        }
        migrations().to_latest(&mut conn).map_err(|e| {
            open_err(
                format!("cannot bring the schema up to date: {e}"),
                "if this store was written by a newer mde-alerts, run that version",
            )
        })?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            pending: quiet::Pending::default(),
        })
    }

    /// Opens an existing store for reading only, as `status`, `report` and ad-hoc exports do: no
    /// migration, no pragma that writes, nothing created. So it works for a monitoring user who may
    /// read but not write the store, on a read-only mount, and never alters a file that is not an
    /// mde-alerts store.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        use rusqlite::OpenFlags;
        let open_err = |reason: String, fix: &str| StoreError::Open {
            path: path.to_path_buf(),
            reason,
            fix: fix.to_owned(),
        };
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(open_err(
                    "it is not a regular file".into(),
                    "point [store] path at the store's database file",
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(open_err(
                    "it does not exist yet".into(),
                    "run `mde-alerts poll` (or `import`) first, or check [store] path",
                ));
            }
            Err(e) => return Err(open_err(e.to_string(), READ_FIX)),
        }
        // The connection and the schema version: the first read, where SQLite finds it cannot set
        // up its WAL index.
        let open = |flags: OpenFlags, at: &Path| -> rusqlite::Result<(Connection, i64)> {
            let conn = Connection::open_with_flags(at, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
            conn.busy_timeout(std::time::Duration::from_secs(10))?;
            let version = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            Ok((conn, version))
        };
        let (conn, version) = match open(OpenFlags::SQLITE_OPEN_READ_ONLY, path) {
            // A reader who may read the database but not create files beside it (a member of the
            // service's group once the service has stopped and SQLite removed its -wal and -shm; a
            // read-only mount) cannot build the WAL index SQLite wants. With no -wal file the
            // database file holds every commit, so it is read as immutable: no index, no lock.
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
                ) && !wal_path(path).exists() =>
            {
                let uri = url::Url::from_file_path(std::path::absolute(path).unwrap_or_default())
                    .map(|mut u| {
                        u.set_query(Some("immutable=1"));
                        u.to_string()
                    })
                    .map_err(|()| open_err(e.to_string(), READ_FIX))?;
                open(
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
                    Path::new(&uri),
                )
                .map_err(|e| open_err(e.to_string(), READ_FIX))?
            }
            r => r.map_err(|e| open_err(e.to_string(), READ_FIX))?,
        };
        identify(&conn, path, false)?;
        let latest = MIGRATIONS.len() as i64;
        if version < latest {
            return Err(open_err(
                format!("its schema is version {version}; this mde-alerts reads version {latest}"),
                "run `mde-alerts poll` (or let the service run) once: it upgrades the store, then try again",
            ));
        }
        if version > latest {
            return Err(open_err(
                format!(
                    "it was written by a newer mde-alerts (schema version {version}, this one knows {latest})"
                ),
                "run the newer mde-alerts",
            ));
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            pending: quiet::Pending::default(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        classify(&self.path, source)
    }

    /// The tenant's cursor: the largest `lastUpdateTime` committed by a poll.
    pub fn cursor(&self, tenant: &str) -> Result<Option<ApiTime>, StoreError> {
        read_cursor(&self.conn, tenant).map_err(|e| self.err(e))
    }

    /// Which API (`mde`, `graph`) last moved the tenant's cursor; `None` before its first poll.
    pub fn cursor_api(&self, tenant: &str) -> Result<Option<String>, StoreError> {
        Ok(self.cursor_owner(tenant)?.map(|o| o.0))
    }

    /// Which API and which Defender products ([`crate::source::AlertSource::services`]) last
    /// moved the tenant's cursor; `None` before its first poll. Stores from before they were
    /// recorded read as the MDE API's endpoint alerts.
    pub fn cursor_owner(&self, tenant: &str) -> Result<Option<(String, String)>, StoreError> {
        self.conn
            .query_row(
                "SELECT coalesce(api, 'mde'), coalesce(services, 'microsoftDefenderForEndpoint') FROM cursors WHERE tenant = ?1",
                [tenant],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// How far a read-back under way (a switch of API, more Defender products) has read; `None`
    /// when none is under way. See [`crate::poll`].
    pub fn readback(&self, tenant: &str) -> Result<Option<ApiTime>, StoreError> {
        self.conn
            .query_row(
                "SELECT readback FROM cursors WHERE tenant = ?1",
                [tenant],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()
            .map(|o| o.flatten().map(ApiTime::from_ticks))
            .map_err(|e| self.err(e))
    }

    /// The tenant's settled watermark (see [`crate::poll`]), where its next poll starts: the
    /// stored one, or a quiet poll's still in memory when that is later.
    pub fn settled(&self, tenant: &str) -> Result<Option<ApiTime>, StoreError> {
        let stored = self
            .conn
            .query_row(
                "SELECT settled FROM cursors WHERE tenant = ?1",
                [tenant],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()
            .map(|o| o.flatten().map(ApiTime::from_ticks))
            .map_err(|e| self.err(e))?;
        Ok(stored.max(self.pending_settled(tenant)))
    }

    /// Records which Entra tenant each configured name belongs to, and carries the rows of a
    /// renamed tenant (same `tenant_id`, a name no longer configured) over to its new name, in one
    /// transaction: alerts, revisions, cursor, runs and budget history. Returns what it did, for
    /// the caller to say. A rename whose new name already has rows of its own is not merged (that
    /// would need a choice between two histories): it is reported as a conflict and left alone.
    pub fn reconcile_tenants(
        &mut self,
        configured: &[(&str, &str)],
    ) -> Result<Vec<TenantChange>, StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e))?;
        let mut changes = Vec::new();
        let run = |tx: &rusqlite::Transaction<'_>,
                   changes: &mut Vec<TenantChange>|
         -> rusqlite::Result<()> {
            let has_rows = |name: &str| -> rusqlite::Result<bool> {
                tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM alerts WHERE tenant = ?1) \
                     OR EXISTS (SELECT 1 FROM cursors WHERE tenant = ?1)",
                    [name],
                    |r| r.get(0),
                )
            };
            for &(name, tenant_id) in configured {
                let id = tenant_id.to_ascii_lowercase();
                let previous: Vec<String> = tx
                    .prepare("SELECT name FROM tenants WHERE tenant_id = ?1 AND name <> ?2")?
                    .query_map(params![id, name], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                for old in previous {
                    if configured.iter().any(|(n, _)| *n == old) || !has_rows(&old)? {
                        continue;
                    }
                    if has_rows(name)? {
                        changes.push(TenantChange::Conflict {
                            old,
                            new: name.to_owned(),
                        });
                        continue;
                    }
                    for table in [
                        "alerts",
                        "alert_revisions",
                        "cursors",
                        "runs",
                        "api_calls",
                        "api_choice",
                    ] {
                        tx.execute(
                            &format!("UPDATE {table} SET tenant = ?2 WHERE tenant = ?1"),
                            params![old, name],
                        )?;
                    }
                    tx.execute("DELETE FROM tenants WHERE name = ?1", [&old])?;
                    changes.push(TenantChange::Renamed {
                        old,
                        new: name.to_owned(),
                    });
                }
                tx.execute(
                    "INSERT INTO tenants (name, tenant_id) VALUES (?1, ?2) \
                     ON CONFLICT (name) DO UPDATE SET tenant_id = excluded.tenant_id",
                    params![name, id],
                )?;
            }
            Ok(())
        };
        run(&tx, &mut changes).map_err(|e| classify(&path, e))?;
        tx.commit().map_err(|e| classify(&path, e))?;
        Ok(changes)
    }

    /// How many elements of the tenant's pages were not valid alerts (kept in
    /// `rejected_elements`).
    pub fn rejected_count(&self, tenant: &str) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM rejected_elements WHERE tenant = ?1",
                [tenant],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.err(e))
    }

    /// Tenant names that have alerts in the store but are not among `configured`: their alerts
    /// are left out of exports and reports, and the caller says so.
    pub fn unconfigured_tenants(&self, configured: &[&str]) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT tenant FROM alerts ORDER BY tenant")
            .map_err(|e| self.err(e))?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(names
            .into_iter()
            .filter(|n| !configured.contains(&n.as_str()))
            .collect())
    }

    /// The tenant's API calls of the last hour (for the budget).
    pub fn recent_calls(&self, tenant: &str) -> Result<Vec<std::time::SystemTime>, StoreError> {
        let since = unix_ms(std::time::SystemTime::now()) - 3_600_000;
        let mut stmt = self
            .conn
            .prepare("SELECT at_ms FROM api_calls WHERE tenant = ?1 AND at_ms > ?2 ORDER BY at_ms")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![tenant, since], |r| r.get::<_, i64>(0))
            .map_err(|e| self.err(e))?;
        let mut calls: Vec<std::time::SystemTime> = rows
            .map(|r| {
                r.map(|ms| {
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)
                })
            })
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        calls.extend(
            self.pending_calls(tenant)
                .iter()
                .filter(|c| unix_ms(**c) > since),
        );
        calls.sort();
        Ok(calls)
    }

    /// Records API calls outside a page transaction (calls of a run that failed).
    pub fn record_calls(
        &mut self,
        tenant: &str,
        calls: &[std::time::SystemTime],
    ) -> Result<(), StoreError> {
        let mut w = self.writer()?;
        w.record_calls(tenant, calls)?;
        w.commit(None, 0).map(drop)
    }

    /// Starts a write transaction.
    pub fn writer(&mut self) -> Result<Writer<'_>, StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| classify(&path, e))?;
        Ok(Writer {
            tx,
            path,
            stored_at: now_text(),
            counts: Counts::default(),
            same_time: 0,
            poll: None,
        })
    }

    /// Starts a write transaction for a page (or the end) of a poll of `tenant`: its run row is
    /// begun in it, if needed, by [`Writer::poll_run`].
    pub fn poll_writer(&mut self, tenant: &str) -> Result<Writer<'_>, StoreError> {
        let streak = self.quiet_streak(tenant);
        let started_at = self.poll_started_at(tenant);
        let mut w = self.writer()?;
        w.poll = Some(writer::PollRun {
            tenant: tenant.to_owned(),
            started_at,
            streak,
            wrote_streak: false,
        });
        Ok(w)
    }

    /// Fails if the store cannot be written (a read-only mount): one write, rolled back.
    pub fn check_writable(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let w = self.writer()?;
        w.tx.execute(
            "INSERT INTO export_state (name, last_run_at) VALUES ('(write check)', '')",
            [],
        )
        .map_err(|e| classify(&path, e))?;
        drop(w); // rolled back
        Ok(())
    }

    /// A tenant's alerts by (severity, status).
    pub fn alerts_by_severity_status(
        &self,
        tenant: &str,
    ) -> Result<Vec<SeverityStatusCount>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT coalesce(severity, '(none)'), coalesce(status, '(none)'), count(*) FROM alerts \
                 WHERE tenant = ?1 GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([tenant], |r| {
                Ok(((r.get(0)?, r.get(1)?), r.get::<_, i64>(2)? as u64))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Alerts stored per tenant.
    pub fn alert_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT tenant, count(*) FROM alerts GROUP BY tenant ORDER BY tenant")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Calls `f` with every alert's verbatim JSON, latest state, ordered by tenant, then
    /// `lastUpdateTime`, then id. Streams: only one row is in memory at a time.
    pub fn for_each_alert(
        &self,
        mut f: impl FnMut(&str, &str) -> std::io::Result<()>,
    ) -> Result<u64, ForEachError> {
        self.for_each_row(&Selection::default(), |r| f(r.tenant, r.raw))
    }

    /// Calls `f` with each alert the cheap parts of `selection` pick (times, revision, tenants,
    /// `Resolved`), latest state, ordered by tenant, then `lastUpdateTime`, then id. Streams:
    /// only one row is in memory at a time. The list filters ([`Selection::accepts`]) are the
    /// caller's to apply, once, to the values it reads: a Graph alert's are its MDE mapping's,
    /// not what the store indexed.
    pub fn for_each_row(
        &self,
        selection: &Selection,
        mut f: impl FnMut(&AlertRow<'_>) -> std::io::Result<()>,
    ) -> Result<u64, ForEachError> {
        let mut sql = String::from(
            "SELECT a.tenant, r.raw, a.status, a.severity, a.category, a.last_update_time, a.id, a.rev \
             FROM alerts a JOIN alert_revisions r ON r.rev = a.rev WHERE 1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if selection.open_only {
            sql.push_str(" AND (a.status IS NULL OR a.status <> 'Resolved')");
        }
        if let Some(t) = selection.updated_since {
            sql.push_str(" AND a.last_update_time >= ?");
            args.push(t.ticks().into());
        }
        if let Some(t) = selection.updated_until {
            sql.push_str(" AND a.last_update_time <= ?");
            args.push(t.ticks().into());
        }
        if let Some(rev) = selection.changed_after_rev {
            sql.push_str(" AND a.rev > ?");
            args.push(rev.into());
        }
        // A per-tenant export reads one tenant's rows through an index led by `tenant`, not the
        // whole table once per tenant (exact names; the caller's `accepts` applies the full rule).
        if !selection.filter.tenants.is_empty() {
            let marks = vec!["?"; selection.filter.tenants.len()].join(", ");
            sql.push_str(&format!(" AND a.tenant IN ({marks})"));
            args.extend(selection.filter.tenants.iter().map(|t| t.clone().into()));
        }
        sql.push_str(" ORDER BY a.tenant, a.last_update_time, a.id");
        let store_err = |e| ForEachError::Store(self.err(e));
        let mut stmt = self.conn.prepare(&sql).map_err(store_err)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args))
            .map_err(store_err)?;
        let mut n = 0;
        while let Some(row) = rows.next().map_err(store_err)? {
            let text = |i: usize| -> Result<Option<&str>, ForEachError> {
                row.get_ref(i)
                    .and_then(|v| v.as_str_or_null().map_err(Into::into))
                    .map_err(store_err)
            };
            // A raw text SQLite holds as a blob (or not UTF-8) is handed on empty: not an
            // alert's JSON, so the export skips and names it rather than stop on it.
            let raw = row
                .get_ref(1)
                .map_err(store_err)?
                .as_str_or_null()
                .ok()
                .flatten();
            let r = AlertRow {
                tenant: text(0)?.unwrap_or_default(),
                raw: raw.unwrap_or_default(),
                id: text(6)?.unwrap_or_default(),
                rev: row.get(7).map_err(store_err)?,
                status: text(2)?,
                severity: text(3)?,
                category: text(4)?,
                last_update: ApiTime::from_ticks(row.get(5).map_err(store_err)?),
            };
            f(&r).map_err(ForEachError::Io)?;
            n += 1;
        }
        Ok(n)
    }

    /// The last revision the export `name` covered, for scope `changed`.
    pub fn export_last_rev(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT last_rev FROM export_state WHERE name = ?1",
                [name],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err(e))
    }

    /// The newest revision stored (0 when empty). Read before an export's rows: anything stored
    /// later has a larger number, so the next `changed` file includes it.
    pub fn max_rev(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT coalesce(max(rev), 0) FROM alert_revisions",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Records that the export `name` covered every revision up to `rev`.
    pub fn set_export_last_rev(&self, name: &str, rev: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO export_state (name, last_run_at, last_rev) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET last_run_at = excluded.last_run_at, last_rev = excluded.last_rev",
                params![name, now_text(), rev],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The store's clock, in the format of `alerts.updated_at`.
    pub fn clock() -> String {
        now_text()
    }

    /// Sets this connection's page cache to `kib` KiB: the service caps it (it reads a few pages
    /// per poll and the operating system caches the file anyway; the default filled to 32 MB at
    /// 10,000 tenants and stayed there), an import sizes it for its one big transaction.
    pub fn set_cache(&self, kib: u32) -> Result<(), StoreError> {
        self.conn
            .execute_batch(&format!("PRAGMA cache_size = -{kib}"))
            .map_err(|e| self.err(e))
    }

    /// The raw connection, for tests and checks (`PRAGMA integrity_check`).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// `((severity, status), count)`.
pub type SeverityStatusCount = ((String, String), u64);

/// One alert as `for_each_row` hands it out.
#[derive(Debug, Clone, Copy)]
pub struct AlertRow<'a> {
    /// The tenant's name.
    pub tenant: &'a str,
    /// The alert's JSON, verbatim.
    pub raw: &'a str,
    /// The alert's id.
    pub id: &'a str,
    /// The revision `raw` is.
    pub rev: i64,
    /// `status`.
    pub status: Option<&'a str>,
    /// `severity`.
    pub severity: Option<&'a str>,
    /// `category`.
    pub category: Option<&'a str>,
    /// `lastUpdateTime`.
    pub last_update: ApiTime,
}

/// Which alerts to read: the cheap parts in SQL, the list filters on each row.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Status is open ([`crate::alert::vocab::Status::is_open`]).
    pub open_only: bool,
    /// `lastUpdateTime` at or after this.
    pub updated_since: Option<ApiTime>,
    /// `lastUpdateTime` at or before this.
    pub updated_until: Option<ApiTime>,
    /// Changed in the store after this revision (scope `changed`).
    pub changed_after_rev: Option<i64>,
    /// Only these tenants: the configured ones, so that rows of a tenant no longer in the config
    /// (renamed, removed) never appear in a file. Empty: every tenant (no config at hand).
    pub configured: Vec<String>,
    /// The list filters.
    pub filter: Filter,
}

impl Selection {
    /// Whether the row passes the list filters.
    pub fn accepts(&self, r: &AlertRow<'_>) -> bool {
        let f = &self.filter;
        let listed = |list: &[String], v: Option<&str>| {
            list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x.eq_ignore_ascii_case(v)))
        };
        // `open_only` is also narrowed in SQL (exact `Resolved`); this is the full rule.
        (!self.open_only || crate::alert::vocab::Status::is_open_text(r.status))
            && f.min_severity
                .is_none_or(|min| crate::alert::vocab::Severity::of(r.severity).rank() >= min)
            && listed(&f.statuses, r.status)
            && listed(&f.categories, r.category)
            && listed(&f.tenants, Some(r.tenant))
            && (self.configured.is_empty() || self.configured.iter().any(|t| t == r.tenant))
    }
}

/// An error while streaming alerts out.
#[derive(Debug, thiserror::Error)]
pub enum ForEachError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(StoreError),
    /// The consumer failed (usually writing a file).
    #[error(transparent)]
    Io(std::io::Error),
}

/// The tenant's cursor, inside a transaction or not.
fn read_cursor(conn: &Connection, tenant: &str) -> rusqlite::Result<Option<ApiTime>> {
    conn.query_row(
        "SELECT last_update_time FROM cursors WHERE tenant = ?1",
        [tenant],
        |r| r.get::<_, i64>(0),
    )
    .optional()
    .map(|o| o.map(ApiTime::from_ticks))
}

/// The write-ahead log beside the database at `path` (SQLite names it so).
pub(crate) fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// What to do when a store cannot be read.
const READ_FIX: &str = "run as the service's user (`sudo -u mde-alerts …`), or add your user to the group that owns the store (mde-alerts) so that it may read the file and its -wal and -shm files";

/// Refuses a database that is not an mde-alerts store: one with tables, none of them ours. An
/// empty file (or a new one) is fine when `creating`.
fn identify(conn: &Connection, path: &Path, creating: bool) -> Result<(), StoreError> {
    let open_err = |reason: String, fix: &str| StoreError::Open {
        path: path.to_path_buf(),
        reason,
        fix: fix.to_owned(),
    };
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => open_err(
                "it is not an SQLite database".into(),
                "point [store] path at the store (a new path creates one)",
            ),
            _ => open_err(e.to_string(), READ_FIX),
        })?;
    let ours = ["alerts", "alert_revisions", "cursors", "runs"];
    if tables.is_empty() && creating {
        return Ok(());
    }
    if !ours.iter().all(|t| tables.iter().any(|x| x == t)) {
        let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
        return Err(open_err(
            if tables.is_empty() {
                "it is an empty database, not an mde-alerts store".into()
            } else {
                format!(
                    "it is not an mde-alerts store (its tables are {}{})",
                    shown.join(", "),
                    if tables.len() > 5 { ", …" } else { "" }
                )
            },
            "point [store] path at the mde-alerts store, or at a new file (one is created); mde-alerts never changes another program's database",
        ));
    }
    Ok(())
}

fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DiskFull | SystemIoFailure | ReadOnly | CannotOpen) => StoreError::Disk {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
        _ => StoreError::Sqlite {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Alert;

    fn alert(id: &str, t: &str, extra: &str) -> Alert {
        let raw = format!(r#"{{"id":"{id}","lastUpdateTime":"{t}","status":"New"{extra}}}"#);
        Alert::parse(&raw).unwrap()
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.db")).unwrap();
        (dir, store)
    }

    /// A streak of quiet polls is one row whose figures add up; a poll that stored something, was
    /// throttled or failed starts a new row, and the next quiet one starts another streak.
    #[test]
    fn a_streak_of_quiet_polls_is_one_row() {
        let (_d, mut s) = open();
        let quiet = |s: &mut Store, calls: u64| {
            let run = s.begin_run("t", "poll").unwrap();
            let figures = RunFigures {
                api_calls: calls,
                ..RunFigures::default()
            };
            s.finish_run(run, Outcome::Ok, figures, None, None).unwrap();
        };
        for _ in 0..5 {
            quiet(&mut s, 1);
        }
        let runs = s.runs(Some("t"), 10).unwrap();
        assert_eq!(runs.len(), 1, "five quiet polls, one row");
        assert_eq!(runs[0].polls, 5);
        assert_eq!(runs[0].api_calls, 5);
        assert!(runs[0].last_started_at.is_some());
        // A poll that stored an alert is a row of its own.
        let run = s.begin_run("t", "poll").unwrap();
        let mut w = s.writer().unwrap();
        w.upsert("t", &alert("da1", "2026-01-01T00:00:00Z", ""))
            .unwrap();
        w.commit(Some(run), 1).unwrap();
        s.finish_run(run, Outcome::Ok, RunFigures::default(), None, None)
            .unwrap();
        // A failed one too, and a quiet one after it starts a new streak.
        let run = s.begin_run("t", "poll").unwrap();
        s.finish_run(run, Outcome::Failed, RunFigures::default(), Some("x"), None)
            .unwrap();
        quiet(&mut s, 1);
        quiet(&mut s, 1);
        let runs = s.runs(Some("t"), 10).unwrap();
        let shape: Vec<(String, i64)> = runs.iter().map(|r| (r.outcome.clone(), r.polls)).collect();
        assert_eq!(
            shape,
            [
                ("ok".to_owned(), 2),
                ("failed".to_owned(), 1),
                ("ok".to_owned(), 1),
                ("ok".to_owned(), 5)
            ]
        );
        // Another tenant's runs are never folded in.
        quiet(&mut s, 1);
        let run = s.begin_run("u", "poll").unwrap();
        s.finish_run(run, Outcome::Ok, RunFigures::default(), None, None)
            .unwrap();
        assert_eq!(s.runs(Some("t"), 10).unwrap()[0].polls, 3);
        assert_eq!(s.runs(Some("u"), 10).unwrap()[0].polls, 1);
    }

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    /// The writer replaces a changed alert's row by a DELETE and an INSERT that names every
    /// column (`writer::upsert_inner`): a column added to `alerts` by a migration would be reset
    /// on every update unless that INSERT carries it. This list fails first, pointing there.
    #[test]
    fn the_writers_insert_names_every_column_of_alerts() {
        let (_d, s) = open();
        let mut stmt = s
            .conn
            .prepare("SELECT name FROM pragma_table_info('alerts')")
            .unwrap();
        let columns: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            columns,
            [
                "tenant",
                "id",
                "rev",
                "last_update_time",
                "content_hash",
                "status",
                "severity",
                "category",
                "created",
                "first_stored_at",
                "updated_at"
            ],
            "a new column of `alerts` must be carried by the INSERT in store::writer::upsert_inner"
        );
    }

    #[test]
    fn dedup_rule() {
        let (_d, mut s) = open();
        let mut w = s.writer().unwrap();
        let t1 = "2024-01-01T00:00:00Z";
        let t2 = "2024-01-01T00:00:01Z";
        assert_eq!(w.upsert("t", &alert("a", t1, "")).unwrap(), Upsert::New);
        assert_eq!(
            w.upsert("t", &alert("a", t1, "")).unwrap(),
            Upsert::Unchanged
        );
        // Same instant in another precision, same content otherwise: still a different text, but
        // lastUpdateTime is part of the content, so this is a new version at the same time.
        assert_eq!(
            w.upsert("t", &alert("a", t1, r#","comments":[1]"#))
                .unwrap(),
            Upsert::Updated
        );
        assert_eq!(w.upsert("t", &alert("a", t2, "")).unwrap(), Upsert::Updated);
        assert_eq!(w.upsert("t", &alert("a", t1, "")).unwrap(), Upsert::Stale);
        assert_eq!(w.upsert("other", &alert("a", t1, "")).unwrap(), Upsert::New);
        w.commit(None, 0).unwrap();
        let revs: i64 = s
            .connection()
            .query_row(
                "SELECT count(*) FROM alert_revisions WHERE tenant='t'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(revs, 3, "three distinct versions of alert a");
        let mut latest = Vec::new();
        s.for_each_alert(|t, raw| {
            latest.push((t.to_owned(), raw.to_owned()));
            Ok(())
        })
        .unwrap();
        assert_eq!(latest.len(), 2);
        assert!(latest.iter().any(|(t, r)| t == "t" && r.contains(t2)));
    }

    #[test]
    fn cursor_moves_only_forward_and_only_on_commit() {
        let (_d, mut s) = open();
        let t1 = ApiTime::parse("2024-01-01T00:00:00Z").unwrap();
        let t0 = ApiTime::parse("2023-01-01T00:00:00Z").unwrap();
        {
            let mut w = s.writer().unwrap();
            w.advance_cursor("t", t1, t1, ("mde", "x")).unwrap();
            // dropped: rolled back
        }
        assert_eq!(s.cursor("t").unwrap(), None);
        let mut w = s.writer().unwrap();
        w.advance_cursor("t", t1, t1, ("mde", "x")).unwrap();
        w.advance_cursor("t", t0, t0, ("mde", "x")).unwrap();
        w.commit(None, 0).unwrap();
        assert_eq!(s.cursor("t").unwrap(), Some(t1));
    }

    /// Migration 0009 dropped the indexes no query reads: the queries on `alerts` still find
    /// their rows through an index (no full scan), and the export's order comes without a sort.
    #[test]
    fn every_alerts_query_has_its_index() {
        let (_d, s) = open();
        let plan = |sql: &str| -> String {
            let mut stmt = s
                .connection()
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
            stmt.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
                .join("; ")
        };
        let export =
            "SELECT a.tenant, r.raw FROM alerts a JOIN alert_revisions r ON r.rev = a.rev WHERE 1";
        for (sql, wants) in [
            (
                format!("{export} ORDER BY a.tenant, a.last_update_time, a.id"),
                "alerts_by_update",
            ),
            (
                format!(
                    "{export} AND (a.status IS NULL OR a.status <> 'Resolved') ORDER BY a.tenant, a.last_update_time, a.id"
                ),
                "alerts_by_update",
            ),
            (
                format!("{export} AND a.rev > ? ORDER BY a.tenant, a.last_update_time, a.id"),
                "alerts_by_",
            ),
            (
                "SELECT severity, status, count(*) FROM alerts WHERE tenant = ? GROUP BY 1, 2"
                    .into(),
                "PRIMARY KEY (tenant=?)",
            ),
            (
                "SELECT last_update_time, content_hash FROM alerts WHERE tenant = ? AND id = ?"
                    .into(),
                "PRIMARY KEY (tenant=? AND id=?)",
            ),
            (
                "SELECT max(last_update_time) FROM alerts WHERE tenant = ?".into(),
                "alerts_by_update",
            ),
            ("SELECT 1 FROM alerts WHERE rev = ?".into(), "alerts_by_rev"),
        ] {
            let p = plan(&sql);
            assert!(p.contains(wants), "{sql}: {p}");
            assert!(
                !p.contains("TEMP B-TREE FOR ORDER BY") || sql.contains("a.rev >"),
                "{sql}: {p}"
            );
        }
        let indexes: i64 = s
            .connection()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'alerts' AND sql IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 2, "alerts_by_update and alerts_by_rev");
    }

    /// A new store has 16 KiB pages (a revision no longer takes a 4 KiB page to
    /// itself); a store created with another page size keeps it, and opens and writes as before.
    #[test]
    fn new_stores_get_16k_pages_and_older_ones_keep_theirs() {
        let page_size = |s: &Store| -> i64 {
            s.connection()
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap()
        };
        let (_d, s) = open();
        assert_eq!(page_size(&s), i64::from(PAGE_SIZE));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let mut c = Connection::open(&path).unwrap();
            c.execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL;")
                .unwrap();
            migrations().to_latest(&mut c).unwrap();
        }
        let mut old = Store::open(&path).unwrap();
        assert_eq!(page_size(&old), 4096);
        let mut w = old.writer().unwrap();
        w.upsert("t", &alert("a", "2024-01-01T00:00:00Z", ""))
            .unwrap();
        w.commit(None, 0).unwrap();
        assert_eq!(old.alert_counts().unwrap(), vec![("t".to_owned(), 1)]);
    }

    /// The upsert is a plain INSERT for a new alert and an UPDATE for a changed one (no
    /// statement journal): the update moves every indexed field and the revision, and keeps
    /// `first_stored_at`.
    #[test]
    fn an_update_moves_the_row_and_keeps_its_first_store_time() {
        let (_d, mut s) = open();
        let row = |s: &Store| -> (i64, String, String, String, String) {
            s.connection()
                .query_row(
                    "SELECT rev, status, severity, first_stored_at, updated_at FROM alerts WHERE tenant = 't' AND id = 'a'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .unwrap()
        };
        let mut w = s.writer().unwrap();
        w.stored_at = "2024-01-01T00:00:00Z".into();
        w.upsert(
            "t",
            &alert("a", "2024-01-01T00:00:00Z", r#","severity":"Low""#),
        )
        .unwrap();
        w.commit(None, 0).unwrap();
        let first = row(&s);
        let mut w = s.writer().unwrap();
        w.stored_at = "2024-02-01T00:00:00Z".into();
        let a = Alert::parse(
            r#"{"id":"a","lastUpdateTime":"2024-01-02T00:00:00Z","status":"Resolved","severity":"High"}"#,
        )
        .unwrap();
        assert_eq!(w.upsert("t", &a).unwrap(), Upsert::Updated);
        w.commit(None, 0).unwrap();
        let second = row(&s);
        assert!(second.0 > first.0, "{first:?} {second:?}");
        assert_eq!((second.1.as_str(), second.2.as_str()), ("Resolved", "High"));
        assert_eq!(second.3, "2024-01-01T00:00:00Z", "first_stored_at kept");
        assert_eq!(second.4, "2024-02-01T00:00:00Z");
    }

    #[test]
    fn pragmas_are_as_required() {
        let (_d, s) = open();
        let sync: i64 = s
            .connection()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2);
    }

    #[test]
    fn runs_are_recorded_and_interrupted_ones_marked() {
        let (_d, mut s) = open();
        let r1 = s.begin_run("t", "poll").unwrap();
        let r2 = s.begin_run("t", "poll").unwrap();
        let mut w = s.writer().unwrap();
        w.upsert("t", &alert("a", "2024-01-01T00:00:00Z", ""))
            .unwrap();
        w.commit(Some(r2), 3).unwrap();
        s.finish_run(
            r2,
            Outcome::Ok,
            RunFigures {
                api_calls: 3,
                ..RunFigures::default()
            },
            None,
            None,
        )
        .unwrap();
        let runs = s.runs(Some("t"), 10).unwrap();
        assert_eq!(runs[0].id, r2.0);
        assert_eq!(runs[0].outcome, "ok");
        assert_eq!(runs[0].counts.new, 1);
        assert_eq!(runs[0].api_calls, 3);
        assert_eq!(runs[1].id, r1.0);
        assert_eq!(runs[1].outcome, "interrupted");
    }

    #[test]
    fn missing_directory_is_explained() {
        let e = Store::open(Path::new("/nonexistent-dir-4711/a.db")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
