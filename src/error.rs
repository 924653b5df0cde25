//! The one error a command ends with, its exit code and its fix.
//!
//! Every module has its own error type; this enum gathers them so that the exit code is decided
//! by matching variants, not by searching an `anyhow` chain for a type (a `#[error(transparent)]`
//! wrapper hides its inner error from `source()`). An error's `Display` is the problem alone;
//! what to do about it is [`Error::hint`], which every place that prints an error prints after it.

use std::path::PathBuf;

use crate::auth::AuthError;
use crate::config::ConfigError;
use crate::env::EnvError;
use crate::export::ExportError;
use crate::import::ImportError;
use crate::store::StoreError;

/// Exit code: the run failed (API, sign-in, store, files).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: the command line was wrong.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the configuration is wrong; systemd does not restart on it
/// (`RestartPreventExitStatus=78`, EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An export failed.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// An import failed (nothing of it was kept).
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The HTTP client could not be built (proxy, private CA, TLS).
    #[error("cannot set up HTTPS")]
    Https(#[source] crate::http::ClientError),
    /// A tenant's sign-in could not be set up.
    #[error(transparent)]
    SignIn(AuthError),
    /// A signal handler could not be installed.
    #[error("cannot listen for {name}")]
    Signal {
        /// The signal.
        name: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// tokio-cron-scheduler could not start or take a schedule.
    #[error("cannot schedule the polls with tokio-cron-scheduler")]
    Cron(#[source] tokio_cron_scheduler::JobSchedulerError),
    /// A store the command wrote for itself (`compare`'s) cannot be read back.
    #[error("cannot read the store {path}")]
    ReadBack {
        /// The store.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The demo's directory holds a config or store the demo did not write.
    #[error(
        "{dir} already holds {what}, which the demo did not write; the demo will not overwrite it or pour simulated alerts into it"
    )]
    NotTheDemos {
        /// The directory.
        dir: PathBuf,
        /// What is there.
        what: String,
    },
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

impl From<EnvError> for Error {
    fn from(e: EnvError) -> Self {
        match e {
            EnvError::Config(c) => Error::Config(c),
            EnvError::Https(h) => Error::Https(h),
            EnvError::SignIn(a) => Error::from(a),
        }
    }
}

impl From<AuthError> for Error {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Config(c) => Error::Config(c),
            other => Error::SignIn(other),
        }
    }
}

impl Error {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }

    /// The process's exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => EXIT_CONFIG,
            _ => EXIT_FAILED,
        }
    }

    /// What to do about it, when the error knows: printed once, as `fix: …`, after the error.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Config(c) => Some(c.fix.clone()),
            Error::Store(e) => e.hint(),
            Error::Export(e) => e.hint(),
            Error::Import(e) => e.hint(),
            Error::Https(e) => Some(e.hint()),
            Error::SignIn(e) => e.hint(),
            Error::Signal { .. } | Error::Cron(_) => None,
            Error::ReadBack { .. } => {
                Some("set TMPDIR to a writable local directory with free space".into())
            }
            Error::NotTheDemos { .. } => Some("pass an empty or new directory with --dir".into()),
            Error::Io { .. } => None,
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

    fn unreadable_ca() -> crate::http::ClientError {
        crate::http::ClientError::CaRead {
            path: "/etc/ca.pem".into(),
            source: std::io::ErrorKind::NotFound.into(),
        }
    }

    fn config_error() -> ConfigError {
        ConfigError {
            file: None,
            key: "tenants".into(),
            problem: "missing".into(),
            fix: "add one".into(),
        }
    }

    /// A configuration error exits 78 however it arrives: directly, through the environment's
    /// setup, or through a sign-in's setup.
    #[test]
    fn a_wrapped_configuration_error_still_exits_78() {
        let c = config_error();
        assert_eq!(Error::from(c.clone()).exit_code(), EXIT_CONFIG);
        assert_eq!(
            Error::from(EnvError::Config(c.clone())).exit_code(),
            EXIT_CONFIG
        );
        assert_eq!(
            Error::from(EnvError::SignIn(AuthError::Config(c.clone()))).exit_code(),
            EXIT_CONFIG
        );
        // The fix is the hint, said once by `main`, not part of the message.
        let e = Error::from(AuthError::Config(c));
        assert_eq!(e.hint().as_deref(), Some("add one"));
        assert!(!e.to_string().contains("add one"), "{e}");
    }

    /// The errors that used to travel as "cannot set up HTTPS: …" text say what failed, exit 1,
    /// and keep their cause.
    #[test]
    fn each_failure_names_itself_not_https() {
        let signal = Error::Signal {
            name: "SIGTERM",
            source: std::io::ErrorKind::PermissionDenied.into(),
        };
        let read_back = Error::ReadBack {
            path: "/tmp/x/tenant0-mde.db".into(),
            source: rusqlite::Error::InvalidQuery,
        };
        let demo = Error::NotTheDemos {
            dir: "/srv".into(),
            what: "a store (/srv/alerts.db)".into(),
        };
        let temp = Error::io("cannot make a private temporary directory for the comparison")(
            std::io::ErrorKind::PermissionDenied.into(),
        );
        for e in [&signal, &read_back, &demo, &temp] {
            assert_eq!(e.exit_code(), EXIT_FAILED, "{e}");
            assert!(!e.to_string().contains("HTTPS"), "{e}");
        }
        assert_eq!(signal.to_string(), "cannot listen for SIGTERM");
        assert!(std::error::Error::source(&signal).is_some());
        assert!(
            read_back
                .to_string()
                .starts_with("cannot read the store /tmp/x/")
        );
        assert_eq!(
            demo.hint().as_deref(),
            Some("pass an empty or new directory with --dir")
        );
        let https = Error::from(EnvError::Https(unreadable_ca()));
        assert_eq!(
            crate::http::error_chain(&https),
            "cannot set up HTTPS: cannot read /etc/ca.pem: entity not found"
        );
        assert_eq!(https.exit_code(), EXIT_FAILED);
        assert!(https.hint().unwrap().contains("ca_file"));
    }

    /// A fix is said once, by `hint()`, never inside the message: `main` prints it after the
    /// error as `fix: …`, and a message with a fix of its own would say it twice.
    #[test]
    fn no_error_says_its_fix_in_its_message() {
        let store = |e: StoreError| Error::from(e);
        let errors = [
            Error::from(config_error()),
            store(StoreError::Open {
                path: "/s.db".into(),
                reason: "not a database".into(),
                fix: "restore a backup".into(),
            }),
            store(StoreError::Disk {
                path: "/s.db".into(),
                reason: "disk full".into(),
            }),
            store(StoreError::Busy {
                path: "/s.db".into(),
                holder: "pid 7".into(),
                waited_secs: 5,
            }),
            Error::from(ImportError::Store(StoreError::Disk {
                path: "/s.db".into(),
                reason: "disk full".into(),
            })),
            Error::from(ExportError::Store(StoreError::Busy {
                path: "/s.db".into(),
                holder: "pid 7".into(),
                waited_secs: 5,
            })),
            Error::NotTheDemos {
                dir: "/srv".into(),
                what: "a store".into(),
            },
            Error::Https(unreadable_ca()),
        ];
        for e in &errors {
            let text = crate::http::error_chain(e).to_lowercase();
            assert!(!text.contains("fix:"), "{text}");
            assert!(e.hint().is_some(), "{e} has no fix");
        }
    }

    #[test]
    fn a_closed_pipe_is_recognised_through_wrappers() {
        let e = Error::io("standard output")(std::io::ErrorKind::BrokenPipe.into());
        assert!(e.is_broken_pipe());
        let e = Error::io("standard output")(std::io::ErrorKind::NotFound.into());
        assert!(!e.is_broken_pipe());
        assert_eq!(e.exit_code(), EXIT_FAILED);
    }

    /// A fix is said one way: as a hint (`fix: …` after the error), never as a sentence inside an
    /// error's or a warning's text, where a log line, `status` and the command's output would
    /// each say it differently, or twice. Only the places that print a hint may write `fix:`.
    #[test]
    fn no_message_carries_its_fix_inside() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![root];
        let mut found = Vec::new();
        while let Some(p) = files.pop() {
            if p.is_dir() {
                files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if p.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                // A file's tests assert on messages; they are not messages.
                if line == "#[cfg(test)]" {
                    break;
                }
                if code.starts_with("//") {
                    continue;
                }
                // `Fix:` or `fix:` inside a string literal (after an odd number of quotes) that
                // is not a printed hint.
                let in_literal = |word: &str| {
                    code.match_indices(word)
                        .any(|(i, _)| code[..i].matches('"').count() % 2 == 1)
                };
                let inline = (in_literal("Fix:") || in_literal("fix: ")) && !prints_a_hint(code);
                if inline {
                    found.push(format!("{}:{}: {}", p.display(), n + 1, code));
                }
            }
        }
        assert!(
            found.is_empty(),
            "a fix inside a message:\n{}",
            found.join("\n")
        );
    }

    /// A line that prints (or joins for a one-line sink) an error or warning and its hint.
    fn prints_a_hint(line: &str) -> bool {
        [
            "\"  fix: ",
            "\\n  fix: {}",
            "{e}\\n  fix: {fix}",
            "FIX_MARK",
        ]
        .iter()
        .any(|p| line.contains(p))
    }
}
