//! `mde-alerts store prune | check`: retention now, and the store's soundness.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use mde_alerts::alert::time::ApiTime;
use mde_alerts::error::Error;
use mde_alerts::store::{Store, WriterLock, check, retention};
use mde_alerts::words;

#[derive(Subcommand, Debug)]
pub(crate) enum StoreAction {
    /// Apply `[store] keep_revisions` now: remove superseded revisions and old runs, and give the
    /// space back (the service does this once a day). An older store is converted once to
    /// incremental auto-vacuum (a VACUUM: needs free disk space of the store's size). Stop the
    /// service first: this takes the writer lock.
    Prune,
    /// Check the store: SQLite's integrity check, the store's own invariants, and every stored
    /// revision against its content hash. Exit 0 when sound, 1 listing what is wrong (each
    /// damaged alert and revision) and what to do. Reads the whole store, one row at a time;
    /// safe while the service runs, and never writes the store.
    Check {
        /// Print JSON: {"alerts", "revisions", "cursors", "problems": [{"kind", "what",
        /// "count", "examples"}]}.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(config: &Path, action: &StoreAction) -> Result<ExitCode, Error> {
    let config = super::load(config)?;
    match action {
        StoreAction::Prune => prune(&config),
        StoreAction::Check { json } => {
            let store = Store::open_read_only(&config.store.path)?;
            let report = check::check(&store)?;
            remember(&config.store.path, &report)?;
            if *json {
                let text = serde_json::to_string_pretty(&report)
                    .map_err(|e| Error::io("cannot write the report")(e.into()))?;
                outln!("{text}")?;
            } else if report.is_sound() {
                outln!(
                    "{}: sound ({}, {}, {})",
                    config.store.path.display(),
                    words::count(report.alerts, "alert", "alerts"),
                    words::count(report.revisions, "revision", "revisions"),
                    words::count(report.cursors, "cursor", "cursors")
                )?;
            } else {
                outln!("{}: NOT SOUND", config.store.path.display())?;
                for p in &report.problems {
                    outln!("  {} ({}): {}", p.kind, p.count, p.what)?;
                    for e in &p.examples {
                        outln!("    {e}")?;
                    }
                    if p.count > p.examples.len() as u64 {
                        outln!("    … and {} more", p.count - p.examples.len() as u64)?;
                    }
                }
                let db = config.store.path.display();
                let damaged = report
                    .problems
                    .iter()
                    .any(|p| p.kind.starts_with("revision_") && p.kind != "revision_without_alert");
                if damaged {
                    outln!(
                        "  The store is corrupt: the revisions above are not what was stored. Exports write every other alert and name these."
                    )?;
                }
                outln!(
                    "  fix: restore the newest backup that passes `store check`: check it first (`mde-alerts --config CONFIG_OF_THE_COPY store check`), then `systemctl stop mde-alerts`, copy it over {db} (and remove {db}-wal and {db}-shm), `systemctl start mde-alerts`; without a sound backup, move {db} aside and poll again into a new store (the next poll reads [poll] initial_lookback again)"
                )?;
            }
            Ok(if report.is_sound() {
                ExitCode::SUCCESS
            } else {
                super::failed()
            })
        }
    }
}

/// Keeps the mark `status` reads in step with the check: cleared when the store is sound, left
/// when revisions are damaged. The store itself is never written; a mark that cannot be written
/// (the store's directory is the service's) is said, not an error.
fn remember(db: &Path, report: &check::CheckReport) -> Result<(), Error> {
    let result = if report.is_sound() {
        check::clear_mark(db)
    } else if report.damaged_alerts.is_empty() {
        Ok(())
    } else {
        check::mark_corrupt(
            db,
            &format!(
                "`store check` found damaged alerts: {}",
                report.damaged_alerts.join(", ")
            ),
        )
    };
    if let Err(e) = result {
        outln!(
            "note: cannot update the damage mark beside {} ({e}); run `store check` as the service's user so that `status` follows",
            db.display()
        )?;
    }
    Ok(())
}

fn prune(config: &mde_alerts::config::Config) -> Result<ExitCode, Error> {
    let keep = match config.store.keep_revisions {
        Some(keep) => keep,
        None => {
            outln!(
                "[store] keep_revisions = 0: every revision is kept; only runs older than {} are removed",
                words::duration(retention::RUNS_KEPT_FOR)
            )?;
            retention::KEEP_ALL
        }
    };
    let _lock = WriterLock::acquire(&config.store.path, mde_alerts::store::WRITER_WAIT)?;
    let mut store = mde_alerts::store::Store::open(&config.store.path)?;
    let before = retention::size_on_disk(&store);
    let r = retention::prune(&mut store, keep, ApiTime::now())?;
    outln!(
        "removed {} (older than {}), {}, {}; {} reclaimed",
        words::count(r.revisions, "superseded revision", "superseded revisions"),
        words::duration(keep),
        words::count(r.runs, "run", "runs"),
        words::count(r.rejected, "rejected element", "rejected elements"),
        bytes(r.bytes_reclaimed)
    )?;
    if !r.incremental {
        outln!(
            "converting the store to incremental auto-vacuum (a one-time VACUUM of {}; later prunes give space back without it)…",
            bytes(before)
        )?;
        let shrunk = retention::convert_to_incremental(&mut store)?;
        outln!("done: {} reclaimed", bytes(shrunk))?;
    }
    outln!(
        "store: {} on disk (was {})",
        bytes(retention::size_on_disk(&store)),
        bytes(before)
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Bytes in MiB with one decimal, or bytes when small.
pub(crate) fn bytes(n: u64) -> String {
    if n < 1024 * 1024 {
        format!("{n} bytes")
    } else {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    }
}
