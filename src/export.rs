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
//! # CSV
//!
//! UTF-8 with a BOM (Excel needs it for non-ASCII) and CRLF line ends; a header of API property
//! names; arrays joined with `; `; objects as compact JSON; nulls empty; timestamps normalised to
//! seven fractional digits so that sorting the text sorts time; and any text cell that a
//! spreadsheet would execute (starting with `= + - @`, tab, CR, LF or their full-width forms) gets
//! a leading `'` (OWASP's rule; the `csv` crate does not do this). JSON keeps each alert exactly as
//! the API last returned it.

use std::borrow::Cow;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::config::{ExportConfig, ExportFormat};
use crate::store::{ForEachError, Store, StoreError};
use crate::time::ApiTime;

/// Temp files start with this; anything with it in an export directory is a leftover.
pub const TEMP_PREFIX: &str = ".mde-alerts-tmp-";
/// The mode of every file written (owner read-write, group read).
pub const FILE_MODE: u32 = 0o640;
/// Timestamped files kept per export; older ones are removed.
pub const KEEP: usize = 10;

/// The CSV columns, in order: the documented alert properties (evidence is in the JSON export).
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "title",
    "severity",
    "status",
    "classification",
    "determination",
    "category",
    "detectionSource",
    "threatName",
    "threatFamilyName",
    "investigationState",
    "assignedTo",
    "alertCreationTime",
    "firstEventTime",
    "lastEventTime",
    "lastUpdateTime",
    "resolvedTime",
    "incidentId",
    "investigationId",
    "machineId",
    "computerDnsName",
    "rbacGroupName",
    "aadTenantId",
    "detectorId",
    "mitreTechniques",
    "relatedUser",
    "loggedOnUsers",
    "comments",
    "description",
];

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
pub fn write_atomic<T>(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut dyn Write) -> io::Result<T>,
) -> io::Result<T> {
    let dir = parent(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(dir)?;
    let out = {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        let out = write(&mut w)?;
        w.flush()?;
        out
    };
    // The umask may have narrowed the mode given at creation.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)?;
    Ok(out)
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes temp files a crash left in `dir`.
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
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

/// Writes one file of `format` from the store to `path`, atomically.
pub fn export_file(
    store: &Store,
    format: ExportFormat,
    path: &Path,
) -> Result<Written, ExportError> {
    let result = write_atomic(path, FILE_MODE, |w| {
        let mut h = Hashing {
            inner: w,
            hash: Sha256::new(),
        };
        let rows = write_format(store, format, &mut h)?;
        Ok((rows, hex(&h.hash.finalize())))
    });
    let (rows, sha256) = match result {
        Ok(v) => v,
        Err(e) => {
            // A store failure travels inside io::Error; give it back its own type.
            return Err(match e.downcast::<StoreError>() {
                Ok(s) => ExportError::Store(s),
                Err(e) => ExportError::Io {
                    path: path.to_path_buf(),
                    source: e,
                },
            });
        }
    };
    Ok(Written {
        path: path.to_path_buf(),
        rows,
        sha256,
    })
}

fn store_io(e: ForEachError) -> io::Error {
    match e {
        ForEachError::Io(e) => e,
        ForEachError::Store(s) => io::Error::other(s),
    }
}

fn write_format(store: &Store, format: ExportFormat, w: &mut dyn Write) -> io::Result<u64> {
    match format {
        ExportFormat::Json => {
            w.write_all(b"[")?;
            let mut first = true;
            let n = store
                .for_each_alert(|_, raw| {
                    w.write_all(if first { b"\n" } else { b",\n" })?;
                    first = false;
                    w.write_all(raw.as_bytes())
                })
                .map_err(store_io)?;
            w.write_all(b"\n]\n")?;
            Ok(n)
        }
        ExportFormat::Ndjson => store
            .for_each_alert(|_, raw| {
                w.write_all(one_line(raw).as_bytes())?;
                w.write_all(b"\n")
            })
            .map_err(store_io),
        ExportFormat::Csv => {
            w.write_all("\u{feff}".as_bytes())?;
            let mut csv = csv::WriterBuilder::new()
                .terminator(csv::Terminator::CRLF)
                .from_writer(w);
            csv.write_record(CSV_COLUMNS).map_err(csv_io)?;
            let n = store
                .for_each_alert(|_, raw| {
                    let mut cells: Vec<Cow<'_, str>> = Vec::with_capacity(CSV_COLUMNS.len());
                    csv_row(raw, &mut cells)?;
                    csv.write_record(cells.iter().map(|c| c.as_bytes()))
                        .map_err(csv_io)
                })
                .map_err(store_io)?;
            csv.flush()?;
            Ok(n)
        }
    }
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

/// Picks the CSV columns out of one alert without building the whole JSON tree (evidence, the
/// bulk of an alert, is skipped unparsed).
struct Columns<'a>([Option<&'a RawValue>; CSV_COLUMNS.len()]);

impl<'de> serde::Deserialize<'de> for Columns<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Columns<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an alert object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut m: M) -> Result<Columns<'de>, M::Error> {
                let mut out = [None; CSV_COLUMNS.len()];
                while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                    match CSV_COLUMNS.iter().position(|c| *c == k) {
                        Some(i) => out[i] = Some(m.next_value::<&'de RawValue>()?),
                        None => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Columns(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn csv_row<'a>(raw: &'a str, cells: &mut Vec<Cow<'a, str>>) -> io::Result<()> {
    let cols: Columns<'a> = serde_json::from_str(raw).map_err(io::Error::other)?;
    for (name, v) in CSV_COLUMNS.iter().zip(cols.0) {
        cells.push(match v {
            None => Cow::Borrowed(""),
            Some(v) => cell(name, v),
        });
    }
    Ok(())
}

/// One CSV cell from one JSON value.
fn cell<'a>(column: &str, v: &'a RawValue) -> Cow<'a, str> {
    let text = v.get();
    match text.as_bytes().first() {
        Some(b'n') => Cow::Borrowed(""), // null
        Some(b'"') => {
            let s: Cow<'a, str> = serde_json::from_str(text).unwrap_or(Cow::Borrowed(""));
            if column.ends_with("Time")
                && let Ok(t) = ApiTime::parse(&s)
            {
                return Cow::Owned(t.to_api_string());
            }
            guard(s)
        }
        Some(b'[') => {
            let items: Vec<serde_json::Value> = serde_json::from_str(text).unwrap_or_default();
            let joined = items
                .iter()
                .map(|i| match i {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("; ");
            guard(Cow::Owned(joined))
        }
        Some(b'{') => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => guard(Cow::Owned(v.to_string())),
            Err(_) => Cow::Borrowed(""),
        },
        // numbers and booleans: ours, not attacker text; left as they are so numbers stay numbers
        _ => Cow::Borrowed(text),
    }
}

/// OWASP's CSV-injection rule: a cell a spreadsheet would run as a formula gets a leading `'`.
pub fn guard(s: Cow<'_, str>) -> Cow<'_, str> {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\n' | '＝' | '＋' | '－' | '＠') => {
            Cow::Owned(format!("'{s}"))
        }
        _ => s,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs one configured export: timestamped file, `-latest`, manifest, retention.
pub fn run_export(store: &Store, export: &ExportConfig) -> Result<Written, ExportError> {
    let dir = &export.dir;
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    remove_stale_temps(dir).map_err(io_err(dir))?;
    let ext = export.format.extension();
    let generated = chrono::Utc::now();
    let stamp = generated.format("%Y%m%dT%H%M%SZ").to_string();
    let mut target = dir.join(format!("{}-{stamp}.{ext}", export.name));
    let mut n = 1;
    while target.exists() {
        target = dir.join(format!("{}-{stamp}-{n}.{ext}", export.name));
        n += 1;
    }
    let written = export_file(store, export.format, &target)?;
    let latest = dir.join(format!("{}-latest.{ext}", export.name));
    publish_latest(&target, &latest).map_err(io_err(&latest))?;
    let manifest = serde_json::json!({
        "file": target.file_name().map(|f| f.to_string_lossy().into_owned()),
        "latest": latest.file_name().map(|f| f.to_string_lossy().into_owned()),
        "rows": written.rows,
        "sha256": written.sha256,
        "generated_at": ApiTime::from_chrono(generated).to_api_string(),
        "format": ext,
        "columns": if export.format == ExportFormat::Csv { Some(CSV_COLUMNS) } else { None },
    });
    let manifest_path = dir.join(format!("{}-latest.manifest.json", export.name));
    write_atomic(&manifest_path, FILE_MODE, |w| {
        serde_json::to_writer_pretty(&mut *w, &manifest)?;
        w.write_all(b"\n")
    })
    .map_err(io_err(&manifest_path))?;
    prune(dir, &export.name, ext, KEEP).map_err(io_err(dir))?;
    Ok(Written {
        path: latest,
        ..written
    })
}

/// Swaps `latest` to the content of `file`: a hard link renamed into place, or a copy.
fn publish_latest(file: &Path, latest: &Path) -> io::Result<()> {
    let dir = parent(latest);
    let tmp = dir.join(format!("{TEMP_PREFIX}{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    match fs::hard_link(file, &tmp) {
        Ok(()) => {
            fs::rename(&tmp, latest)?;
            sync_dir(dir)
        }
        Err(_) => {
            let mut src = File::open(file)?;
            write_atomic(latest, FILE_MODE, |w| io::copy(&mut src, w).map(|_| ()))
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
    use proptest::prelude::*;

    #[test]
    fn guard_neutralises_formulas() {
        for bad in ["=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "\nx", "＝1"] {
            let g = guard(Cow::Borrowed(bad));
            assert!(g.starts_with('\''), "{bad:?}");
            assert!(g.ends_with(bad));
        }
        assert_eq!(guard(Cow::Borrowed("plain")), "plain");
    }

    proptest! {
        #[test]
        fn no_guarded_cell_starts_executable(s in ".*") {
            let g = guard(Cow::Owned(s.clone()));
            let first = g.chars().next();
            prop_assert!(!matches!(first, Some('=' | '+' | '-' | '@' | '\t' | '\r' | '\n' | '＝' | '＋' | '－' | '＠')));
            prop_assert!(g.contains(s.as_str()));
        }
    }

    #[test]
    fn cells_flatten_nested_values() {
        let raw = r#"{"id":"=cmd","mitreTechniques":["T1","T2"],"relatedUser":{"userName":"a","domainName":"B"},"incidentId":-5,"lastUpdateTime":"2024-01-01T00:00:01.2Z","title":"x\"y, z\nw","comments":[]}"#;
        let mut cells = Vec::new();
        csv_row(raw, &mut cells).unwrap();
        let get = |c: &str| cells[CSV_COLUMNS.iter().position(|x| *x == c).unwrap()].clone();
        assert_eq!(get("id"), "'=cmd");
        assert_eq!(get("mitreTechniques"), "T1; T2");
        assert_eq!(get("relatedUser"), r#"{"domainName":"B","userName":"a"}"#);
        assert_eq!(get("incidentId"), "-5", "numbers stay numbers");
        assert_eq!(get("lastUpdateTime"), "2024-01-01T00:00:01.2000000Z");
        assert_eq!(get("title"), "x\"y, z\nw");
        assert_eq!(get("severity"), "");
        assert_eq!(get("comments"), "");
    }

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
