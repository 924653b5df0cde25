//! `mde-alerts import`: saved API responses, JSON arrays or NDJSON into the store, in one
//! transaction. SIGINT or SIGTERM rolls it back and records the run as interrupted.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mde_alerts::error::Error;
use mde_alerts::import::ImportError;
use mde_alerts::store::WriterLock;

pub(crate) async fn run(
    config: &Path,
    files: &[PathBuf],
    tenant: Option<&str>,
) -> Result<ExitCode, Error> {
    let config = super::load(config)?;
    let tenant = match tenant {
        Some(t) => config.tenant(t)?.name.clone(),
        None => config.tenants[0].name.clone(),
    };
    let _lock = WriterLock::acquire(&config.store.path, mde_alerts::store::WRITER_WAIT)?;
    let mut store = mde_alerts::store::Store::open(&config.store.path)?;
    mde_alerts::store::reconcile_configured(&mut store, &config)?;
    let stop = Arc::new(AtomicBool::new(false));
    let signal =
        mde_alerts::signal::stop_signal().map_err(Error::io("cannot watch for SIGINT/SIGTERM"))?;
    let started = std::time::Instant::now();
    let work = tokio::task::spawn_blocking({
        let (stop, files, tenant) = (stop.clone(), files.to_vec(), tenant.clone());
        move || mde_alerts::import::import_until(&mut store, &tenant, &files, &stop)
    });
    tokio::pin!(work);
    let mut stopped_by = None;
    let result = tokio::select! {
        r = &mut work => r,
        s = signal => {
            // The import stops at its next batch and rolls back; wait for it to record the run.
            stopped_by = Some(s);
            stop.store(true, Ordering::Relaxed);
            work.await
        }
    }
    .expect("the import task panicked");
    let r = match (result, stopped_by) {
        (Err(e @ ImportError::Interrupted { .. }), Some(signal)) => {
            errln!("interrupted by {signal}: {e}. `status` shows the run as interrupted.");
            return Ok(ExitCode::from(signal.exit_code()));
        }
        (result, _) => result?,
    };
    let c = r.counts;
    outln!(
        "{tenant}: imported {} elements in {:.2}s: {} new, {} updated, {} unchanged, {} stale, {} invalid",
        r.elements,
        started.elapsed().as_secs_f64(),
        c.new,
        c.updated,
        c.unchanged,
        c.stale,
        c.invalid
    )?;
    if r.same_time > 0 {
        errln!(
            "warning: {} times a version replaced a different version of the same alert with the same lastUpdateTime; the one read last is the current state, and both are kept in the alert's history (the warnings above name the alerts)",
            r.same_time
        );
    }
    Ok(ExitCode::SUCCESS)
}
