//! Probing the export directories before a poll spends API calls: each one is created if need be
//! and must take a new file, written the way exports write them (a temp file with our prefix).

use std::path::Path;

use crate::config::{Config, ConfigError};

/// What the probe does with an export directory that does not exist yet.
#[derive(Clone, Copy)]
enum Missing {
    /// Make it: the command will write into it now.
    Create,
    /// Only check that it could be made. `config check` is often run with sudo: a directory it
    /// made would belong to root, and the service could not write there.
    Leave,
}

/// Checks that every export directory exists (creating it) and can be written, so that a poll
/// does not fail on it after spending API calls. Called by the commands that write exports, not
/// by `status`, which a read-only user may run.
pub fn check_export_dirs(config: &Config) -> Result<(), ConfigError> {
    check(config, Missing::Create)
}

/// [`check_export_dirs`] without creating anything: for `config check`.
pub fn check_export_dirs_could_be_made(config: &Config) -> Result<(), ConfigError> {
    check(config, Missing::Leave)
}

fn check(config: &Config, missing: Missing) -> Result<(), ConfigError> {
    for (i, e) in config.exports.iter().enumerate() {
        if let Err((problem, fix)) = probe(&e.dir, missing) {
            return Err(
                ConfigError::new(format!("exports[{i}].dir"), problem, fix).in_file(&config.path)
            );
        }
    }
    Ok(())
}

const WRITE_FIX: &str = "give the service's user write access to it (the systemd unit's export directory under /var/lib/mde-alerts is), or choose another dir";

fn probe(dir: &Path, missing: Missing) -> Result<(), (String, &'static str)> {
    let not_a_dir = |p: &Path| {
        // A stray file may be moved; a device (`/dev/null`) or anything else is not the admin's
        // to move.
        let regular = std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
        (
            format!("{} exists and is not a directory", p.display()),
            if regular {
                "point dir at a directory (it is created if missing), or move that file away"
            } else {
                "point dir at a directory (it is created if missing)"
            },
        )
    };
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Err(not_a_dir(dir)),
        Ok(_) => try_a_file(dir),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            // The first part of the path that exists decides whether the rest can be made.
            let base = dir.ancestors().skip(1).find(|a| a.exists());
            if let Some(base) = base.filter(|b| !b.is_dir()) {
                return Err(not_a_dir(base));
            }
            match (missing, base) {
                (Missing::Create, _) => match std::fs::create_dir_all(dir) {
                    Ok(()) => try_a_file(dir),
                    Err(err) => Err((
                        format!("{} cannot be created: {err}", dir.display()),
                        WRITE_FIX,
                    )),
                },
                (Missing::Leave, None) => Ok(()),
                (Missing::Leave, Some(base)) => {
                    use nix::unistd::{AccessFlags, access};
                    access(base, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|err| {
                        (
                            format!(
                                "{} does not exist and cannot be created in {}: {err}",
                                dir.display(),
                                base.display()
                            ),
                            WRITE_FIX,
                        )
                    })
                }
            }
        }
        Err(err) => Err((
            format!("{} cannot be read: {err}", dir.display()),
            WRITE_FIX,
        )),
    }
}

/// Creates and removes a temp file, named as an export's would be.
fn try_a_file(dir: &Path) -> Result<(), (String, &'static str)> {
    tempfile::Builder::new()
        .prefix(&format!("{}{}-", super::TEMP_PREFIX, std::process::id()))
        .tempfile_in(dir)
        .map(drop)
        .map_err(|err| {
            (
                format!("{} cannot be written: {err}", dir.display()),
                WRITE_FIX,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file where the directory should be is named as such, not as "File exists".
    #[test]
    fn a_file_in_place_of_the_directory_is_named_as_such() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("exports");
        std::fs::write(&f, "").unwrap();
        for m in [Missing::Create, Missing::Leave] {
            let (problem, fix) = probe(&f, m).unwrap_err();
            assert!(
                problem.ends_with("exists and is not a directory"),
                "{problem}"
            );
            assert!(fix.contains("move that file away"), "{fix}");
            let (problem, _) = probe(&f.join("sub"), m).unwrap_err();
            assert!(problem.contains("is not a directory"), "{problem}");
        }
    }

    /// A device is not a file to move away.
    #[test]
    fn a_device_in_place_of_the_directory_is_not_to_be_moved() {
        for m in [Missing::Create, Missing::Leave] {
            for p in ["/dev/null", "/dev/null/exports"] {
                let (problem, fix) = probe(Path::new(p), m).unwrap_err();
                assert!(
                    problem.starts_with("/dev/null exists and is not a directory"),
                    "{problem}"
                );
                assert!(!fix.contains("move"), "{fix}");
            }
        }
    }

    /// `config check` leaves a missing directory to the service, which makes it its own.
    #[test]
    fn a_missing_directory_is_made_only_by_a_command_that_writes() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("a").join("b");
        probe(&dir, Missing::Leave).unwrap();
        assert!(!dir.exists());
        probe(&dir, Missing::Create).unwrap();
        assert!(dir.is_dir());
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "the probe's file is removed: {left:?}");
    }
}
