//! `mde-alerts report`: the nightly report from the store (read-only), into a directory, a file or
//! standard output.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use mde_alerts::config::ExportFormat;
use mde_alerts::error::Error;
use mde_alerts::export;

use super::export::{clean_temps_beside, is_stdout, require_store};
use super::filter::FilterArgs;

/// `--timezone`: an IANA name from the database compiled in.
pub(crate) fn time_zone_arg(text: &str) -> Result<chrono_tz::Tz, String> {
    text.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        format!("{text:?} is not a time zone; use an IANA name such as Europe/Berlin, America/New_York or UTC")
    })
}

/// `report`: the report into a directory (`report.html`, `report.md`), one file, or stdout.
pub(crate) fn run(
    config: &Path,
    window: Duration,
    out: &std::path::Path,
    filter: &FilterArgs,
    timezone: Option<chrono_tz::Tz>,
) -> Result<ExitCode, Error> {
    let ext = out
        .extension()
        .map(|x| x.to_string_lossy().to_ascii_lowercase());
    let file = match ext.as_deref() {
        _ if is_stdout(out) => None,
        Some("html" | "htm" | "md") => Some(out.to_path_buf()),
        // Anything else names a directory, to be made if missing; what exists and is not one
        // (`report.txt`, `/dev/null`) is a mistake.
        _ if (ext.is_some() || out.exists()) && !out.is_dir() => {
            return Ok(super::usage_error(&format!(
                "--out {} is neither a directory nor a .html or .md file; pass a directory (for report.html and report.md), a .html or .md file, or - for standard output",
                out.display()
            )));
        }
        _ => {
            std::fs::create_dir_all(out).map_err(Error::io(format!(
                "cannot create the directory {}",
                out.display()
            )))?;
            Some(out.join("report.html"))
        }
    };
    let config = super::load(config)?;
    require_store(&config)?;
    let store = mde_alerts::store::Store::open_read_only(&config.store.path)?;
    let mut e = mde_alerts::config::ExportConfig::ad_hoc(ExportFormat::Report);
    e.report_window = window;
    e.timezone = timezone;
    let tenants = config.tenant_names();
    let mut sel = export::selection_for(&store, &e, &tenants)?;
    if let Err(e) = filter.apply(&mut sel, &tenants, chrono::Utc::now()) {
        return Ok(super::usage_error(&e.to_string()));
    }
    let Some(file) = file else {
        export::write_to(&store, &e, &sel, &mut std::io::stdout())?;
        return Ok(ExitCode::SUCCESS);
    };
    clean_temps_beside(&file);
    for w in export::export_file(&store, &e, &sel, &file)? {
        outln!("wrote {}", w.path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}
