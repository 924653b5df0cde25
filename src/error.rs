//! The one error a command ends with, and the exit code it means.
//!
//! Every module has its own error type; this enum gathers them so that the exit code is decided
//! by matching variants, not by searching an `anyhow` chain for a type (a `#[error(transparent)]`
//! wrapper hides its inner error from `source()`, so a configuration error wrapped by `demo` would
//! exit 1 instead of 78).

use crate::app::AppError;
use crate::config::ConfigError;
use crate::demo::DemoError;
use crate::export::ExportError;
use crate::import::ImportError;
use crate::store::StoreError;

/// Exit code: the run failed (API, sign-in, store, files).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: the command line was wrong.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the configuration is wrong; systemd does not restart on it
/// (`RestartPreventExitStatus=78`, EX_CONFIG).
pub const EXIT_CONFIG: u8 = 78;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A poll, sign-in check or configured export failed.
    #[error(transparent)]
    App(#[from] AppError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An export failed.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// An import failed (nothing of it was kept).
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The demo failed.
    #[error(transparent)]
    Demo(#[from] DemoError),
    /// Reading or writing something other than the store or an export failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    /// The process's exit code for this error.
    pub fn exit_code(&self) -> u8 {
        let config = match self {
            Error::Config(_) => true,
            Error::App(a) | Error::Demo(DemoError::App(a)) => matches!(a, AppError::Config(_)),
            _ => false,
        };
        if config { EXIT_CONFIG } else { EXIT_FAILED }
    }

    /// What to do about it, when the error knows: `main` prints it once, as `fix: …`, after the
    /// error (configuration and export errors; others say their fix in their text).
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Config(c) => Some(c.fix.clone()),
            Error::App(a) | Error::Demo(DemoError::App(a)) => match a {
                AppError::Config(c) => Some(c.fix.clone()),
                AppError::Export(e) => e.fix(),
                _ => None,
            },
            Error::Export(e) => e.fix(),
            _ => None,
        }
    }

    /// Whether the error is only that the reader of standard output went away (`| head`): a
    /// normal end for a command line tool, not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return true;
            }
            cause = c.source();
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration error inside `demo` exits 78, not 1: wrapping must not hide it.
    #[test]
    fn a_wrapped_configuration_error_still_exits_78() {
        let c = ConfigError {
            file: None,
            key: "tenants".into(),
            problem: "missing".into(),
            fix: "add one".into(),
        };
        assert_eq!(Error::from(c.clone()).exit_code(), EXIT_CONFIG);
        assert_eq!(
            Error::from(AppError::Config(c.clone())).exit_code(),
            EXIT_CONFIG
        );
        assert_eq!(
            Error::from(DemoError::App(AppError::Config(c.clone()))).exit_code(),
            EXIT_CONFIG
        );
        // The fix is the hint, said once by `main`, not part of the message.
        let e = Error::from(DemoError::App(AppError::Config(c)));
        assert_eq!(e.hint().as_deref(), Some("add one"));
        assert!(!e.to_string().contains("add one"), "{e}");
    }

    #[test]
    fn a_closed_pipe_is_recognised_through_wrappers() {
        let e = Error::io("standard output")(std::io::ErrorKind::BrokenPipe.into());
        assert!(e.is_broken_pipe());
        let e = Error::io("standard output")(std::io::ErrorKind::NotFound.into());
        assert!(!e.is_broken_pipe());
        assert_eq!(e.exit_code(), EXIT_FAILED);
    }
}
