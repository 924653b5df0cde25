//! `mde-alerts config check`: validate the config, run the checks `poll` makes before it starts,
//! and print the resolved settings with secrets redacted.

use std::path::Path;
use std::process::ExitCode;

use mde_alerts::config::{SourceKind, mde_deprecation};
use mde_alerts::error::Error;

pub fn run(config: &Path) -> Result<ExitCode, Error> {
    let config = super::load(config)?;
    super::write_out(format_args!("{config}"))?;
    // The checks `poll` makes before it starts, so that "ok" means it will not refuse.
    config.check_ready()?;
    for t in config
        .tenants
        .iter()
        .filter(|t| t.source == SourceKind::Mde)
    {
        errln!("warning: tenant {}: {}", t.name, mde_deprecation());
    }
    outln!(
        "ok: the config is valid, every secret is readable, and the store and export directories can be written"
    )?;
    Ok(ExitCode::SUCCESS)
}
