//! `mde-alerts store prune | check`: retention now, and the store's soundness.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use mde_alerts::alert::time::ApiTime;
use mde_alerts::app;
use mde_alerts::error::Error;
use mde_alerts::store::{Store, WriterLock, check, retention};

#[derive(Subcommand, Debug)]
pub enum StoreAction {
    /// Apply `[store] keep_revisions` now: remove superseded revisions and old runs, and give the
    /// space back (the service does this once a day). An older store is converted once to
    /// incremental auto-vacuum (a VACUUM: needs free disk space of the store's size). Stop the
    /// service first: this takes the writer lock.
    Prune,
    /// Check the store: SQLite's integrity check and the store's own invariants. Exit 0 when
    /// sound, 1 listing what is wrong. Reads the whole store; safe while the service runs.
    Check {
        /// Print JSON: {"alerts", "revisions", "cursors", "problems": [{"kind", "what",
        /// "count", "examples"}]}.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(config: &Path, action: &StoreAction) -> Result<ExitCode, Error> {
    let config = super::load(config)?;
    match action {
        StoreAction::Prune => prune(&config),
        StoreAction::Check { json } => {
            let store = Store::open_read_only(&config.store.path)?;
            let report = check::check(&store)?;
            if *json {
                let text = serde_json::to_string_pretty(&report)
                    .map_err(|e| Error::io("cannot write the report")(e.into()))?;
                outln!("{text}")?;
            } else if report.is_sound() {
                outln!(
                    "{}: sound ({} alerts, {} revisions, {} cursors)",
                    config.store.path.display(),
                    report.alerts,
                    report.revisions,
                    report.cursors
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
                outln!(
                    "  fix: restore the newest backup that passes `store check` (`mde-alerts backup` makes them), or poll again into a new store"
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

fn prune(config: &mde_alerts::config::Config) -> Result<ExitCode, Error> {
    let Some(keep) = config.store.keep_revisions else {
        outln!("[store] keep_revisions = 0: every revision is kept; nothing to prune")?;
        return Ok(ExitCode::SUCCESS);
    };
    let _lock = WriterLock::acquire(&config.store.path, app::WRITER_WAIT)?;
    let mut store = app::open_store(config)?;
    let before = retention::size_on_disk(&store);
    let r = retention::prune(&mut store, keep, ApiTime::now())?;
    outln!(
        "removed {} superseded revisions (older than {}), {} runs, {} rejected elements; {} reclaimed",
        r.revisions,
        humantime::format_duration(keep),
        r.runs,
        r.rejected,
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
pub fn bytes(n: u64) -> String {
    if n < 1024 * 1024 {
        format!("{n} bytes")
    } else {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    }
}
