//! Snapshot files: CSV for spreadsheets, JSON and NDJSON for scripts — never torn, never unsafe.
//!
//! # Atomicity
//!
//! Every file is written to a temp file in the *same directory* (rename only works within one file
//! system, and systemd's `PrivateTmp=` gives the service another `/tmp`), with an explicit mode,
//! flushed and `fsync`ed, renamed over the target, and then the directory is `fsync`ed so the
//! rename itself survives a power cut (tempfile's `persist` does neither sync). Readers see the old
//! file or the new one, never a part. Temp files left by a crash start with [`TEMP_PREFIX`] and are
//! removed before each export.
//!
//! # Files
//!
//! `DIR/NAME-YYYYMMDDTHHMMSSZ.EXT` (a `-N` suffix keeps two exports in one second apart), then
//! `DIR/NAME-latest.EXT` (a hard link to it swapped in by rename, or a copy where links are not
//! supported), then `DIR/NAME-latest.manifest.json` with the row count and SHA-256; the manifest
//! is written last, so a reader that trusts it never sees a file it does not describe.
//!
//! # Formats
//!
//! - **CSV**: UTF-8 with a BOM (`bom`) and CRLF line ends (`line_ending`), as Excel wants them; a
//!   header of API property names; nested values flattened as [`table`] describes; and text a
//!   spreadsheet would execute neutralised (`formula_guard`, OWASP's rule; the `csv` crate does
//!   not do this). `evidence = "separate"` adds `NAME-evidence` files, one row per evidence item.
//! - **XLSX**: the same columns with real date cells, a frozen header and an autofilter, and a
//!   second sheet of counts by severity and status ([`crate::xlsx`]).
//! - **JSON / NDJSON**: each alert exactly as the API last returned it, unknown fields included.
//! - **report**: the nightly HTML page and its Markdown twin ([`crate::report`]).
//!
//! # Which alerts
//!
//! `scope` (`all`, `open`, `window`, `changed`) and the filters (`min_severity`, `statuses`,
//! `categories`, `tenants`) select rows; `changed` means "new or changed in the store since this
//! export last completed", which the store remembers per export name.

pub mod table;

use std::borrow::Cow;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::{ExportConfig, ExportFormat, Scope};
use crate::store::{ForEachError, Selection, Store, StoreError};
use crate::time::ApiTime;

/// Temp files start with this; anything with it in an export directory is a leftover.
pub const TEMP_PREFIX: &str = ".mde-alerts-tmp-";
/// The mode of every file written (owner read-write, group read).
pub const FILE_MODE: u32 = 0o640;
/// Timestamped files kept per export; older ones are removed.
pub const KEEP: usize = 10;

pub use table::{DEFAULT_COLUMNS, KNOWN_COLUMNS, formula_guard as guard};

/// Why an export failed. The previous `-latest` files are untouched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing a file failed.
    #[error(
        "cannot write {path}: {source}\n  fix: check that the directory exists, is writable by this user, and has free space"
    )]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A file written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The file.
    pub path: PathBuf,
    /// Data rows (alerts).
    pub rows: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} alerts)", self.path.display(), self.rows)
    }
}

/// Writes `path` atomically: temp file in the same directory, `mode`, fsync, rename, fsync dir.
/// `write` gets the temp file itself (buffer it, or seek in it, as the format needs).
pub fn write_atomic<T>(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut File) -> io::Result<T>,
) -> io::Result<T> {
    let dir = parent(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix())
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    let out = write(tmp.as_file_mut())?;
    // The umask may have narrowed the mode given at creation.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)?;
    Ok(out)
}

/// Runs `write` through a buffer and a SHA-256, returning its result and the digest.
fn buffered_hashed<T>(
    file: &mut File,
    write: impl FnOnce(&mut dyn Write) -> io::Result<T>,
) -> io::Result<(T, String)> {
    let mut buf = BufWriter::with_capacity(1 << 20, file);
    let mut h = Hashing {
        inner: &mut buf,
        hash: Sha256::new(),
    };
    let out = write(&mut h)?;
    let digest = hex(&h.hash.finalize());
    buf.flush()?;
    Ok((out, digest))
}

/// SHA-256 of a file already written (formats that seek, like XLSX).
fn hash_back(file: &mut File) -> io::Result<String> {
    use std::io::{Read, Seek};
    file.flush()?;
    file.rewind()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// This process's temp-file prefix: `.mde-alerts-tmp-PID-`, so that a cleanup can tell a crashed
/// writer's leftovers from another live writer's work in progress.
fn temp_prefix() -> String {
    format!("{TEMP_PREFIX}{}-", std::process::id())
}

/// Removes temp files that a writer which is no longer running left in `dir`.
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid
            .is_some_and(|p| p != std::process::id() && Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            fs::remove_file(entry.path())?;
            n += 1;
        }
    }
    Ok(n)
}

/// A writer that hashes what passes through it.
struct Hashing<'a> {
    inner: &'a mut dyn Write,
    hash: Sha256,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What to select for export `e` now.
pub fn selection_for(store: &Store, e: &ExportConfig) -> Result<Selection, StoreError> {
    let mut sel = Selection {
        filter: e.filter.clone(),
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

fn store_io(e: ForEachError) -> io::Error {
    match e {
        ForEachError::Io(e) => e,
        ForEachError::Store(s) => io::Error::other(s),
    }
}

fn json_io(e: serde_json::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("a stored alert cannot be read: {e}"),
    )
}

/// Turns an io::Error that carries a store error back into it.
fn unwrap_io(path: &Path, e: io::Error) -> ExportError {
    match e.downcast::<StoreError>() {
        Ok(s) => ExportError::Store(s),
        Err(e) => ExportError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// Writes the alerts `sel` picks as export `e`'s main file to `path`, atomically (and, for a
/// report, its Markdown twin beside it). No `-latest`, no manifest: see [`run_export`].
pub fn export_file(
    store: &Store,
    e: &ExportConfig,
    sel: &Selection,
    path: &Path,
) -> Result<Vec<Written>, ExportError> {
    if e.format == ExportFormat::Report {
        return write_report(store, e, sel, path);
    }
    let (rows, sha256) = write_atomic(path, e.file_mode, |file| match e.format {
        ExportFormat::Json => buffered_hashed(file, |w| {
            w.write_all(b"[")?;
            let mut first = true;
            let n = store
                .for_each_row(sel, |r| {
                    w.write_all(if first { b"\n" } else { b",\n" })?;
                    first = false;
                    w.write_all(r.raw.as_bytes())
                })
                .map_err(store_io)?;
            w.write_all(b"\n]\n")?;
            Ok(n)
        }),
        ExportFormat::Ndjson => buffered_hashed(file, |w| {
            store
                .for_each_row(sel, |r| {
                    w.write_all(one_line(r.raw).as_bytes())?;
                    w.write_all(b"\n")
                })
                .map_err(store_io)
        }),
        ExportFormat::Csv => buffered_hashed(file, |w| write_csv(store, e, sel, w, Sheet::Alerts)),
        ExportFormat::Xlsx => {
            let rows = write_xlsx(store, e, sel, file)?;
            Ok((rows, hash_back(file)?))
        }
        ExportFormat::Report => unreachable!("handled above"),
    })
    .map_err(|err| unwrap_io(path, err))?;
    let mut out = vec![Written {
        path: path.to_path_buf(),
        rows,
        sha256,
    }];
    if e.evidence_separate {
        let ev_path = evidence_path(path);
        let (rows, sha256) = write_atomic(&ev_path, e.file_mode, |file| {
            buffered_hashed(file, |w| write_csv(store, e, sel, w, Sheet::Evidence))
        })
        .map_err(|err| unwrap_io(&ev_path, err))?;
        out.push(Written {
            path: ev_path,
            rows,
            sha256,
        });
    }
    Ok(out)
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

/// Which table a CSV holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sheet {
    Alerts,
    Evidence,
}

fn write_csv(
    store: &Store,
    e: &ExportConfig,
    sel: &Selection,
    w: &mut dyn Write,
    sheet: Sheet,
) -> io::Result<u64> {
    if e.bom {
        w.write_all("\u{feff}".as_bytes())?;
    }
    let mut csv = csv::WriterBuilder::new()
        .terminator(if e.crlf {
            csv::Terminator::CRLF
        } else {
            csv::Terminator::Any(b'\n')
        })
        .from_writer(w);
    let columns: Vec<&str> = e.columns.iter().map(String::as_str).collect();
    match sheet {
        Sheet::Alerts => csv.write_record(&columns).map_err(csv_io)?,
        Sheet::Evidence => csv.write_record(table::EVIDENCE_COLUMNS).map_err(csv_io)?,
    }
    let mut n = 0u64;
    store
        .for_each_row(sel, |r| {
            let rows = match sheet {
                Sheet::Alerts => {
                    vec![table::alert_row(r.tenant, r.raw, &columns).map_err(json_io)?]
                }
                Sheet::Evidence => table::evidence_rows(r.tenant, r.raw).map_err(json_io)?,
            };
            for row in rows {
                csv.write_record(row.iter().map(|c| c.csv_text(e.formula_guard).into_owned()))
                    .map_err(csv_io)?;
                n += 1;
            }
            Ok(())
        })
        .map_err(store_io)?;
    csv.flush()?;
    Ok(n)
}

fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// The alert on one line: stored JSON from a pretty-printed import may span lines.
fn one_line(raw: &str) -> Cow<'_, str> {
    if !raw.contains('\n') && !raw.contains('\r') {
        return Cow::Borrowed(raw);
    }
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(v) => Cow::Owned(v.to_string()),
        Err(_) => Cow::Owned(raw.replace(['\n', '\r'], " ")),
    }
}

/// Streams the selected alerts into an XLSX workbook: rows go to the writer on its own thread
/// through a bounded channel, so memory stays flat.
fn write_xlsx(
    store: &Store,
    e: &ExportConfig,
    sel: &Selection,
    file: &mut File,
) -> io::Result<u64> {
    use crate::xlsx::{Cell as X, Counts};
    let mut counts = Counts::new();
    store
        .for_each_row(sel, |r| {
            *counts
                .entry((
                    r.severity.unwrap_or("(none)").to_owned(),
                    r.status.unwrap_or("(none)").to_owned(),
                ))
                .or_default() += 1;
            Ok(())
        })
        .map_err(store_io)?;
    let columns: Vec<&str> = e.columns.iter().map(String::as_str).collect();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<X>>(1024);
    std::thread::scope(|scope| {
        let writer =
            scope.spawn(|| crate::xlsx::write_xlsx(&mut *file, &columns, rx.into_iter(), &counts));
        let fed = store.for_each_row(sel, |r| {
            let row = table::alert_row(r.tenant, r.raw, &columns).map_err(json_io)?;
            let cells = row
                .into_iter()
                .map(|c| match c {
                    table::Cell::Empty => X::Empty,
                    table::Cell::Text(t) => X::Text(t.into_owned()),
                    table::Cell::Number(n) => match n.parse::<f64>() {
                        Ok(f) => X::Number(f),
                        Err(_) => X::Text(n.into_owned()),
                    },
                    table::Cell::Time(t) => X::Time(t.to_chrono()),
                })
                .collect();
            tx.send(cells)
                .map_err(|_| io::Error::other("the spreadsheet writer stopped"))
        });
        drop(tx);
        let written = writer.join().expect("xlsx writer panicked");
        fed.map_err(store_io)?;
        written.map_err(|err| io::Error::other(err.to_string()))
    })
}

/// The report: HTML at `path` and Markdown beside it (`.md`).
fn write_report(
    store: &Store,
    e: &ExportConfig,
    sel: &Selection,
    path: &Path,
) -> Result<Vec<Written>, ExportError> {
    let mut alerts = Vec::new();
    store
        .for_each_row(sel, |r| {
            alerts.push(table::summary_of(r.tenant, r.raw).map_err(json_io)?);
            Ok(())
        })
        .map_err(|err| unwrap_io(path, store_io(err)))?;
    let report = crate::report::render(&crate::report::ReportInput {
        generated_at: chrono::Utc::now(),
        window: e.report_window,
        alerts: &alerts,
    });
    let md_path = path.with_extension("md");
    let mut out = Vec::new();
    for (p, body) in [(path, &report.html), (md_path.as_path(), &report.markdown)] {
        let sha256 = write_atomic(p, e.file_mode, |file| {
            buffered_hashed(file, |w| w.write_all(body.as_bytes())).map(|((), h)| h)
        })
        .map_err(io_err(p))?;
        out.push(Written {
            path: p.to_path_buf(),
            rows: alerts.len() as u64,
            sha256,
        });
    }
    Ok(out)
}

/// Runs the exports without a `schedule`: they follow every successful poll (scheduled ones
/// belong to `run`).
pub fn run_after_poll(
    store: &Store,
    exports: &[ExportConfig],
    tenants: &[String],
) -> Result<Vec<Written>, ExportError> {
    let mut all = Vec::new();
    for e in exports.iter().filter(|e| e.schedule.is_none()) {
        all.extend(run_export(store, e, tenants)?);
    }
    Ok(all)
}

/// Runs one configured export: timestamped files, `-latest`, manifest, retention, and for scope
/// `changed` the new starting point. `tenants` are the configured tenants (for the cursors in the
/// manifest).
pub fn run_export(
    store: &Store,
    e: &ExportConfig,
    tenants: &[String],
) -> Result<Vec<Written>, ExportError> {
    let dir = &e.dir;
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    remove_stale_temps(dir).map_err(io_err(dir))?;
    // Revisions stored from here on belong to the next "changed" file (read first: a revision
    // committed during this export may land in both files, never in neither).
    let covered = store.max_rev()?;
    let sel = selection_for(store, e)?;
    let ext = e.format.extension();
    let generated = chrono::Utc::now();
    let stamp = generated.format("%Y%m%dT%H%M%SZ").to_string();
    // Unique even when two exports land in the same second.
    let mut n = 0;
    let target = loop {
        let stem = if n == 0 {
            format!("{}-{stamp}", e.name)
        } else {
            format!("{}-{stamp}-{n}", e.name)
        };
        let candidate = dir.join(format!("{stem}.{ext}"));
        if !candidate.exists() && !candidate.with_extension("md").exists() {
            break candidate;
        }
        n += 1;
    };
    let written = export_file(store, e, &sel, &target)?;
    let mut latest = Vec::new();
    for w in &written {
        let l = latest_path(&w.path, &e.name);
        publish_latest(&w.path, &l, e.file_mode).map_err(io_err(&l))?;
        latest.push(Written {
            path: l,
            ..w.clone()
        });
    }
    let mut cursors = serde_json::Map::new();
    for t in tenants {
        cursors.insert(
            t.clone(),
            store.cursor(t)?.map(|c| c.to_api_string()).into(),
        );
    }
    let files: Vec<serde_json::Value> = written
        .iter()
        .zip(&latest)
        .map(|(w, l)| {
            serde_json::json!({
                "file": file_name(&w.path),
                "latest": file_name(&l.path),
                "rows": w.rows,
                "sha256": w.sha256,
            })
        })
        .collect();
    let main = &written[0];
    let manifest = serde_json::json!({
        "file": file_name(&main.path),
        "latest": file_name(&latest[0].path),
        "rows": main.rows,
        "sha256": main.sha256,
        "generated_at": ApiTime::from_chrono(generated).to_api_string(),
        "format": format!("{:?}", e.format).to_lowercase(),
        "columns": matches!(e.format, ExportFormat::Csv | ExportFormat::Xlsx).then_some(&e.columns),
        "scope": e.scope.to_string(),
        "filter": {
            "min_severity": e.filter.min_severity,
            "statuses": e.filter.statuses,
            "categories": e.filter.categories,
            "tenants": e.filter.tenants,
        },
        "cursor": cursors,
        "files": files,
    });
    let manifest_path = dir.join(format!("{}-latest.manifest.json", e.name));
    write_atomic(&manifest_path, e.file_mode, |file| {
        let mut w = BufWriter::new(file);
        serde_json::to_writer_pretty(&mut w, &manifest)?;
        w.write_all(b"\n")?;
        w.flush()
    })
    .map_err(io_err(&manifest_path))?;
    for w in &written {
        if let Some((stem, ext)) = stem_and_ext(&w.path, &e.name) {
            prune(dir, &stem, &ext, e.keep).map_err(io_err(dir))?;
        }
    }
    if e.scope == Scope::Changed {
        store.set_export_last_rev(&e.name, covered)?;
    }
    Ok(latest)
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Swaps `latest` to the content of `file`: a hard link renamed into place, or a copy.
fn publish_latest(file: &Path, latest: &Path, mode: u32) -> io::Result<()> {
    let dir = parent(latest);
    let tmp = dir.join(format!("{}latest", temp_prefix()));
    let _ = fs::remove_file(&tmp);
    match fs::hard_link(file, &tmp) {
        Ok(()) => {
            fs::rename(&tmp, latest)?;
            sync_dir(dir)
        }
        Err(_) => {
            let mut src = File::open(file)?;
            write_atomic(latest, mode, |w| io::copy(&mut src, w).map(|_| ()))
        }
    }
}

/// Keeps the newest `keep` timestamped files of an export: exactly
/// `NAME-YYYYMMDDTHHMMSSZ[-N].EXT`, so another export whose name starts like this one (`alerts`
/// and `alerts-1d`) is never touched.
fn prune(dir: &Path, name: &str, ext: &str, keep: usize) -> io::Result<()> {
    let mut files: Vec<(String, u32, String)> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter_map(|f| {
            let (stamp, n) = timestamp_of(&f, name, ext)?;
            Some((stamp, n, f))
        })
        .collect();
    // Timestamps sort as text; a -N suffix sorts after its second.
    files.sort();
    let excess = files.len().saturating_sub(keep);
    for (_, _, f) in &files[..excess] {
        fs::remove_file(dir.join(f))?;
    }
    Ok(())
}

/// `Some((stamp, n))` when `file` is `NAME-YYYYMMDDTHHMMSSZ[-N].EXT`.
fn timestamp_of(file: &str, name: &str, ext: &str) -> Option<(String, u32)> {
    let rest = file.strip_prefix(name)?.strip_prefix('-')?;
    let rest = rest.strip_suffix(ext)?.strip_suffix('.')?;
    let (stamp, n) = match rest.split_once('-') {
        Some((s, n)) => (s, n.parse::<u32>().ok()?),
        None => (rest, 0),
    };
    let b = stamp.as_bytes();
    let shape = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
    shape.then(|| (stamp.to_owned(), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.txt");
        write_atomic(&p, 0o640, |w| w.write_all(b"one")).unwrap();
        write_atomic(&p, 0o640, |w| w.write_all(b"two")).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "two");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let err = write_atomic(&p, 0o640, |w| {
            w.write_all(b"half")?;
            Err::<(), _>(io::Error::other("boom"))
        });
        assert!(err.is_err());
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "two",
            "a failed write keeps the old file"
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn only_this_exports_timestamped_files_match() {
        assert_eq!(
            timestamp_of("alerts-20261126T120000Z.csv", "alerts", "csv"),
            Some(("20261126T120000Z".into(), 0))
        );
        assert_eq!(
            timestamp_of("alerts-20261126T120000Z-2.csv", "alerts", "csv"),
            Some(("20261126T120000Z".into(), 2))
        );
        for other in [
            "alerts-latest.csv",
            "alerts-1d-latest.csv",
            "alerts-1d-20261126T120000Z.csv",
            "alerts-20261126T120000Z.json",
            "alerts-20261126T120000Z.csv.tmp",
        ] {
            assert_eq!(timestamp_of(other, "alerts", "csv"), None, "{other}");
        }
    }

    #[test]
    fn one_line_flattens_pretty_json() {
        assert_eq!(one_line("{\n \"a\": 1\n}"), r#"{"a":1}"#);
        assert_eq!(one_line(r#"{"a":1}"#), r#"{"a":1}"#);
    }
}

#[cfg(test)]
mod naming_tests {
    use super::*;

    #[test]
    fn only_dead_writers_temp_files_are_removed() {
        // Review: a cleanup must not delete another live writer's temp file.
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join(format!("{TEMP_PREFIX}1-abc")); // pid 1 is always alive
        let dead = dir.path().join(format!("{TEMP_PREFIX}4294967-abc"));
        let ours = dir.path().join(format!("{}old", temp_prefix()));
        for p in [&live, &dead, &ours] {
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 2);
        assert!(live.exists() && !dead.exists() && !ours.exists());
    }

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
