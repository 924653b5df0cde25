//! Writing files so that a reader never sees a part of one, the rules in one place.
//!
//! Every file is written to a temp file in the *same directory* (rename only works within one file
//! system, and systemd's `PrivateTmp=` gives the service another `/tmp`), with an explicit mode,
//! flushed and `fsync`ed, renamed over the target, and then the directory is `fsync`ed so the
//! rename itself survives a power cut. Hand-written on top of `tempfile` rather than its
//! `persist`, because `persist` syncs neither the file nor the directory and creates files 0600.
//!
//! - Only regular files are ever replaced: a symlink, directory, FIFO, socket or device at a
//!   target is refused ([`check_target`]) before anything is written, and again just before the
//!   rename. Prune and temp cleanup skip such entries.
//! - Several files are published together by staging them all first (`stage`,
//!   `stage_latest`) and renaming them only when every one exists (`publish_in_order`): a
//!   failure strikes before anything is visible. The caller orders them (manifest last).
//! - Temp files start with [`TEMP_PREFIX`] and the writer's pid, so that [`remove_stale_temps`]
//!   removes only those of writers no longer running.
//! - `prune` keeps the newest timestamped files and never the one just written.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{ExportError, NotRegularFile, io_err, kind_of};

/// Temp files start with this; anything with it in an export directory is a leftover.
pub const TEMP_PREFIX: &str = ".mde-alerts-tmp-";

/// Refuses to replace anything but a regular file (or nothing) at `path`. `symlink_metadata`
/// does not follow a symlink: a rename would replace the link itself (`/dev/stdout` as root).
pub fn check_target(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(()),
        Ok(m) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            NotRegularFile {
                path: path.to_path_buf(),
                kind: kind_of(m.file_type()),
                fix: "choose a path that names a regular file or nothing yet (`--out -` writes to standard output): a directory, device or link is never replaced",
            },
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A complete, synced temp file waiting to be renamed over its target; removed if dropped.
#[derive(Debug)]
pub(crate) struct Staged {
    tmp: PathBuf,
    target: PathBuf,
}

impl Staged {
    /// Renames the temp file over the target (checked again: the check above may be old).
    fn publish(mut self) -> io::Result<()> {
        check_target(&self.target)?;
        fs::rename(&self.tmp, &self.target)?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes a temp file for `path` in its directory: `mode`, `write`, fsync. Not yet visible.
pub(crate) fn stage<T>(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut File) -> io::Result<T>,
) -> io::Result<(Staged, T)> {
    check_target(path)?;
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
    let tmp = tmp.into_temp_path().keep().map_err(|e| e.error)?;
    Ok((
        Staged {
            tmp,
            target: path.to_path_buf(),
        },
        out,
    ))
}

/// Renames every staged file into place in the order given, then syncs `dir` once. A file that
/// cannot be published leaves the ones after it unpublished (and their temp files removed).
pub(crate) fn publish_in_order(staged: Vec<Staged>, dir: &Path) -> Result<(), ExportError> {
    for s in staged {
        let target = s.target.clone();
        s.publish().map_err(io_err(&target))?;
    }
    sync_dir(dir).map_err(io_err(dir))
}

/// Writes `path` atomically: temp file in the same directory, `mode`, fsync, rename, fsync dir.
/// `write` gets the temp file itself (buffer it, or seek in it, as the format needs). Anything but
/// a regular file at `path` is refused (see [`check_target`]).
pub fn write_atomic<T>(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut File) -> io::Result<T>,
) -> io::Result<T> {
    let (staged, out) = stage(path, mode, write)?;
    staged.publish()?;
    sync_dir(parent(path))?;
    Ok(out)
}

/// Runs `write` through a buffer and a SHA-256, returning its result and the digest.
pub(crate) fn buffered_hashed<T>(
    file: &mut File,
    write: impl FnOnce(&mut (dyn Write + Send)) -> io::Result<T>,
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
pub(crate) fn hash_back(file: &mut File) -> io::Result<String> {
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

/// A writer that hashes what passes through it.
struct Hashing<'a> {
    inner: &'a mut (dyn Write + Send),
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

/// Lower-case hex, as the manifest writes digests.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The directory of `path` (`.` for a bare file name).
pub(crate) fn parent(path: &Path) -> &Path {
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

/// Removes the temp files that writers no longer running left in `dir` (this process's own
/// included: nothing of ours is in progress when an export starts). Only regular files are
/// removed; anything else named like a temp file is left alone. Errors name the path.
pub fn remove_stale_temps(dir: &Path) -> Result<usize, ExportError> {
    let mut n = 0;
    let entries = fs::read_dir(dir).map_err(|source| ExportError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| ExportError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid
            .is_some_and(|p| p != std::process::id() && Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let path = entry.path();
            match fs::remove_file(&path) {
                Ok(()) => n += 1,
                // Another cleanup got there first.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(ExportError::Remove { path, source }),
            }
        }
    }
    Ok(n)
}

/// Stages `latest` with the content of `file`: a hard link under a temp name (the timestamped
/// file is synced and never changes), or a synced copy where links are not supported.
pub(crate) fn stage_latest(file: &Path, latest: &Path, mode: u32) -> io::Result<Staged> {
    check_target(latest)?;
    let dir = parent(latest);
    for _ in 0..16 {
        let tmp = dir.join(format!(
            "{}latest-{:016x}",
            temp_prefix(),
            rand::random::<u64>()
        ));
        match fs::hard_link(file, &tmp) {
            Ok(()) => {
                return Ok(Staged {
                    tmp,
                    target: latest.to_path_buf(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) => break,
        }
    }
    let mut src = File::open(file)?;
    stage(latest, mode, |w| io::copy(&mut src, w).map(drop)).map(|(s, ())| s)
}

/// Keeps the newest `keep` timestamped files of an export, by modification time then name,
/// always counting `just_written` among them (after a clock step back it may have the oldest
/// name and time). Only regular files named exactly `NAME-YYYYMMDDTHHMMSSZ[-N].EXT` are
/// candidates, so another export whose name starts like this one (`alerts` and `alerts-1d`) and
/// anything that is not a file are never touched.
#[cfg(test)]
pub(crate) fn prune(
    dir: &Path,
    name: &str,
    ext: &str,
    keep: usize,
    just_written: &Path,
) -> Result<(), ExportError> {
    Listing::read(dir)?.prune(
        name,
        ext,
        keep,
        0,
        chrono::Utc::now().date_naive(),
        just_written,
    )
}

/// One timestamped file: modification time, stamp, `-N`, path (sorted oldest first).
type Stamped = (std::time::SystemTime, String, u32, PathBuf);

/// The timestamped files of an export directory by (stem, extension), read once per export run:
/// a `{tenant}` export prunes a thousand sets in one directory, and reading the directory once
/// per set would make that run quadratic in the number of tenants.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    files: std::collections::HashMap<(String, String), Vec<Stamped>>,
}

impl Listing {
    /// Reads `dir`: regular files named `STEM-YYYYMMDDTHHMMSSZ[-N].EXT` (a symlink, directory
    /// or anything else is never a candidate for removal).
    pub(crate) fn read(dir: &Path) -> Result<Listing, ExportError> {
        let mut files: std::collections::HashMap<(String, String), Vec<Stamped>> =
            std::collections::HashMap::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let f = entry.file_name().to_string_lossy().into_owned();
            let Some((stem, stamp, n, ext)) = split_timestamped(&f) else {
                continue;
            };
            // DirEntry::metadata does not follow symlinks.
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.file_type().is_file() {
                continue;
            }
            let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            files
                .entry((stem.to_owned(), ext.to_owned()))
                .or_default()
                .push((mtime, stamp.to_owned(), n, entry.path()));
        }
        Ok(Listing { files })
    }

    /// [`prune`] for `NAME-….EXT` from this listing (taken before or after `just_written`):
    /// keeps the newest `keep` (counting `just_written`) and the newest of each of the last
    /// `keep_daily` days up to `today` (UTC, by the time in the file's name).
    pub(crate) fn prune(
        &mut self,
        name: &str,
        ext: &str,
        keep: usize,
        keep_daily: usize,
        today: chrono::NaiveDate,
        just_written: &Path,
    ) -> Result<(), ExportError> {
        let Some(mut files) = self.files.remove(&(name.to_owned(), ext.to_owned())) else {
            return Ok(());
        };
        files.retain(|f| f.3 != just_written);
        files.sort();
        for i in doomed(&files, keep, keep_daily, today) {
            let path = &files[i].3;
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(ExportError::Remove {
                        path: path.clone(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}

/// Which of `files` (oldest first, the file just written not among them) go: all but the newest
/// `keep - 1` and the newest of each of the last `keep_daily` days up to `today`.
fn doomed(
    files: &[Stamped],
    keep: usize,
    keep_daily: usize,
    today: chrono::NaiveDate,
) -> Vec<usize> {
    let recent = files.len().saturating_sub(keep.saturating_sub(1));
    let day_of = |stamp: &str| chrono::NaiveDate::parse_from_str(stamp.get(..8)?, "%Y%m%d").ok();
    let first_day = today - chrono::Days::new(keep_daily.saturating_sub(1) as u64);
    // The newest file of each kept day, by its name's time.
    let mut daily: std::collections::HashMap<chrono::NaiveDate, usize> =
        std::collections::HashMap::new();
    if keep_daily > 0 {
        for (i, f) in files.iter().enumerate() {
            let Some(day) = day_of(&f.1).filter(|d| (first_day..=today).contains(d)) else {
                continue;
            };
            let newer = daily
                .get(&day)
                .is_none_or(|&j| (&files[j].1, files[j].2) < (&f.1, f.2));
            if newer {
                daily.insert(day, i);
            }
        }
    }
    let kept: std::collections::HashSet<usize> = daily.into_values().collect();
    (0..recent).filter(|i| !kept.contains(i)).collect()
}

/// `Some((stem, stamp, n, ext))` when `file` is `STEM-YYYYMMDDTHHMMSSZ[-N].EXT`.
fn split_timestamped(file: &str) -> Option<(&str, &str, u32, &str)> {
    let (base, ext) = file.rsplit_once('.')?;
    let is_stamp = |s: &str| {
        let b = s.as_bytes();
        b.len() == 16
            && b[8] == b'T'
            && b[15] == b'Z'
            && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
    };
    let (head, tail) = base.rsplit_once('-')?;
    if is_stamp(tail) {
        return Some((head, tail, 0, ext));
    }
    let n = tail.parse::<u32>().ok()?;
    let (stem, stamp) = head.rsplit_once('-')?;
    is_stamp(stamp).then_some((stem, stamp, n, ext))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::error::unwrap_io;

    /// Snapshot history with a clock the test sets: three files a day for ten days, `keep = 3`,
    /// `keep_daily = 7`: the newest three stay, and the last file of each of the last seven days.
    #[test]
    fn keep_daily_keeps_the_last_snapshot_of_each_recent_day() {
        let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        let mut files: Vec<Stamped> = Vec::new();
        for d in 1u32..=10 {
            for h in [6u32, 12, 18] {
                let stamp = format!("202612{d:02}T{h:02}0000Z");
                files.push((
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(d * 100 + h)),
                    stamp.clone(),
                    0,
                    PathBuf::from(format!("a-{stamp}.csv")),
                ));
            }
        }
        // The file just written (10 Dec 18:00) is not in the list: it counts as one of `keep`.
        let just = files.pop().unwrap();
        assert_eq!(just.1, "20261210T180000Z");
        let gone: std::collections::HashSet<String> = doomed(&files, 3, 7, day(10))
            .into_iter()
            .map(|i| files[i].1.clone())
            .collect();
        let kept: Vec<&str> = files
            .iter()
            .map(|f| f.1.as_str())
            .filter(|s| !gone.contains(*s))
            .collect();
        assert_eq!(
            kept,
            [
                "20261204T180000Z",
                "20261205T180000Z",
                "20261206T180000Z",
                "20261207T180000Z",
                "20261208T180000Z",
                "20261209T180000Z",
                "20261210T060000Z",
                "20261210T120000Z",
            ]
        );
        // keep_daily = 0: only the newest `keep`.
        assert_eq!(doomed(&files, 3, 0, day(10)).len(), files.len() - 2);
        // A day later the oldest kept day falls out.
        assert!(
            doomed(&files, 3, 7, day(11))
                .iter()
                .any(|&i| files[i].1 == "20261204T180000Z")
        );
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
        let ours = |f: &str| {
            split_timestamped(f)
                .filter(|(stem, _, _, ext)| *stem == "alerts" && *ext == "csv")
                .map(|(_, stamp, n, _)| (stamp.to_owned(), n))
        };
        assert_eq!(
            ours("alerts-20261126T120000Z.csv"),
            Some(("20261126T120000Z".into(), 0))
        );
        assert_eq!(
            ours("alerts-20261126T120000Z-2.csv"),
            Some(("20261126T120000Z".into(), 2))
        );
        for other in [
            "alerts-latest.csv",
            "alerts-1d-latest.csv",
            "alerts-1d-20261126T120000Z.csv",
            "alerts-20261126T120000Z.json",
            "alerts-20261126T120000Z.csv.tmp",
            // Another tenant's set whose name starts like this one's.
            "alerts-eu-20261126T120000Z-3.csv",
        ] {
            assert_eq!(ours(other), None, "{other}");
        }
        assert_eq!(
            split_timestamped("alerts-eu-20261126T120000Z-3.csv"),
            Some(("alerts-eu", "20261126T120000Z", 3, "csv"))
        );
    }

    #[test]
    fn only_regular_files_are_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("file"), b"x").unwrap();
        std::os::unix::fs::symlink(d.join("file"), d.join("link")).unwrap();
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling")).unwrap();
        fs::create_dir(d.join("dir")).unwrap();
        assert!(check_target(&d.join("file")).is_ok());
        assert!(check_target(&d.join("absent")).is_ok());
        for (name, kind) in [
            ("link", "a symlink"),
            ("dangling", "a symlink"),
            ("dir", "a directory"),
        ] {
            let err = write_atomic(&d.join(name), 0o640, |w| w.write_all(b"y")).unwrap_err();
            assert!(err.to_string().contains(kind), "{name}: {err}");
            match unwrap_io(&d.join(name), err) {
                ExportError::NotRegular { path, .. } => assert_eq!(path, d.join(name)),
                other => panic!("{other:?}"),
            }
        }
        assert!(
            fs::symlink_metadata(d.join("link"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let err = check_target(Path::new("/dev/null")).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
    }

    /// After a clock step back the file just written has the oldest name, and must still be kept.
    #[test]
    fn prune_keeps_the_file_just_written() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for stamp in ["20991231T000000Z", "20991231T000001Z", "20991231T000002Z"] {
            fs::write(d.join(format!("a-{stamp}.csv")), b"x").unwrap();
        }
        fs::create_dir(d.join("a-20000101T000000Z.csv")).unwrap();
        let ours = d.join("a-20260101T000000Z.csv");
        fs::write(&ours, b"x").unwrap();
        prune(d, "a", "csv", 2, &ours).unwrap();
        let mut left: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "a-20000101T000000Z.csv",
                "a-20260101T000000Z.csv",
                "a-20991231T000002Z.csv"
            ]
        );
    }

    #[test]
    fn only_dead_writers_temp_files_are_removed() {
        // A cleanup must not delete another live writer's temp file.
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
}
