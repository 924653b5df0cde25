//! The single-writer lock: one process writes to a store at a time.

use std::path::{Path, PathBuf};

use super::StoreError;

/// How long a second writer waits for the first before giving up.
pub const WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

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
                    let holder = describe_holder(holder.trim());
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

/// Who holds the lock, for the message: `pid N` and, when it is still running and readable, its
/// command line (`mde-alerts --config … run`), so that the admin knows which one to stop.
fn describe_holder(pid: &str) -> String {
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return "pid unknown".to_owned();
    }
    let command = std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(String::from_utf8_lossy)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|c| !c.is_empty());
    match command {
        // Shown whole is fine: the command line carries no secret (secrets come from files or
        // the environment), but it is cut to stay one readable line.
        Some(c) => format!("pid {pid}: {}", c.chars().take(200).collect::<String>()),
        None => format!("pid {pid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_named_with_its_command() {
        let me = describe_holder(&std::process::id().to_string());
        assert!(
            me.starts_with(&format!("pid {}: ", std::process::id())),
            "{me}"
        );
        assert_eq!(describe_holder(""), "pid unknown");
        assert_eq!(describe_holder("12x"), "pid unknown");
        assert_eq!(describe_holder("4294967"), "pid 4294967");
    }
}
