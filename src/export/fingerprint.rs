//! What a file set is written from, so that an export that follows every poll writes nothing
//! while nothing it would hold changed: at a thousand tenants polled every five minutes, a file
//! rewritten after every quiet poll was gigabytes a day and pushed yesterday's snapshots out of
//! `keep`. The fingerprint covers everything the file's bytes depend on apart from the clock of
//! writing: the settings, the tenants covered, the newest revision among them (a new or changed
//! alert is a new revision), and, for a time-relative export, the instant that bounds it (the
//! oldest alert still inside a `scope = "7d"` window; the day, for a report's ages).

use crate::alert::time::ApiTime;
use crate::config::{ExportConfig, ExportFormat, Scope};
use crate::store::{Store, StoreError};

/// The fingerprint of `e` over `tenants`, as of now.
pub(super) fn of(store: &Store, e: &ExportConfig, tenants: &[&str]) -> Result<String, StoreError> {
    let since = match e.scope {
        Scope::Window(d) => Some(ApiTime::now().minus(d)),
        _ => None,
    };
    let (rev, oldest) = store.newest_rev_of(tenants, since)?;
    let day = if e.format == ExportFormat::Report {
        chrono::Utc::now().format("%Y-%m-%d").to_string()
    } else {
        String::new()
    };
    let settings = format!(
        "{:?}|{:?}|{:?}|{:?}|{}|{}|{}|{}|{:?}|{:?}|{}",
        e.format,
        e.scope,
        e.filter,
        e.columns,
        e.evidence_separate,
        e.bom,
        e.crlf,
        e.formula_guard,
        e.shape,
        e.report_window,
        e.file_mode,
    );
    let mut h = blake3::Hasher::new();
    h.update(settings.as_bytes());
    for t in tenants {
        h.update(b"\0");
        h.update(t.as_bytes());
    }
    Ok(format!(
        "v1 {} rev {rev} oldest {} day {day}",
        &h.finalize().to_hex()[..16],
        oldest.map_or_else(|| "-".to_owned(), |o| o.to_string())
    ))
}
