//! The single-writer lock: one process writes to a store at a time.

use std::path::{Path, PathBuf};

use super::StoreError;

/// The single-writer lock: an advisory lock on `<store>.lock` that holds the writer's pid. One
/// process writes to a store at a time; readers (`export`, `status`) need no lock (WAL).
#[derive(Debug)]
pub struct WriterLock {
    _file: std::fs::File,
}

impl WriterLock {
    /// Takes the lock of the store at `db`, waiting up to `wait` for another writer to finish.
    pub fn acquire(db: &Path, wait: std::time::Duration) -> Result<WriterLock, StoreError> {
        use std::io::{Read, Seek, Write};
        if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(StoreError::Open {
                path: db.to_path_buf(),
                reason: format!("the directory {} does not exist", parent.display()),
                fix: "create it (the systemd unit's StateDirectory= does this), or change [store] path".into(),
            });
        }
        let lock_path = {
            let mut p = db.as_os_str().to_owned();
            p.push(".lock");
            PathBuf::from(p)
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| StoreError::Open {
                path: db.to_path_buf(),
                reason: format!("cannot open the lock file {}: {e}", lock_path.display()),
                fix: "check that the service's user may write the store's directory".into(),
            })?;
        let started = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < wait => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = match holder.trim() {
                        "" => "pid unknown".to_owned(),
                        pid => format!("pid {pid}"),
                    };
                    return Err(StoreError::Busy {
                        path: db.to_path_buf(),
                        holder,
                        waited_secs: started.elapsed().as_secs(),
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(StoreError::Open {
                        path: db.to_path_buf(),
                        reason: format!("cannot lock {}: {e}", lock_path.display()),
                        fix: "keep the store on a local file system".into(),
                    });
                }
            }
        }
        // Ours now: record who we are, for the next one's message.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        let _ = file.flush();
        Ok(WriterLock { _file: file })
    }
}
