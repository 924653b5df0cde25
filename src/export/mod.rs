//! Snapshot files: CSV for spreadsheets, JSON and NDJSON for scripts — never torn, never unsafe.
//!
//! # Atomicity
//!
//! Every file is written to a temp file in the *same directory*, with an explicit mode, flushed and
//! `fsync`ed, renamed over the target, and then the directory is `fsync`ed ([`atomic`]). Readers
//! see the old file or the new one, never a part. Temp files start with [`TEMP_PREFIX`] and the writer's pid;
//! those of writers no longer running are removed before each export (also in the directory of an
//! ad-hoc `--out` file).
//!
//! Only regular files are ever replaced: a symlink, directory, FIFO, socket or device at a target
//! path (`--out /dev/stdout` run as root, a stray directory named like `-latest`) is refused with
//! `ExportError::NotRegular`, before anything is written. Prune and temp cleanup skip such
//! entries. `--out -` writes to standard output instead (see [`write_to`]).
//!
//! # Files
//!
//! `DIR/NAME-YYYYMMDDTHHMMSSZ.EXT` (a `-N` suffix keeps two exports in one second apart), then
//! `DIR/NAME-latest.EXT` (a hard link to it, or a copy where links are not supported) and
//! `DIR/NAME-latest.manifest.json` with the row count and SHA-256. A `{tenant}` export writes
//! one such set per tenant, `NAME` with the tenant's name in place of `{tenant}`, each an export
//! of its own with only that tenant's rows (`sets.rs`).
//!
//! **Publishing order** (what a reader can rely on): the timestamped file is complete and synced
//! first and never changes afterwards. Then the new `-latest` file(s) *and* the new manifest are
//! staged as complete, synced temp files; only when all of them exist are they renamed into
//! place, `-latest` first and the manifest last. A full disk or any other failure therefore
//! strikes before anything is published, and leaves the previous `-latest` and manifest as a
//! matching pair. Between the two renames (microseconds) a reader may see the new `-latest` with
//! the old manifest; the manifest names the exact timestamped file it describes (`file`) and its
//! `sha256`, so a reader that must have a matching pair reads the file the manifest names.
//!
//! Retention keeps the newest `keep` timestamped files by modification time, then name, and never
//! removes a file the same run wrote (after a clock step back, a new file can have an older name).
//!
//! # Formats
//!
//! - **CSV**: UTF-8 with a BOM (`bom`) and CRLF line ends (`line_ending`), as Excel wants them; a
//!   header of API property names; nested values flattened as `table` describes; and text a
//!   spreadsheet would execute neutralised (`formula_guard`, OWASP's rule; the `csv` crate does
//!   not do this). `evidence = "separate"` adds `NAME-evidence` files, one row per evidence item.
//! - **XLSX**: the same columns with real date cells, a frozen header and an autofilter, and a
//!   second sheet of counts by severity and status (`xlsx`).
//! - **JSON / NDJSON**: each alert exactly as the API last returned it, unknown fields included;
//!   with `shape = "mde"`, every alert in the MDE API's shape (Graph alerts mapped).
//!
//! CSV, XLSX, the report, `scope = "open"` and the filters read a Graph `alerts_v2` alert in the
//! MDE API's shape (`rows`, `crate::alert::graph`): one vocabulary whichever API fed a row.
//! - **report**: the nightly HTML page and its Markdown twin (`report`).
//!
//! # Which alerts
//!
//! `scope` (`all`, `open`, `window`, `changed`) and the filters (`min_severity`, `statuses`,
//! `categories`, `tenants`) select rows; `changed` means "new or changed in the store since this
//! export last ran on its schedule (or after a poll)", which the store remembers per export name.
//! A manual `export` (`Trigger::Manual`) of a `changed` export writes that delta to a
//!
//! # Layout
//!
//! This module decides *what* to write and in which order (files, `-latest`, manifest,
//! retention); each format lives in its own module and only turns rows into bytes:
//! `csv`, `json`, `xlsx` and `report` (HTML and Markdown from templates), all fed by
//! `table` (columns and the one `Cell` type) or the report's own summaries.
//! [`atomic`] owns the file rules, [`manifest`] the manifest's typed contract, `error` the
//! one error type.

pub mod atomic;
mod csv;
mod error;
mod fingerprint;
mod json;
pub(crate) mod mail;
pub mod manifest;
mod probe;
mod report;
pub(crate) mod rows;
mod sets;
mod table;
mod xlsx;

pub use probe::{check_export_dirs, check_export_dirs_could_be_made};

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::alert::time::ApiTime;
use crate::config::{ExportConfig, ExportFormat, Scope};
use crate::store::{Selection, Store, StoreError};

use self::atomic::{buffered_hashed, hash_back, stage, stage_latest};
use self::csv::{Sheet, write_csv};
use self::error::{io_err, unwrap_io};
use self::manifest::{Manifest, ManifestFile};

pub use self::atomic::{TEMP_PREFIX, check_target, remove_stale_temps, write_atomic};
pub(crate) use self::error::ExportError;
pub use table::{DEFAULT_COLUMNS, KNOWN_COLUMNS, formula_guard as guard};

/// The mode of every file written (owner read-write, group read).
pub const FILE_MODE: u32 = 0o640;

/// Who started an export: the schedule (a `schedule`d export under `run`, or the exports that
/// follow a poll), or a person (`export`). Only the schedule consumes a `changed` export's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// `run`'s schedule.
    Scheduled,
    /// After a poll: written only when what it would hold changed since it was last written.
    AfterPoll,
    /// A manual `export`.
    Manual,
}

/// A file written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The file.
    pub path: PathBuf,
    /// Data rows (alerts).
    pub(crate) rows: u64,
    /// SHA-256 of the file, hex.
    sha256: String,
    /// Stored alerts left out because their text cannot be read (a damaged store): the file
    /// holds every other row.
    unreadable: Vec<rows::Unreadable>,
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({})",
            self.path.display(),
            crate::words::count(self.rows, "alert", "alerts")
        )
    }
}

/// The format an ad-hoc `--out` file gets from its extension: `.csv`, `.json`, `.ndjson` or
/// `.jsonl`, `.xlsx`, `.html`/`.htm`/`.md` (the report). `Err` is a usage message naming what to
/// pass instead.
pub fn format_for_path(path: &Path) -> Result<ExportFormat, String> {
    const FIX: &str = "pass --format csv|json|ndjson|xlsx|report, or name the file .csv, .json, .ndjson/.jsonl, .xlsx, or .html/.md for the report";
    if path.as_os_str() == "-" {
        return Err(format!(
            "--out - (standard output) has no extension to take the format from; {FIX}"
        ));
    }
    let ext = path
        .extension()
        .map(|x| x.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("csv") => Ok(ExportFormat::Csv),
        Some("json") => Ok(ExportFormat::Json),
        Some("ndjson" | "jsonl") => Ok(ExportFormat::Ndjson),
        Some("xlsx") => Ok(ExportFormat::Xlsx),
        Some("html" | "htm" | "md") => Ok(ExportFormat::Report),
        Some(other) => Err(format!(
            "cannot tell the format of --out {} from its extension .{other}; {FIX}",
            path.display()
        )),
        None => Err(format!(
            "cannot tell the format of --out {}: it has no extension; {FIX}",
            path.display()
        )),
    }
}

/// What to select for export `e` now, from the rows of the `configured` tenants only. Rows of a
/// tenant that is in the store but not in the config (renamed or removed) are left out, and a
/// warning says so.
pub fn selection_for(
    store: &Store,
    e: &ExportConfig,
    configured: &[String],
) -> Result<Selection, StoreError> {
    warn_unconfigured(store, e, configured)?;
    selection(store, e, configured)
}

/// Warns when the store holds rows of tenants that are not configured (they are left out).
fn warn_unconfigured(
    store: &Store,
    e: &ExportConfig,
    configured: &[String],
) -> Result<(), StoreError> {
    let names: Vec<&str> = configured.iter().map(String::as_str).collect();
    let stray = store.unconfigured_tenants(&names)?;
    if !stray.is_empty() {
        tracing::warn!(
            export = %e.name,
            tenants = %stray.join(", "),
            "The store holds alerts of tenants that are not in the config; they are left out of this file. Put them back in the config to export them."
        );
    }
    Ok(())
}

/// [`selection_for`] without the warning (said once per run, not once per tenant's set).
fn selection(
    store: &Store,
    e: &ExportConfig,
    configured: &[String],
) -> Result<Selection, StoreError> {
    let mut sel = Selection {
        filter: e.filter.clone(),
        configured: configured.to_vec(),
        ..Selection::default()
    };
    match e.scope {
        Scope::All => {}
        Scope::Open => sel.open_only = true,
        Scope::Window(d) => sel.updated_since = Some(ApiTime::now().minus(d)),
        Scope::Changed => {
            sel.changed_after_rev = Some(store.export_last_rev(&e.name)?.unwrap_or(0))
        }
    }
    Ok(sel)
}

/// The files [`export_file`] writes for `path`: `path` itself, then the evidence file or the
/// report's Markdown twin.
fn planned_files(e: &ExportConfig, path: &Path) -> Vec<PathBuf> {
    let mut v = vec![path.to_path_buf()];
    if e.format == ExportFormat::Report && !is_markdown(path) {
        v.push(path.with_extension("md"));
    } else if e.evidence_separate && e.format != ExportFormat::Report {
        v.push(evidence_path(path));
    }
    v
}

fn is_markdown(path: &Path) -> bool {
    path.extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("md"))
}

/// Writes the alerts `sel` picks as export `e`'s main file to `path`, atomically (and, for a
/// report, its Markdown twin beside it, unless `path` is itself `.md`). No `-latest`, no
/// manifest: see [`run_export`]. Every target is checked before anything is written.
///
/// A stored alert that cannot be read costs that alert: the files hold every other one, and the
/// result is then `ExportError::Unreadable` naming it (the store is marked damaged).
pub fn export_file(
    store: &Store,
    e: &ExportConfig,
    sel: &Selection,
    path: &Path,
) -> Result<Vec<Written>, ExportError> {
    let written = write_files(store, e, sel, path)?;
    if let Some(err) = unreadable_error(store, &written) {
        return Err(err);
    }
    Ok(written)
}

/// The error for the rows `written` left out, if any; marks the store damaged for `status`.
fn unreadable_error(store: &Store, written: &[Written]) -> Option<ExportError> {
    let w = written.iter().find(|w| !w.unreadable.is_empty())?;
    let names: Vec<String> = w.unreadable.iter().map(ToString::to_string).collect();
    for u in &w.unreadable {
        tracing::error!(file = %w.path.display(), alert = %u, why = %u.why, "A stored alert cannot be read (the store is corrupt); the file was written without it.");
    }
    let what = format!(
        "an export could not read {}",
        names
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Err(err) = crate::store::check::mark_corrupt(store.path(), &what) {
        tracing::warn!(error = %err, "Cannot leave the damage mark beside the store; `status` will not show it.");
    }
    Some(ExportError::Unreadable {
        path: w.path.clone(),
        count: w.unreadable.len(),
        rows: names.into_iter().take(20).collect(),
    })
}

/// [`export_file`], returning the files even when rows were left out (each [`Written`] says
/// which), so that a configured export can publish them with a manifest that says so.
fn write_files(
    store: &Store,
    e: &ExportConfig,
    sel: &Selection,
    path: &Path,
) -> Result<Vec<Written>, ExportError> {
    for p in planned_files(e, path) {
        check_target(&p).map_err(io_err(&p))?;
    }
    if e.format == ExportFormat::Report {
        return write_report(store, e, sel, path);
    }
    let (written, unreadable) = rows::collecting(|| {
        write_atomic(path, e.file_mode, |file| write_main(store, e, sel, file))
    });
    let (rows, sha256) = written.map_err(|err| unwrap_io(path, err))?;
    let mut out = vec![Written {
        path: path.to_path_buf(),
        rows,
        sha256,
        unreadable,
    }];
    if e.evidence_separate {
        let ev_path = evidence_path(path);
        let (written, unreadable) = rows::collecting(|| {
            write_atomic(&ev_path, e.file_mode, |file| {
                buffered_hashed(file, |w| write_csv(store, e, sel, w, Sheet::Evidence))
            })
        });
        let (rows, sha256) = written.map_err(|err| unwrap_io(&ev_path, err))?;
        out.push(Written {
            path: ev_path,
            rows,
            sha256,
            unreadable,
        });
    }
    Ok(out)
}

/// The main file of a CSV, JSON, NDJSON or XLSX export into `file`: rows and SHA-256.
fn write_main(
    store: &Store,
    e: &ExportConfig,
    sel: &Selection,
    file: &mut File,
) -> io::Result<(u64, String)> {
    match e.format {
        ExportFormat::Xlsx => {
            let rows = xlsx::export_xlsx(store, e, sel, file)?;
            Ok((rows, hash_back(file)?))
        }
        _ => buffered_hashed(file, |w| write_stream(store, e, sel, w)),
    }
}

/// CSV, JSON or NDJSON into any writer (a file, or standard output).
fn write_stream(
    store: &Store,
    e: &ExportConfig,
    sel: &Selection,
    w: &mut (dyn Write + Send),
) -> io::Result<u64> {
    match e.format {
        ExportFormat::Json => json::write_json(store, sel, e.shape, w),
        ExportFormat::Ndjson => json::write_ndjson(store, sel, e.shape, w),
        _ => write_csv(store, e, sel, w, Sheet::Alerts),
    }
}

/// How a write to standard output ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streamed {
    /// Every row was written.
    Complete(u64),
    /// The reader closed the pipe first (`| head`): a normal end, not an error.
    ReaderClosed,
}

/// Writes export `e`'s main content to `w` (`--out -`): CSV, JSON and NDJSON stream row by row;
/// XLSX is built in an unnamed temp file first (a zip needs its end to write its directory); a
/// report is its HTML page. A closed pipe (EPIPE) ends it as [`Streamed::ReaderClosed`].
pub fn write_to(
    store: &Store,
    e: &ExportConfig,
    sel: &Selection,
    w: &mut (dyn Write + Send),
) -> Result<Streamed, ExportError> {
    let stdout = Path::new("(standard output)");
    let (result, unreadable) = rows::collecting(|| -> io::Result<u64> {
        let mut buf = BufWriter::with_capacity(1 << 16, w);
        let n = match e.format {
            ExportFormat::Xlsx => {
                let mut tmp = tempfile::tempfile()?;
                let n = xlsx::export_xlsx(store, e, sel, &mut tmp)?;
                io::Seek::rewind(&mut tmp)?;
                io::copy(&mut tmp, &mut buf)?;
                n
            }
            ExportFormat::Report => {
                let (report, n) = report::from_store(store, e, sel)?;
                buf.write_all(report.html.as_bytes())?;
                n
            }
            _ => write_stream(store, e, sel, &mut buf)?,
        };
        buf.flush()?;
        Ok(n)
    });
    match result {
        Ok(n) => {
            let written = [Written {
                path: stdout.to_path_buf(),
                rows: n,
                sha256: String::new(),
                unreadable,
            }];
            match unreadable_error(store, &written) {
                Some(err) => Err(err),
                None => Ok(Streamed::Complete(n)),
            }
        }
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(Streamed::ReaderClosed),
        Err(err) => Err(unwrap_io(stdout, err)),
    }
}

/// `DIR/NAME-STAMP.csv` → `DIR/NAME-evidence-STAMP.csv` (and `-latest` likewise).
fn evidence_path(main: &Path) -> PathBuf {
    let file = main
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = main
        .file_stem()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match stem.rsplit_once('-') {
        Some((head, tail))
            if tail == "latest" || tail.starts_with(|c: char| c.is_ascii_digit()) =>
        {
            // NAME-latest, NAME-STAMP or NAME-STAMP-N: insert after the export name.
            let (name, rest) = split_stamp(&stem).unwrap_or((head.to_owned(), tail.to_owned()));
            format!("{name}-evidence-{rest}.csv")
        }
        _ => format!("{stem}-evidence.csv"),
    };
    let _ = file;
    main.with_file_name(name)
}

/// Splits `NAME-latest` / `NAME-YYYYMMDDTHHMMSSZ[-N]` into the name and the rest.
fn split_stamp(stem: &str) -> Option<(String, String)> {
    if let Some(name) = stem.strip_suffix("-latest") {
        return Some((name.to_owned(), "latest".into()));
    }
    let bytes = stem.as_bytes();
    (0..bytes.len()).rev().find_map(|i| {
        let rest = &stem[i..];
        let ok = rest.len() >= 17
            && rest.starts_with('-')
            && rest.as_bytes().get(9) == Some(&b'T')
            && rest.as_bytes().get(16) == Some(&b'Z');
        ok.then(|| (stem[..i].to_owned(), rest[1..].to_owned()))
    })
}

/// The report: HTML at `path` and Markdown beside it (`.md`); only Markdown when `path` is `.md`.
fn write_report(
    store: &Store,
    e: &ExportConfig,
    sel: &Selection,
    path: &Path,
) -> Result<Vec<Written>, ExportError> {
    let (report, unreadable) = rows::collecting(|| report::from_store(store, e, sel));
    let (report, rows) = report.map_err(io_err(path))?;
    let md_path = path.with_extension("md");
    let files: Vec<(&Path, &String)> = if is_markdown(path) {
        vec![(path, &report.markdown)]
    } else {
        vec![(path, &report.html), (md_path.as_path(), &report.markdown)]
    };
    let mut out = Vec::new();
    for (p, body) in files {
        let sha256 = write_atomic(p, e.file_mode, |file| {
            buffered_hashed(file, |w| w.write_all(body.as_bytes())).map(|((), h)| h)
        })
        .map_err(io_err(p))?;
        out.push(Written {
            path: p.to_path_buf(),
            rows,
            sha256,
            unreadable: unreadable.clone(),
        });
    }
    Ok(out)
}

/// Runs the exports without a `schedule`: they follow every successful poll (scheduled ones
/// belong to `run`). After the poll of one tenant (`polled`, the service's case), a `{tenant}`
/// export writes that tenant's set alone: the others' alerts did not change, and rewriting
/// every customer's files after each poll would make a poll's cost grow with the tenants.
pub(crate) fn run_after_poll(
    store: &Store,
    exports: &[ExportConfig],
    tenants: &[String],
    polled: Option<&str>,
) -> Result<Vec<Written>, ExportError> {
    let mut all = Vec::new();
    let mut corrupt = None;
    for e in exports.iter().filter(|e| e.schedule.is_none()) {
        match run_sets(store, e, tenants, Trigger::AfterPoll, polled) {
            Ok(written) => all.extend(written),
            // A damaged row cost that row in this export's files; the other exports are still
            // written (each leaves out the same rows), and the run fails once at the end.
            Err(err @ ExportError::Unreadable { .. }) => {
                tracing::error!(export = %e.name, error = %err, fix = err.hint().as_deref(), "Written without the alerts the store cannot read.");
                corrupt.get_or_insert(err);
            }
            Err(err) => return Err(err),
        }
    }
    match corrupt {
        Some(err) => Err(err),
        None => Ok(all),
    }
}

/// Runs one configured export on its schedule (or after a poll): `run_export_as` with
/// `Trigger::Scheduled`.
pub fn run_export(
    store: &Store,
    e: &ExportConfig,
    tenants: &[String],
) -> Result<Vec<Written>, ExportError> {
    run_export_as(store, e, tenants, Trigger::Scheduled)
}

// A failure injected at the manifest, for the test of the publishing order.
#[cfg(test)]
thread_local! {
    static FAIL_MANIFEST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs one configured export: timestamped files, `-latest`, manifest, retention, and for scope
/// `changed` the new starting point. `tenants` are the configured tenants (whose rows may be
/// exported, and whose cursors the manifest records). A [`Trigger::Manual`] run of a `changed`
/// export writes only the timestamped file(s): the delta since the last scheduled run, which it
/// leaves in place (module docs).
///
/// A `{tenant}` export ([`ExportConfig::per_tenant`]) writes one such set per tenant it covers,
/// each under its own name with only that tenant's rows, manifest cursor and `changed` starting
/// point (`sets`). One tenant's failure does not stop the others' sets; the run then fails
/// with [`ExportError::Sets`].
pub(crate) fn run_export_as(
    store: &Store,
    e: &ExportConfig,
    tenants: &[String],
    trigger: Trigger,
) -> Result<Vec<Written>, ExportError> {
    run_sets(store, e, tenants, trigger, None)
}

/// [`run_export_as`], writing only `only`'s set of a `{tenant}` export when given.
fn run_sets(
    store: &Store,
    e: &ExportConfig,
    tenants: &[String],
    trigger: Trigger,
    only: Option<&str>,
) -> Result<Vec<Written>, ExportError> {
    let dir = &e.dir;
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    remove_stale_temps(dir)?;
    warn_unconfigured(store, e, tenants)?;
    // Read once for every set's retention (see `Listing`).
    let mut listing = atomic::Listing::read(dir)?;
    if !e.per_tenant {
        return run_set(store, e, None, tenants, trigger, &mut listing);
    }
    let mut all = Vec::new();
    let mut failed = Vec::new();
    let sets = sets::expand(e, tenants).filter(|set| {
        let tenant = match set {
            Ok((t, _)) | Err((t, _)) => t,
        };
        only.is_none_or(|o| o == tenant)
    });
    for set in sets {
        let result = set.and_then(|(tenant, set)| {
            run_set(store, &set, Some(&tenant), tenants, trigger, &mut listing)
                .map_err(|err| (tenant, err))
        });
        match result {
            Ok(written) => all.extend(written),
            Err((tenant, err)) => {
                tracing::error!(export = %e.name, tenant = %tenant, error = %err, fix = err.hint().as_deref(), "This tenant's file set failed; its previous files are kept, the other tenants' sets are written.");
                failed.push((tenant, err));
            }
        }
    }
    if failed.is_empty() {
        return Ok(all);
    }
    let tenants = failed.iter().map(|(t, _)| t.clone()).collect();
    let first = Box::new(failed.swap_remove(0).1);
    Err(ExportError::Sets {
        export: e.name.clone(),
        tenants,
        first,
    })
}

/// One file set of export `e` (for `tenant`'s set, `e` is already that set: its name, its
/// filter): see [`run_export_as`].
fn run_set(
    store: &Store,
    e: &ExportConfig,
    tenant: Option<&str>,
    configured: &[String],
    trigger: Trigger,
    listing: &mut atomic::Listing,
) -> Result<Vec<Written>, ExportError> {
    let dir = &e.dir;
    let publish = !(e.scope == Scope::Changed && trigger == Trigger::Manual);
    let covers: Vec<&str> = e.tenants_of(configured).collect();
    let from = fingerprint::of(store, e, &covers)?;
    if trigger == Trigger::AfterPoll
        && store.export_written_from(&e.name)?.as_deref() == Some(from.as_str())
        && dir
            .join(format!("{}-latest.manifest.json", e.name))
            .is_file()
    {
        tracing::debug!(export = %e.name, "Nothing this export holds changed since it was written; not written again.");
        return Ok(Vec::new());
    }
    // Revisions stored from here on belong to the next "changed" file (read first: a revision
    // committed during this export may land in both files, never in neither).
    let covered = store.max_rev()?;
    let sel = selection(store, e, configured)?;
    let ext = e.format.extension();
    let generated = chrono::Utc::now();
    let stamp = generated.format("%Y%m%dT%H%M%SZ").to_string();
    // Unique even when two exports land in the same second, or the clock stepped back onto an
    // older name: any entry at a name (a file, a stray directory, a dangling link) skips it.
    let taken = |p: &Path| fs::symlink_metadata(p).is_ok();
    let mut n = 0u32;
    let target = loop {
        let stem = if n == 0 {
            format!("{}-{stamp}", e.name)
        } else {
            format!("{}-{stamp}-{n}", e.name)
        };
        let candidate = dir.join(format!("{stem}.{ext}"));
        if !planned_files(e, &candidate).iter().any(|p| taken(p)) {
            break candidate;
        }
        n = n.saturating_add(1);
    };
    let manifest_path = dir.join(format!("{}-latest.manifest.json", e.name));
    // Refuse what cannot be replaced before writing anything.
    if publish {
        for p in planned_files(e, &target) {
            let l = latest_path(&p, &e.name);
            check_target(&l).map_err(io_err(&l))?;
        }
        check_target(&manifest_path).map_err(io_err(&manifest_path))?;
    }
    let written = write_files(store, e, &sel, &target)?;
    let today = generated.date_naive();
    if publish {
        // The manifest's cursors: the tenants whose rows this set may hold, and no other (a
        // customer's manifest never names another customer).
        let covers: Vec<String> = covers.iter().map(|t| (*t).to_owned()).collect();
        let at = Publish {
            tenant,
            tenants: &covers,
            manifest_path: &manifest_path,
            generated,
        };
        publish_all(store, e, &written, &at)?;
    }
    for w in &written {
        if let Some((stem, ext)) = stem_and_ext(&w.path, &e.name) {
            listing.prune(&stem, &ext, e.keep, e.keep_daily, today, &w.path)?;
        }
    }
    if !publish {
        return Ok(written);
    }
    if e.scope == Scope::Changed {
        store.set_export_last_rev(&e.name, covered)?;
    }
    // Published with a manifest that says what is missing; the run still fails, so that the
    // damage is seen.
    if let Some(err) = unreadable_error(store, &written) {
        return Err(err);
    }
    // Recorded only for a complete set: after a damaged store is mended, the same revisions
    // must be written again. A `changed` file that held rows is marked: its `-latest` must be
    // followed by an empty one ("nothing new since"), so that a reader of `-latest` never takes
    // the same delta twice; after that empty file, quiet polls write nothing.
    let delta = e.scope == Scope::Changed && written.iter().any(|w| w.rows > 0);
    store.set_export_written_from(
        &e.name,
        &format!("{from}{}", if delta { " delta" } else { "" }),
    )?;
    Ok(written
        .iter()
        .map(|w| Written {
            path: latest_path(&w.path, &e.name),
            ..w.clone()
        })
        .collect())
}

/// What a set's manifest says beside its files.
struct Publish<'a> {
    /// The tenant of a `{tenant}` export's set.
    tenant: Option<&'a str>,
    /// The tenants whose cursors it records.
    tenants: &'a [String],
    manifest_path: &'a Path,
    generated: chrono::DateTime<chrono::Utc>,
}

/// Stages every `-latest` file and the manifest, then renames them into place (`-latest` first,
/// the manifest last) and syncs the directory once: see "Publishing order" in the module docs.
fn publish_all(
    store: &Store,
    e: &ExportConfig,
    written: &[Written],
    at: &Publish<'_>,
) -> Result<(), ExportError> {
    let Publish {
        tenant,
        tenants,
        manifest_path,
        generated,
    } = *at;
    let mut staged = Vec::new();
    let mut latest = Vec::new();
    for w in written {
        let l = latest_path(&w.path, &e.name);
        staged.push(stage_latest(&w.path, &l, e.file_mode).map_err(io_err(&l))?);
        latest.push(l);
    }
    let mut cursor = std::collections::BTreeMap::new();
    for t in tenants {
        cursor.insert(t.clone(), store.cursor(t)?.map(|c| c.to_api_string()));
    }
    let files = written
        .iter()
        .zip(&latest)
        .map(|(w, l)| ManifestFile {
            file: file_name(&w.path),
            latest: file_name(l),
            rows: w.rows,
            sha256: w.sha256.clone(),
        })
        .collect();
    let main = &written[0];
    let mut unreadable: Vec<String> = written
        .iter()
        .flat_map(|w| w.unreadable.iter().map(ToString::to_string))
        .collect();
    unreadable.sort();
    unreadable.dedup();
    let manifest = Manifest {
        complete: unreadable.is_empty(),
        unreadable,
        file: file_name(&main.path),
        latest: file_name(&latest[0]),
        rows: main.rows,
        sha256: main.sha256.clone(),
        generated_at: ApiTime::from_chrono(generated).to_api_string(),
        format: format!("{:?}", e.format).to_lowercase(),
        columns: matches!(e.format, ExportFormat::Csv | ExportFormat::Xlsx)
            .then(|| e.columns.clone()),
        scope: e.scope.to_string(),
        shape: Some(
            match e.format {
                ExportFormat::Json | ExportFormat::Ndjson => e.shape,
                _ => crate::config::ExportShape::Mde,
            }
            .to_string(),
        ),
        filter: (&e.filter).into(),
        cursor,
        files,
        tenant: tenant.map(str::to_owned),
    };
    let (manifest_staged, ()) = stage(manifest_path, e.file_mode, |file| {
        #[cfg(test)]
        if FAIL_MANIFEST.get() {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        let mut w = BufWriter::new(file);
        serde_json::to_writer_pretty(&mut w, &manifest)?;
        w.write_all(b"\n")?;
        w.flush()
    })
    .map_err(io_err(manifest_path))?;
    staged.push(manifest_staged);
    atomic::publish_in_order(staged, &e.dir)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `DIR/NAME[-evidence]-STAMP[-N].EXT` → `DIR/NAME[-evidence]-latest.EXT`.
fn latest_path(written: &Path, name: &str) -> PathBuf {
    match stem_and_ext(written, name) {
        Some((stem, ext)) => written.with_file_name(format!("{stem}-latest.{ext}")),
        None => written.to_path_buf(),
    }
}

/// The file-name stem before the timestamp (`NAME` or `NAME-evidence`) and the extension.
fn stem_and_ext(written: &Path, name: &str) -> Option<(String, String)> {
    let f = file_name(written);
    let (base, ext) = f.rsplit_once('.')?;
    let (stem, _) = split_stamp(base)?;
    (stem == name || stem == format!("{name}-evidence")).then(|| (stem, ext.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::atomic::hex;
    use sha2::{Digest, Sha256};

    fn csv_export(dir: &Path) -> ExportConfig {
        ExportConfig {
            name: "a".into(),
            dir: dir.to_path_buf(),
            ..ExportConfig::ad_hoc(ExportFormat::Csv)
        }
    }

    fn store_with(dir: &Path, ids: &[&str]) -> Store {
        let mut store = Store::open(&dir.join("s.db")).unwrap();
        let mut w = store.writer().unwrap();
        for id in ids {
            let a = crate::alert::Alert::parse(&format!(
                r#"{{"id":"{id}","lastUpdateTime":"2026-01-01T00:00:00Z","severity":"High","status":"New"}}"#
            ))
            .unwrap();
            w.upsert("t", &a).unwrap();
        }
        w.commit(None, 0).unwrap();
        store
    }

    /// A full disk at the manifest must not leave `-latest` replaced and the manifest describing
    /// the previous file: nothing is published.
    #[test]
    fn a_failure_at_the_manifest_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let store = store_with(dir.path(), &["a1"]);
        let e = csv_export(&out);
        run_export(&store, &e, &[]).unwrap();
        let latest = out.join("a-latest.csv");
        let manifest_path = out.join("a-latest.manifest.json");
        let before = (
            fs::read(&latest).unwrap(),
            fs::read(&manifest_path).unwrap(),
        );
        drop(store);
        let store = store_with(dir.path(), &["a2", "a3"]);
        FAIL_MANIFEST.set(true);
        let err = run_export(&store, &e, &[]);
        FAIL_MANIFEST.set(false);
        let err = err.unwrap_err().to_string();
        assert!(err.contains("a-latest.manifest.json"), "{err}");
        let after = (
            fs::read(&latest).unwrap(),
            fs::read(&manifest_path).unwrap(),
        );
        assert_eq!(before, after, "-latest and the manifest are the old pair");
        let m: serde_json::Value = serde_json::from_slice(&after.1).unwrap();
        assert_eq!(m["sha256"], hex(&Sha256::digest(&after.0)));
        let temps = fs::read_dir(&out)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(TEMP_PREFIX)
            })
            .count();
        assert_eq!(temps, 0, "staged files are removed");
        run_export(&store, &e, &[]).unwrap();
        let m: serde_json::Value =
            serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
        assert_eq!(m["rows"], 3);
        assert_eq!(
            m["sha256"],
            hex(&Sha256::digest(fs::read(&latest).unwrap()))
        );
    }

    #[test]
    fn formats_follow_extensions() {
        for (p, f) in [
            ("a.csv", ExportFormat::Csv),
            ("a.JSON", ExportFormat::Json),
            ("a.jsonl", ExportFormat::Ndjson),
            ("a.ndjson", ExportFormat::Ndjson),
            ("a.xlsx", ExportFormat::Xlsx),
            ("a.html", ExportFormat::Report),
            ("a.md", ExportFormat::Report),
        ] {
            assert_eq!(format_for_path(Path::new(p)), Ok(f), "{p}");
        }
        for p in ["a.txt", "a", "-"] {
            let e = format_for_path(Path::new(p)).unwrap_err();
            assert!(e.contains("--format"), "{e}");
        }
    }
}

#[cfg(test)]
mod naming_tests {
    use super::*;

    #[test]
    fn evidence_and_latest_names() {
        let p = Path::new("/x/alerts-20261126T120000Z.csv");
        assert_eq!(
            evidence_path(p),
            Path::new("/x/alerts-evidence-20261126T120000Z.csv")
        );
        let p2 = Path::new("/x/alerts-20261126T120000Z-2.csv");
        assert_eq!(
            evidence_path(p2),
            Path::new("/x/alerts-evidence-20261126T120000Z-2.csv")
        );
        assert_eq!(latest_path(p, "alerts"), Path::new("/x/alerts-latest.csv"));
        assert_eq!(
            latest_path(&evidence_path(p2), "alerts"),
            Path::new("/x/alerts-evidence-latest.csv")
        );
        assert_eq!(
            latest_path(Path::new("/x/my-report-20261126T120000Z.md"), "my-report"),
            Path::new("/x/my-report-latest.md")
        );
    }
}
