//! `tenants_dir`: a directory of `*.toml` files, each holding only `[[tenants]]` blocks, so that a
//! managed-security provider's tooling can drop one file per customer beside the main config.
//!
//! The rules, chosen to match what admins know from `conf.d` directories: every regular `*.toml`
//! file directly in the directory is read, in the byte order of the names; dot-files (editors'
//! lock and swap files such as `.#contoso.toml`), other extensions and subdirectories are ignored.
//! A file that holds anything but `[[tenants]]` is an error naming that file and the key, as is
//! any error inside a block (`tenants[2].client_id` in `contoso.toml`). Each file is read through
//! the same capped, regular-files-only reader as the main config (a FIFO cannot hang a reload).
//!
//! This module only finds and parses the files; the blocks are validated by `validate`, like the
//! main file's, with relative paths taken from the tenants file's own directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Table;

use super::error::{self, ConfigError};
use super::files::{CONFIG_FILE_CAP, SmallFileError, read_small_file};
use super::raw::RawTenant;

/// One file of `tenants_dir` as written: only `[[tenants]]` (the blocks' keys are
/// [`RawTenant`]'s, the one place they are listed).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawTenantsFile {
    tenants: Vec<RawTenant>,
}

/// The `*.toml` files directly in `dir`, sorted by name. `main` is the config file that named
/// the directory, for errors about the directory itself.
pub(crate) fn list(dir: &Path, main: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let shown = dir.display();
    let err =
        |problem: String, fix: String| ConfigError::new("tenants_dir", problem, fix).in_file(main);
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => err(
            format!("the directory {shown} does not exist"),
            format!(
                "create it (mkdir -p {shown}) and put one *.toml file of [[tenants]] blocks per customer in it, or remove tenants_dir"
            ),
        ),
        std::io::ErrorKind::NotADirectory => err(
            format!("{shown} is a file, not a directory"),
            "point tenants_dir at a directory of *.toml files, each holding [[tenants]] blocks"
                .into(),
        ),
        std::io::ErrorKind::PermissionDenied => err(
            format!("cannot list the directory {shown}: {e}"),
            "let the service's user read and enter it (e.g. chmod 0750 and the service's group)"
                .into(),
        ),
        _ => err(
            format!("cannot list the directory {shown}: {e}"),
            "check the path and its permissions".into(),
        ),
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            err(
                format!("cannot list the directory {shown}: {e}"),
                "check the directory's permissions and file system".into(),
            )
        })?;
        let name = entry.file_name();
        let bytes = name.as_encoded_bytes();
        if bytes.starts_with(b".") || !bytes.ends_with(b".toml") {
            continue;
        }
        // Subdirectories are not walked; a symbolic link is followed to see what it points at.
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_symlink() => entry.path().is_dir(),
            Ok(t) => t.is_dir(),
            Err(_) => false,
        };
        if !is_dir {
            files.push(entry.path());
        }
    }
    files.sort_unstable_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// The `[[tenants]]` blocks of one file; errors are not yet tied to the file.
pub(crate) fn read_file(path: &Path) -> Result<Vec<RawTenant>, ConfigError> {
    let bytes = read_small_file(path, CONFIG_FILE_CAP).map_err(|e| {
        let fix = match &e {
            SmallFileError::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                "let the service's user read it (e.g. chmod 0640 and the service's group)"
            }
            SmallFileError::Io(_) => "check the file and its permissions",
            SmallFileError::NotRegular(_) => {
                "put only regular files of [[tenants]] blocks in tenants_dir"
            }
            SmallFileError::TooLarge(_) => {
                "split the file: one file per customer holds a few [[tenants]] blocks"
            }
        };
        ConfigError::new("(file)", format!("cannot read this tenants file: {e}"), fix)
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        ConfigError::new(
            "(file)",
            format!(
                "the tenants file is not UTF-8 text (at byte {})",
                e.utf8_error().valid_up_to()
            ),
            "save it as UTF-8",
        )
    })?;
    parse(text.trim_start_matches('\u{feff}'))
}

/// Parses a tenants file's text.
pub(crate) fn parse(text: &str) -> Result<Vec<RawTenant>, ConfigError> {
    let table: Table = text.parse().map_err(|e| error::syntax(&e))?;
    let raw: RawTenantsFile = serde_path_to_error::deserialize(table).map_err(|e| {
        let mut e = error::from_serde(e);
        // A key outside the blocks: the file may hold nothing else, whatever it is close to.
        if e.problem == "unknown key" && !e.key.contains(['.', '[']) {
            e.fix = format!(
                "a file in tenants_dir holds only [[tenants]] blocks: remove `{}` (or move it to the main config)",
                e.key
            );
        }
        e
    })?;
    Ok(raw.tenants)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, ConfigError};

    const MAIN: &str = "tenants_dir = \"tenants.d\"\n[store]\npath = \"alerts.db\"\n";

    fn block(name: &str) -> String {
        format!(
            "[[tenants]]\nname = \"{name}\"\ntenant_id = \"{name}.onmicrosoft.com\"\n\
             client_id = \"11111111-2222-3333-4444-555555555555\"\nclient_secret_file = \"secrets/{name}\"\n"
        )
    }

    /// A config directory with `main` as config.toml and `files` in `tenants.d`.
    fn setup(main: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.toml"), main).unwrap();
        std::fs::create_dir(dir.path().join("tenants.d")).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join("tenants.d").join(name), text).unwrap();
        }
        dir
    }

    fn load(dir: &tempfile::TempDir) -> Result<Config, ConfigError> {
        Config::load(&dir.path().join("config.toml"))
    }

    fn file_name(e: &ConfigError) -> String {
        e.file
            .as_ref()
            .and_then(|f| f.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    #[test]
    fn tenants_come_from_the_config_then_the_files_in_name_order() {
        let main = format!("{MAIN}{}", block("inline"));
        let dir = setup(
            &main,
            &[
                ("b.toml", &format!("{}{}", block("b1"), block("b2"))),
                ("a.toml", &block("a")),
                ("empty.toml", ""),
                (".#c.toml", &block("lock")),
                ("d.toml.bak", &block("backup")),
                ("README", "not toml"),
            ],
        );
        std::fs::create_dir(dir.path().join("tenants.d/sub.toml")).unwrap();
        let c = load(&dir).unwrap();
        let names: Vec<_> = c.tenants.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["inline", "a", "b1", "b2"]);
        let d = dir.path().join("tenants.d");
        assert_eq!(c.tenants_dir.as_deref(), Some(d.as_path()));
        assert_eq!(c.tenants[0].file, dir.path().join("config.toml"));
        assert_eq!(c.tenants[3].file, d.join("b.toml"));
        assert_eq!(c.tenants[3].key_prefix, "tenants[1]");
        // A tenants file's relative paths are taken from its own directory.
        let crate::config::AuthMethod::ClientSecret(crate::config::SecretSource::File {
            path, ..
        }) = &c.tenants[1].auth
        else {
            panic!("{:?}", c.tenants[1].auth)
        };
        assert_eq!(path, &d.join("secrets/a"));
        let shown = c.to_string();
        assert!(
            shown.contains("tenants: 4 in total: 1 in the config, 3 from 2 file(s) in"),
            "{shown}"
        );
    }

    #[test]
    fn an_error_in_a_tenants_file_names_that_file_and_the_key() {
        let bad_id = block("b").replace("11111111-2222", "not-a-guid");
        let typo = block("t").replace("client_secret_file", "client_secret_fil");
        for (text, key, says) in [
            (
                format!("{}{bad_id}", block("a")),
                "tenants[1].client_id",
                "is not a GUID",
            ),
            (
                typo,
                "tenants[0].client_secret_fil",
                "did you mean `client_secret_file`?",
            ),
            (
                format!("{}[poll]\npage_size = 5\n", block("p")),
                "poll",
                "holds only [[tenants]] blocks",
            ),
            (
                format!("tenants_dir = \"x\"\n{}", block("p")),
                "tenants_dir",
                "holds only [[tenants]] blocks",
            ),
            ("[[tenants]\nname = ".into(), "(syntax)", "line 1"),
            (
                "[tenants]\nname = \"x\"\n".into(),
                "tenants",
                "[[tenants]] blocks",
            ),
        ] {
            let dir = setup(MAIN, &[("a.toml", &block("ok")), ("contoso.toml", &text)]);
            let e = load(&dir).unwrap_err();
            assert_eq!(file_name(&e), "contoso.toml", "{e}");
            assert_eq!(e.key, key, "{e}");
            assert!(e.with_fix().contains(says), "{e}");
        }
    }

    #[test]
    fn names_are_unique_across_files_and_the_error_names_both() {
        let dir = setup(
            &format!("{MAIN}{}", block("dup")),
            &[("a.toml", &block("x")), ("b.toml", &block("dup"))],
        );
        let e = load(&dir).unwrap_err();
        assert_eq!(file_name(&e), "b.toml", "{e}");
        assert_eq!(e.key, "tenants[0].name");
        assert!(e.problem.contains("also by tenants[0] in"), "{e}");
        assert!(e.problem.contains("config.toml"), "{e}");
        let dir = setup(MAIN, &[("a.toml", &block("x")), ("b.toml", &block("x"))]);
        let e = load(&dir).unwrap_err();
        assert_eq!(file_name(&e), "b.toml", "{e}");
        assert!(e.problem.contains("a.toml"), "{e}");
    }

    #[test]
    fn the_directory_must_exist_and_hold_a_tenant_if_the_config_has_none() {
        let dir = setup(MAIN, &[]);
        let e = load(&dir).unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.problem.as_str()),
            ("tenants", "no tenant is configured")
        );
        assert!(e.fix.contains("tenants.d"), "{e}");
        // Without tenants_dir, the same error as before.
        let e = Config::parse("[store]\npath = \"a.db\"\n", Path::new("/x/c.toml")).unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.problem.as_str()),
            ("tenants", "no tenant is configured")
        );
        std::fs::remove_dir(dir.path().join("tenants.d")).unwrap();
        let e = load(&dir).unwrap_err();
        assert_eq!(
            (e.key.as_str(), file_name(&e).as_str()),
            ("tenants_dir", "config.toml")
        );
        assert!(e.problem.contains("does not exist"), "{e}");
        assert!(e.fix.contains("mkdir -p"), "{e}");
        std::fs::write(dir.path().join("tenants.d"), "").unwrap();
        let e = load(&dir).unwrap_err();
        assert_eq!(e.key, "tenants_dir");
        assert!(e.problem.contains("not a directory"), "{e}");
    }

    /// A file that cannot be read is named, with why; a FIFO does not hang the load.
    #[test]
    fn unreadable_tenants_files_are_named() {
        let dir = setup(MAIN, &[("a.toml", &block("a"))]);
        let d = dir.path().join("tenants.d");
        let fifo = std::ffi::CString::new(d.join("fifo.toml").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let e = load(&dir).unwrap_err();
        assert_eq!(
            (e.key.as_str(), file_name(&e).as_str()),
            ("(file)", "fifo.toml")
        );
        assert!(e.problem.contains("FIFO"), "{e}");
        std::fs::remove_file(d.join("fifo.toml")).unwrap();
        std::os::unix::fs::symlink(d.join("gone"), d.join("dangling.toml")).unwrap();
        let e = load(&dir).unwrap_err();
        assert_eq!(file_name(&e), "dangling.toml", "{e}");
        assert!(e.problem.contains("cannot read this tenants file"), "{e}");
        std::fs::remove_file(d.join("dangling.toml")).unwrap();
        std::fs::write(d.join("latin1.toml"), b"# caf\xe9\n").unwrap();
        let e = load(&dir).unwrap_err();
        assert_eq!(file_name(&e), "latin1.toml", "{e}");
        assert!(e.problem.contains("UTF-8"), "{e}");
    }

    /// A secret or certificate error found after loading (`config check`, `poll`) names the
    /// tenants file, not the main config.
    #[test]
    fn a_missing_secret_of_a_directory_tenant_names_its_file() {
        let text = block("a").replace(
            "client_secret_file = \"secrets/a\"",
            "client_secret_env = \"SURELY_UNSET_VAR_4712\"",
        );
        let dir = setup(MAIN, &[("contoso.toml", &text)]);
        let c = load(&dir).unwrap();
        let e = c.tenants[0]
            .check_secrets()
            .map_err(|e| c.tenants[0].in_its_file(e));
        let e = e.unwrap_err();
        assert_eq!(file_name(&e), "contoso.toml", "{e}");
        assert_eq!(e.key, "tenants[0].client_secret_env");
        let e = c.check_ready().unwrap_err();
        assert_eq!(file_name(&e), "contoso.toml", "{e}");
    }

    /// What a reload compares: a block moved to another file or position is the same tenant; a
    /// changed key, or a secret rotated in place, is not.
    #[test]
    fn a_moved_tenant_is_the_same_and_a_rotated_secret_is_not() {
        let inline = setup(&format!("{MAIN}{}", block("a")), &[]);
        let moved = setup(MAIN, &[("x.toml", &block("b")), ("y.toml", &block("a"))]);
        let a1 = (*load(&inline).unwrap().tenants[0]).clone();
        let a2 = (*load(&moved).unwrap().tenants[1]).clone();
        assert_ne!((&a1.file, &a1.key_prefix), (&a2.file, &a2.key_prefix));
        // The secret file's path differs too (each is relative to its own file): made equal.
        let mut a2 = a2;
        a2.auth = a1.auth.clone();
        assert!(a1.same_settings(&a2));
        let mut changed = a2.clone();
        changed.token_endpoint = crate::config::TokenEndpoint::V1;
        assert!(!a1.same_settings(&changed));

        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "Abc8Q~first-value\n").unwrap();
        let mut t = a1.clone();
        t.auth = crate::config::AuthMethod::ClientSecret(crate::config::SecretSource::File {
            key: "tenants[0].client_secret_file".into(),
            path: secret.clone(),
        });
        let provider = || {
            crate::auth::TokenProvider::new(
                reqwest::Client::new(),
                &t,
                crate::config::SourceKind::Mde,
            )
            .unwrap()
        };
        let first = provider();
        assert!(first.same_sign_in(&provider()));
        std::fs::write(&secret, "Abc8Q~rotated-value\n").unwrap();
        assert!(!first.same_sign_in(&provider()));
    }
}
