//! `backup PATH`: a consistent copy of the store while the service keeps writing it.
//!
//! SQLite's online backup API copies the pages; asked for every page in one step, it does so
//! inside one read transaction, which in WAL mode is a snapshot that writers do not disturb (and
//! do not wait for): the copy is the store as of one commit, never a mix, and never restarted by
//! a busy writer. The copy is written the way exports are (`export::atomic`'s rules, restated here
//! because the store sits below the export module): a temp file in the target's directory, its
//! mode set explicitly, fsync, rename over the target, fsync of the directory; only a regular file
//! is ever replaced, and never the store itself.
//!
//! Nothing is left behind: the copy's SQLite journal is kept in memory (a failed copy is thrown
//! away whole, so a journal on disk protects nothing and would outlive a full disk), and each
//! backup first removes what killed backups left in its directory: their temp files and
//! journals, matched by their exact names and only for writers no longer running.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::backup::Backup;

use super::Store;

/// Why a backup failed; the target is untouched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The target is not a regular file (a directory, symlink, device…).
    #[error("{} is not a regular file ({kind}); a backup only ever replaces a regular file", path.display())]
    NotRegularFile {
        /// The target.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The target is the store itself (or its WAL).
    #[error("{} is the store itself; a backup must go elsewhere", path.display())]
    IsTheStore {
        /// The target.
        path: PathBuf,
    },
    /// The target's directory does not exist.
    #[error("the directory {} does not exist", dir.display())]
    NoDirectory {
        /// The directory.
        dir: PathBuf,
    },
    /// Writing the copy failed.
    #[error("cannot write the backup {}: {source}", path.display())]
    Io {
        /// The target.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// SQLite failed while copying.
    #[error("cannot copy the store to {}: {source}", path.display())]
    Sqlite {
        /// The target.
        path: PathBuf,
        /// The error.
        #[source]
        source: rusqlite::Error,
    },
}

impl BackupError {
    /// What the admin can do about it, when the error knows.
    pub fn hint(&self) -> Option<String> {
        Some(
            match self {
                BackupError::NotRegularFile { .. } => {
                    "choose a path that names a regular file or nothing yet: a directory, device or link is never replaced"
                }
                BackupError::IsTheStore { .. } => "choose another path (on another disk, ideally)",
                BackupError::NoDirectory { .. } => "create it, or choose another path",
                BackupError::Io { .. } | BackupError::Sqlite { .. } => return None,
            }
            .into(),
        )
    }
}

/// What a backup wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupReport {
    /// Bytes of the copy.
    pub bytes: u64,
    /// Pages copied.
    pages: u64,
}

fn kind_of(t: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Refuses anything but a regular file (or nothing) at `path`, without following a symlink.
fn check_target(path: &Path) -> Result<(), BackupError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(()),
        Ok(m) => Err(BackupError::NotRegularFile {
            path: path.to_path_buf(),
            kind: kind_of(m.file_type()),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(BackupError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// What a backup's temp file is named: this, the writer's pid, `-`, and six letters or digits
/// (`tempfile`'s random part).
const TEMP_PREFIX: &str = ".mde-alerts-tmp-";
/// Random characters after the pid.
const TEMP_RANDOM: usize = 6;

/// Whether `name` is a backup's temp file (or its journal) written by a process no longer
/// running: `.mde-alerts-tmp-PID-XXXXXX` or the same with `-journal`, nothing looser. An
/// export's temp files (longer names) and anything a person put there do not match.
fn stale_backup_temp(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
        return false;
    };
    let rest = rest.strip_suffix("-journal").unwrap_or(rest);
    let Some((pid_text, random)) = rest.split_once('-') else {
        return false;
    };
    // The pid as a process writes it: digits, no leading zero (`007` or `+7` is not `7`).
    let Some(pid) = pid_text
        .parse::<u32>()
        .ok()
        .filter(|p| p.to_string() == pid_text)
    else {
        return false;
    };
    random.len() == TEMP_RANDOM
        && random.bytes().all(|b| b.is_ascii_alphanumeric())
        && pid != std::process::id()
        && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the stale backup temp files and journals in `dir` (see [`stale_backup_temp`]); only
/// regular files. Returns how many went.
fn remove_stale(dir: &Path) -> Result<usize, BackupError> {
    let io_err = |source| BackupError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut n = 0;
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !stale_backup_temp(name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => n += 1,
            // Another backup's cleanup got there first.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(BackupError::Io {
                    path: entry.path(),
                    source,
                });
            }
        }
    }
    Ok(n)
}

/// Removes the journal SQLite may have left beside `tmp` (when the copy failed before its
/// connection closed), whatever happens to the copy.
struct JournalGuard(PathBuf);

impl JournalGuard {
    fn beside(tmp: &Path) -> JournalGuard {
        let mut j = tmp.as_os_str().to_owned();
        j.push("-journal");
        JournalGuard(PathBuf::from(j))
    }
}

impl Drop for JournalGuard {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// A failure injected once the copy (at the path given) is open.
#[cfg(test)]
type InjectedFailure = fn(&Path) -> BackupError;

// A failure injected once the copy is open, for the test that nothing is left behind.
#[cfg(test)]
thread_local! {
    static FAIL_COPY: std::cell::Cell<Option<InjectedFailure>> =
        const { std::cell::Cell::new(None) };
}

/// Writes a consistent copy of `store` to `target` with `mode` (the exports' file mode).
pub fn backup(store: &Store, target: &Path, mode: u32) -> Result<BackupReport, BackupError> {
    let io_err = |source| BackupError::Io {
        path: target.to_path_buf(),
        source,
    };
    check_target(target)?;
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(BackupError::NoDirectory { dir });
    }
    // The store itself, or one of its side files, under any spelling of its path.
    if let (Ok(store_path), Ok(dir_abs)) = (store.path().canonicalize(), dir.canonicalize()) {
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let store_name = store_path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if store_path.parent() == Some(dir_abs.as_path()) && name.starts_with(&store_name) {
            return Err(BackupError::IsTheStore {
                path: target.to_path_buf(),
            });
        }
    }
    let removed = remove_stale(&dir)?;
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, "Removed what earlier, killed backups left in the backup's directory.");
    }
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
        .rand_bytes(TEMP_RANDOM)
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(&dir)
        .map_err(io_err)?
        .into_temp_path();
    // Declared after `tmp`, so dropped before it: the journal goes, then the copy.
    let _journal = JournalGuard::beside(&tmp);
    let sqlite_err = |source| BackupError::Sqlite {
        path: target.to_path_buf(),
        source,
    };
    let pages = {
        let mut dst = Connection::open(&tmp).map_err(sqlite_err)?;
        // No journal file: see the module docs.
        dst.pragma_update(None, "journal_mode", "MEMORY")
            .map_err(sqlite_err)?;
        #[cfg(test)]
        if let Some(fail) = FAIL_COPY.take() {
            return Err(fail(&tmp));
        }
        let b = Backup::new(store.connection(), &mut dst).map_err(sqlite_err)?;
        // -1: every page in one step, inside one read transaction of the source (see above).
        // Busy only while another connection recovers the WAL or checkpoints with TRUNCATE:
        // wait a little and try again, as SQLite's own busy handler would.
        let mut tries = 0;
        loop {
            match b.step(-1).map_err(sqlite_err)? {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                _ if tries < 200 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                _ => {
                    return Err(sqlite_err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some("the store stayed busy for 10 s".into()),
                    )));
                }
            }
        }
        let pages = b.progress().pagecount.max(0) as u64;
        drop(b);
        dst.close().map_err(|(_, e)| sqlite_err(e))?;
        pages
    };
    // The umask may have narrowed the mode given at creation.
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io_err)?;
    let file = fs::File::open(&tmp).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    let bytes = file.metadata().map_err(io_err)?.len();
    // Checked again just before the rename: the first check may be old.
    check_target(target)?;
    tmp.persist(target).map_err(|e| io_err(e.error))?;
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err)?;
    Ok(BackupReport { bytes, pages })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_it_must_not_replace() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        let s = Store::open(&db).unwrap();
        let e = backup(&s, dir.path(), 0o640).unwrap_err();
        assert!(matches!(e, BackupError::NotRegularFile { .. }), "{e}");
        for same in ["a.db", "a.db-wal"] {
            let e = backup(&s, &dir.path().join(same), 0o640).unwrap_err();
            assert!(matches!(e, BackupError::IsTheStore { .. }), "{e}");
        }
        let e = backup(&s, &dir.path().join("no/such/dir.db"), 0o640).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert!(!e.to_string().contains("fix"), "the fix is the hint's: {e}");
        assert_eq!(
            e.hint().as_deref(),
            Some("create it, or choose another path")
        );
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
        assert!(backup(&s, &link, 0o640).is_err());
        // Nothing left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".mde-alerts-tmp"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    /// Killed backups left full-size copies and their journals for ever: a backup now removes
    /// them (dead writers' only), and nothing else, however close its name.
    #[test]
    fn a_backup_removes_what_killed_backups_left_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("a.db")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let dead = 4_294_967u32; // above any pid_max: never running
        let gone = [
            format!(".mde-alerts-tmp-{dead}-AbC123"),
            format!(".mde-alerts-tmp-{dead}-AbC123-journal"),
        ];
        let kept = [
            // pid 1 is always running.
            ".mde-alerts-tmp-1-AbC123".to_owned(),
            ".mde-alerts-tmp-1-AbC123-journal".to_owned(),
            format!(".mde-alerts-tmp-{dead}-AbC123.keep"),
            format!(".mde-alerts-tmp-{dead}-AbC123-journal.bak"),
            format!(".mde-alerts-tmp-{dead}-AbC1234"),
            format!(".mde-alerts-tmp-0{dead}-AbC123"),
            format!(".mde-alerts-tmp-{dead}-latest-0123456789abcdef"),
            "notes-journal".to_owned(),
            "backup.db".to_owned(),
        ];
        for n in gone.iter().chain(&kept) {
            fs::write(out.path().join(n), b"x").unwrap();
        }
        fs::create_dir(out.path().join(format!(".mde-alerts-tmp-{dead}-Dir123"))).unwrap();
        backup(&s, &out.path().join("backup.db"), 0o640).unwrap();
        for n in &gone {
            assert!(!out.path().join(n).exists(), "{n} was left");
        }
        for n in &kept {
            assert!(out.path().join(n).exists(), "{n} was removed");
        }
        assert!(
            out.path()
                .join(format!(".mde-alerts-tmp-{dead}-Dir123"))
                .is_dir()
        );
        let left: Vec<_> = fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("journal") && !kept.contains(n))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// On a nearly full disk SQLite fails the copy with its journal created but not removed
    /// (seen on a 2 MiB tmpfs: a `-journal` left after every such backup). Whatever fails
    /// once the copy is open, neither the copy nor a journal beside it is left.
    #[test]
    fn a_failed_backup_leaves_no_copy_and_no_journal() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("a.db")).unwrap();
        let out = tempfile::tempdir().unwrap();
        FAIL_COPY.set(Some(|tmp: &Path| {
            let mut j = tmp.as_os_str().to_owned();
            j.push("-journal");
            fs::write(PathBuf::from(j), b"as SQLite leaves it on ENOSPC").unwrap();
            BackupError::Io {
                path: tmp.to_path_buf(),
                source: io::Error::from_raw_os_error(28),
            }
        }));
        let e = backup(&s, &out.path().join("copy.db"), 0o640).unwrap_err();
        assert!(e.to_string().contains("No space left"), "{e}");
        let left: Vec<_> = fs::read_dir(out.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn the_copy_has_the_mode_and_opens() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("a.db")).unwrap();
        let out = dir.path().join("copy.db");
        std::fs::write(&out, b"old").unwrap();
        let r = backup(&s, &out, 0o640).unwrap();
        assert!(r.bytes > 0 && r.pages > 0);
        let mode = fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        Store::open(&out).unwrap();
    }
}
