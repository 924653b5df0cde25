//! `mde-alerts backup PATH`: a consistent copy of the store while the service keeps writing.

use std::path::Path;
use std::process::ExitCode;

use mde_alerts::error::Error;
use mde_alerts::store::{Store, backup};

pub(crate) fn run(config: &Path, target: &Path) -> Result<ExitCode, Error> {
    let config = super::load(config)?;
    // A reader: no writer lock, so the service's polls go on (WAL).
    let store = Store::open_read_only(&config.store.path)?;
    let started = std::time::Instant::now();
    match backup::backup(&store, target, mde_alerts::export::FILE_MODE) {
        Ok(r) => {
            outln!(
                "backup written: {} ({}, {:.1}s); restore by stopping the service and copying it over {}",
                target.display(),
                super::store::bytes(r.bytes),
                started.elapsed().as_secs_f64(),
                config.store.path.display()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            errln!("error: {}", mde_alerts::http::error_chain(&e));
            if let Some(fix) = e.hint() {
                errln!("  fix: {fix}");
            }
            Ok(super::failed())
        }
    }
}
