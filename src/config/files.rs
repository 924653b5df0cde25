//! Reading the small files the config names (the config itself, secrets, PEM keys and
//! certificates, the CA bundle): regular files only, with a cap, so that a FIFO cannot hang a
//! command and `/dev/zero` cannot fill memory.

use std::path::Path;

use super::error::ConfigError;

/// The most a file holding a secret, a password or a PEM key or certificate may hold: they are
/// a few KB, and a path at something bigger is a mistake.
const KEY_FILE_CAP: u64 = 64 * 1024;
/// The most a CA file may hold: a bundle of a few hundred certificates.
pub(crate) const CA_FILE_CAP: u64 = 4 * 1024 * 1024;
/// The most the config file may hold.
pub(crate) const CONFIG_FILE_CAP: u64 = 1024 * 1024;

/// Why [`read_small_file`] failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SmallFileError {
    /// Opening or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// It is a FIFO, a device, a directory or a socket.
    #[error("it is {0}, not a regular file")]
    NotRegular(&'static str),
    /// It is larger than the cap.
    #[error("it holds more than {cap} bytes", cap = .0)]
    TooLarge(u64),
}

/// Reads a small regular file whole, and nothing else: a FIFO would block forever and a device
/// such as `/dev/zero` would fill memory. The file is opened with `O_NONBLOCK` (opening a FIFO
/// then does not wait for a writer), checked with `fstat` on the open descriptor (no race with a
/// rename), and read with a cap (a file may grow after `fstat`, and `/proc` files report size 0).
pub(crate) fn read_small_file(path: &Path, cap: u64) -> Result<Vec<u8>, SmallFileError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = f.metadata()?;
    let t = meta.file_type();
    if !t.is_file() {
        return Err(SmallFileError::NotRegular(if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO (named pipe)"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "a special file"
        }));
    }
    if meta.len() > cap {
        return Err(SmallFileError::TooLarge(cap));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(SmallFileError::TooLarge(cap));
    }
    Ok(bytes)
}

/// Reads a small file the config points at (`what`: "secret file", "certificate file", …), with
/// errors that name the key and the fix. At most [`KEY_FILE_CAP`] bytes.
pub(crate) fn read_key_file(key: &str, path: &Path, what: &str) -> Result<Vec<u8>, ConfigError> {
    read_capped(key, path, what, KEY_FILE_CAP)
}

pub(crate) fn read_capped(
    key: &str,
    path: &Path,
    what: &str,
    cap: u64,
) -> Result<Vec<u8>, ConfigError> {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    read_small_file(path, cap).map_err(|e| match e {
        // A path to nothing may be a secret pasted in place of its file's path: not echoed.
        SmallFileError::Io(e)
            if e.kind() == std::io::ErrorKind::NotFound && what == "secret file" =>
        {
            ConfigError::new(
                key,
                format!(
                    "the {what} it names does not exist (the value is not shown, in case it is the secret itself)"
                ),
                format!(
                    "write the path of a file that holds only the secret, e.g. \"/etc/mde-alerts/{}\"",
                    leaf.trim_end_matches("_file")
                ),
            )
        }
        SmallFileError::Io(e) => ConfigError::new(
            key,
            format!("cannot read the {what} {}: {e}", path.display()),
            "check the path and that the service's user may read it (mode 0600 or 0640)",
        ),
        SmallFileError::NotRegular(kind) => ConfigError::new(
            key,
            format!("the {what} {} is {kind}, not a regular file", path.display()),
            format!(
                "point {leaf} at a regular file holding only the {}; a pipe or a device would hang or never end",
                what.trim_end_matches(" file")
            ),
        ),
        SmallFileError::TooLarge(cap) => ConfigError::new(
            key,
            format!(
                "the {what} {} is larger than {} KiB, far more than it should hold",
                path.display(),
                cap / 1024
            ),
            format!(
                "point {leaf} at the file that holds only the {}",
                what.trim_end_matches(" file")
            ),
        ),
    })
}
