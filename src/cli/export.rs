//! `mde-alerts export`: the configured snapshots, or one ad-hoc file (`--out PATH`, `--out -`),
//! from the store; no API calls. An ad-hoc file opens the store read-only; `--shape mde` writes
//! its JSON in the MDE API's shape (Graph alerts mapped).

use std::path::Path;
use std::process::ExitCode;

use mde_alerts::config::{Config, ExportFormat, ExportShape, TimeFormat};
use mde_alerts::error::Error;
use mde_alerts::export;

use super::filter::FilterArgs;

/// The flags of an ad-hoc file (`--out`) beside its format: which alerts, and how times read.
#[derive(clap::Args, Debug, Default, Clone)]
pub(crate) struct AdHocArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// CSV times: `iso` (default; exactly as the API sent them, for scripts) or `excel`
    /// (2026-11-16 19:43:38 in UTC, which spreadsheets read as dates; headers say "(UTC)").
    #[arg(long, value_enum, value_name = "FORMAT", requires = "out")]
    time_format: Option<TimeFormat>,
}

/// `export`: the configured exports, or one ad-hoc file (`--out PATH`, `--out -`).
pub(crate) fn run(
    config: &Path,
    name: Option<&str>,
    format: Option<ExportFormat>,
    out: Option<&std::path::Path>,
    shape: Option<ExportShape>,
    adhoc: &AdHocArgs,
) -> Result<ExitCode, Error> {
    let format = match (format, out) {
        // Standard output has no extension: CSV, the format a pipe to a person or a script
        // most often wants, unless --format says otherwise.
        (None, Some(out)) if is_stdout(out) => Some(ExportFormat::Csv),
        (None, Some(out)) => match export::format_for_path(out) {
            Ok(f) => Some(f),
            Err(message) => return Ok(super::usage_error(&message)),
        },
        (f, _) => f,
    };
    if shape.is_some() && !matches!(format, Some(ExportFormat::Json | ExportFormat::Ndjson)) {
        // The same rule as the config's `shape`: only JSON has a shape to choose.
        return Ok(super::usage_error(
            "--shape is only used with a JSON or NDJSON file (CSV, XLSX and the report always use the MDE API's names and values); remove it, or write .json/.ndjson",
        ));
    }
    if adhoc.time_format.is_some() && format != Some(ExportFormat::Csv) {
        return Ok(super::usage_error(
            "--time-format is only used with a CSV file (XLSX cells are dates already, JSON keeps the API's text); remove it, or write .csv",
        ));
    }
    let config = super::load(config)?;
    if out.is_none() {
        mde_alerts::export::check_export_dirs(&config)?;
    }
    require_store(&config)?;
    let (Some(format), Some(out)) = (format, out) else {
        for w in mde_alerts::configured_exports::run(&config, name)? {
            outln!("wrote {w}")?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    // Read-only: an ad-hoc file never changes the store.
    let store = mde_alerts::store::Store::open_read_only(&config.store.path)?;
    let e = mde_alerts::config::ExportConfig {
        shape: shape.unwrap_or_default(),
        time_format: adhoc.time_format.unwrap_or_default(),
        ..mde_alerts::config::ExportConfig::ad_hoc(format)
    };
    let tenants = config.tenant_names();
    let mut sel = export::selection_for(&store, &e, &tenants)?;
    if let Err(e) = adhoc.filter.apply(&mut sel, &tenants, chrono::Utc::now()) {
        return Ok(super::usage_error(&e.to_string()));
    }
    if is_stdout(out) {
        if let export::Streamed::Complete(n) =
            export::write_to(&store, &e, &sel, &mut std::io::stdout())?
        {
            tracing::info!(rows = n, "Wrote the export to standard output.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    clean_temps_beside(out);
    for w in export::export_file(&store, &e, &sel, out)? {
        outln!("wrote {w}")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn is_stdout(out: &std::path::Path) -> bool {
    out.as_os_str() == "-"
}

/// The directory a file at `out` is written in.
fn dir_of(out: &std::path::Path) -> &std::path::Path {
    out.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
}

/// Removes temp files that killed writers left beside an ad-hoc file. Not fatal: the directory
/// may be shared, and the file itself can still be written.
pub(super) fn clean_temps_beside(out: &std::path::Path) {
    if let Err(e) = export::remove_stale_temps(dir_of(out)) {
        tracing::warn!(error = %e, "Could not remove an old temp file; writing anyway.");
    }
}

/// Refuses to create an empty store: exports and reports read one that a poll or import made.
pub(super) fn require_store(config: &Config) -> Result<(), Error> {
    if config.store.path.is_file() {
        return Ok(());
    }
    Err(Error::Io {
        what: format!(
            "the store {} does not exist yet",
            config.store.path.display()
        ),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "run `mde-alerts poll` (or `import`) first",
        ),
    })
}
