//! Why an export failed, as one typed error for every format and for the file handling.
//!
//! The writers work on `io::Write`/`io::Result` (what `csv`, `serde_json` and `rust_xlsxwriter`
//! speak), so a store error or a refused target travels inside an `io::Error` and is unwrapped
//! back into its own variant here (`unwrap_io`) rather than flattened into text.

use std::fs;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::store::StoreError;

/// Why an export failed. The previous `-latest` files and manifest are untouched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The files were written, but mailing them failed (the mail is pending). Boxed: the
    /// server's answer and a password error are large, and every export returns this type.
    #[error(transparent)]
    Mail(Box<super::mail::MailError>),
    /// Something other than a regular file is where a file would be written or removed.
    #[error(
        "{path} is {kind}, not a regular file; mde-alerts only replaces regular files, so nothing was written"
    )]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What is there ("a symlink", "a directory", …).
        kind: &'static str,
        /// What to do.
        fix: &'static str,
    },
    /// Writing a file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A `{tenant}` export met a tenant name that is not safe in a file name.
    #[error(
        "export {export:?}: the tenant name {tenant:?} is not safe in a file name, so its files were not written"
    )]
    UnsafeTenantName {
        /// The export's name (with `{tenant}`).
        export: String,
        /// The tenant's name.
        tenant: String,
    },
    /// Some tenants' file sets of a `{tenant}` export failed; the others were written.
    #[error(
        "export {export:?}: the file sets of {} tenant(s) failed ({}); the other tenants' files were written. The first failure: {first}",
        tenants.len(),
        few(tenants)
    )]
    Sets {
        /// The export's name (with `{tenant}`).
        export: String,
        /// The tenants whose sets failed.
        tenants: Vec<String>,
        /// The first failure.
        #[source]
        first: Box<ExportError>,
    },
    /// Rows the store could not give back (it is corrupt) were left out of a file; every other
    /// row was written, and the manifest says the file is incomplete.
    #[error(
        "the store is corrupt: {} was written without {count} alert(s) whose stored text cannot be read ({})",
        path.display(),
        few(rows)
    )]
    Unreadable {
        /// The file written without them.
        path: PathBuf,
        /// How many rows were left out.
        count: usize,
        /// The first of them (`tenant/id rev N`).
        rows: Vec<String>,
    },
    /// Removing an old file failed.
    #[error("cannot remove {path}: {source}")]
    Remove {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl ExportError {
    /// What to do about it, when there is something to do: `main` prints it once as `fix: …`.
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            ExportError::Store(e) => e.hint(),
            ExportError::Mail(m) => m.hint(),
            ExportError::NotRegular { fix, .. } => Some((*fix).to_owned()),
            ExportError::Io { .. } => Some(
                "check that the directory exists, is writable by this user, and has free space"
                    .to_owned(),
            ),
            ExportError::UnsafeTenantName { .. } => {
                Some("name the tenant with letters, digits, - and _ only".to_owned())
            }
            ExportError::Sets { first, .. } => first.hint(),
            ExportError::Unreadable { .. } => Some(
                "run `mde-alerts store check`: it names every damaged alert and how to repair the store (`status` is unhealthy until it passes)"
                    .to_owned(),
            ),
            ExportError::Remove { path, .. } => Some(format!(
                "check the permissions of {} and its directory",
                path.display()
            )),
        }
    }
}

impl From<super::mail::MailError> for ExportError {
    fn from(e: super::mail::MailError) -> Self {
        ExportError::Mail(Box::new(e))
    }
}

/// The first few names of a list, for a message that stays readable at a thousand tenants.
fn few(names: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut s = names[..names.len().min(SHOWN)].join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(", and {} more", names.len() - SHOWN));
    }
    s
}

/// The io::Error payload of a refused target, turned back into [`ExportError::NotRegular`].
#[derive(Debug, thiserror::Error)]
#[error(
    "{} is {kind}, not a regular file; mde-alerts only replaces regular files",
    path.display()
)]
pub(crate) struct NotRegularFile {
    pub(crate) path: PathBuf,
    pub(crate) kind: &'static str,
    pub(crate) fix: &'static str,
}

/// What kind of non-regular entry `t` is, for messages.
pub(crate) fn kind_of(t: fs::FileType) -> &'static str {
    if t.is_symlink() {
        "a symlink"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

/// `map_err` helper: an io::Error at `path` as an [`ExportError`] (see [`unwrap_io`]).
pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ExportError + '_ {
    move |e| unwrap_io(path, e)
}

/// Turns an io::Error that carries a store error or a refused target back into it.
pub(crate) fn unwrap_io(path: &Path, e: io::Error) -> ExportError {
    let e = match e.downcast::<StoreError>() {
        Ok(s) => return ExportError::Store(s),
        Err(e) => e,
    };
    match e.downcast::<NotRegularFile>() {
        Ok(n) => ExportError::NotRegular {
            path: n.path,
            kind: n.kind,
            fix: n.fix,
        },
        Err(e) => ExportError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// A store error met while streaming rows, carried through the writer's `io::Error` (and
/// unwrapped again by [`unwrap_io`]).
pub(crate) fn store_io(e: crate::store::ForEachError) -> io::Error {
    match e {
        crate::store::ForEachError::Io(e) => e,
        crate::store::ForEachError::Store(s) => io::Error::other(s),
    }
}

/// A stored alert that is not the JSON it was when stored: the row is skipped and named
/// ([`super::rows::for_each`]), not the end of the export.
pub(crate) fn json_io(e: serde_json::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        super::rows::RowNotJson(e.to_string()),
    )
}
