//! `backup PATH`: a consistent copy of the store while the service keeps writing it.
//!
//! SQLite's online backup API copies the pages; asked for every page in one step, it does so
//! inside one read transaction, which in WAL mode is a snapshot that writers do not disturb (and
//! do not wait for): the copy is the store as of one commit, never a mix, and never restarted by
//! a busy writer. The copy is written the way exports are (`export::atomic`'s rules, restated here
//! because the store sits below the export module): a temp file in the target's directory, its
//! mode set explicitly, fsync, rename over the target, fsync of the directory; only a regular file
//! is ever replaced, and never the store itself.

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
    #[error("{} is not a regular file ({kind}); a backup only ever replaces a regular file\n  fix: remove or rename it, or choose another path", path.display())]
    NotRegularFile {
        /// The target.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The target is the store itself (or its WAL).
    #[error("{} is the store itself; a backup must go elsewhere\n  fix: choose another path (on another disk, ideally)", path.display())]
    IsTheStore {
        /// The target.
        path: PathBuf,
    },
    /// The target's directory does not exist.
    #[error("the directory {} does not exist\n  fix: create it, or choose another path", dir.display())]
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

/// What a backup wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupReport {
    /// Bytes of the copy.
    pub bytes: u64,
    /// Pages copied.
    pub pages: u64,
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
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".mde-alerts-tmp-{}-", std::process::id()))
        .permissions(fs::Permissions::from_mode(mode))
        .tempfile_in(&dir)
        .map_err(io_err)?
        .into_temp_path();
    let sqlite_err = |source| BackupError::Sqlite {
        path: target.to_path_buf(),
        source,
    };
    let pages = {
        let mut dst = Connection::open(&tmp).map_err(sqlite_err)?;
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
