//! Where a tenant's secrets come from, and reading them. Secrets are not read while loading: they
//! are read on demand ([`SecretSource::read`], through the checks in `preflight`), so that `export`
//! and `import`, which never talk to Microsoft, work for a user who cannot read the secret.

use std::fmt;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::error::ConfigError;
use super::files::read_key_file;
use super::validate::is_guid;

/// Where a secret comes from. The secret itself is only read by [`SecretSource::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SecretSource {
    /// An environment variable of this name.
    Env {
        /// The config key that named it.
        key: String,
        /// The variable's name.
        var: String,
    },
    /// A file holding only the secret (a trailing newline is ignored).
    File {
        /// The config key that named it.
        key: String,
        /// The file.
        path: PathBuf,
    },
    /// A systemd credential (`LoadCredential=`), read from `$CREDENTIALS_DIRECTORY/<name>`.
    Credential {
        /// The credential's name.
        name: String,
        /// The key to mention when it is missing.
        key: String,
    },
}

impl SecretSource {
    /// Reads the secret. Errors name the config key that pointed at it.
    pub(crate) fn read(&self) -> Result<SecretString, ConfigError> {
        let value = match self {
            SecretSource::Env { key, var } => std::env::var(var).map_err(|_| {
                let what = if key.contains("password") {
                    "the password"
                } else {
                    "the client secret's value"
                };
                let file_key = key.rsplit('.').next().unwrap_or(key).replace("_env", "_file");
                if shown_name(var) {
                    ConfigError::new(
                        key.clone(),
                        format!("the environment variable {var} is not set (or not valid UTF-8)"),
                        format!("export {var}=<{what}>, or use {file_key}"),
                    )
                } else {
                    ConfigError::new(
                        key.clone(),
                        "names an environment variable that is not set (the name is not shown: it is not in capitals, so it may be the secret itself)",
                        format!(
                            "write the name of a variable holding {what} (e.g. MDE_ALERTS_PASSWORD) and export it, or use {file_key}"
                        ),
                    )
                }
            })?,
            SecretSource::File { key, path } => read_secret_file(key, path)?,
            SecretSource::Credential { name, key } => {
                // Under systemd the credential; by hand (`sudo -u mde-alerts MDE_ALERTS_CLIENT_SECRET=…
                // mde-alerts auth check`) the variable: one config serves both.
                let var = credential_variable(name);
                match std::env::var_os("CREDENTIALS_DIRECTORY") {
                    // systemd made this file for the service alone: its mode is not the admin's.
                    Some(dir) => {
                        let path = Path::new(&dir).join(name);
                        utf8_secret(key, &path, read_key_file(key, &path, "credential")?)?
                    }
                    None => std::env::var(var).map_err(|_| {
                        let what = if name == "password" {
                            "no password is configured"
                        } else if name == "mail_password" {
                            "no mail password is configured"
                        } else {
                            "no client secret is configured"
                        };
                        let base = key
                            .rsplit('.')
                            .next()
                            .unwrap_or(key)
                            .trim_end_matches("_env");
                        ConfigError::new(
                            key.clone(),
                            what,
                            format!(
                                "by hand, export {var}=<the value>; under systemd, pass the credential `{name}` with LoadCredential= (the packaged unit does); or set {base}_env or {base}_file"
                            ),
                        )
                    })?,
                }
            }
        };
        let trimmed = value.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            let fix = if self.key().contains("password") {
                "put the password there"
            } else {
                "put the client secret's value (not its ID) there"
            };
            return Err(ConfigError::new(self.key(), "the secret is empty", fix));
        }
        // Entra shows two columns for a secret: "Value" (once, at creation) and "Secret ID", a
        // GUID. A secret value is never GUID-shaped, so this is the usual copy-paste mistake;
        // saying so here beats Entra's AADSTS7000215 after a round trip.
        if self.key().contains("client_secret") && is_guid(trimmed.trim()) {
            return Err(ConfigError::new(
                self.key(),
                "this looks like the Secret ID (a GUID), not the secret's Value (the value is not shown)",
                "in the Entra admin center, App registrations > your app > Certificates & secrets, copy the \
                 Value column, not the Secret ID; the Value is shown only right after the secret is created, \
                 so create a new secret if it is no longer shown",
            ));
        }
        // A secret Entra makes is letters, digits and `~._-`: quotes or spaces around one are
        // the shell's or an editor's, and Entra would answer only "invalid client secret".
        if self.key().contains("client_secret") {
            let quoted = trimmed.len() >= 2
                && [('"', '"'), ('\'', '\'')]
                    .iter()
                    .any(|(a, b)| trimmed.starts_with(*a) && trimmed.ends_with(*b));
            if quoted || trimmed.trim() != trimmed {
                return Err(ConfigError::new(
                    self.key(),
                    if quoted {
                        "the secret is in quotes (the value is not shown)"
                    } else {
                        "the secret has spaces or tabs around it (the value is not shown)"
                    },
                    "give the secret's Value alone: Entra's secret values have no quotes or spaces",
                ));
            }
        }
        Ok(SecretString::from(trimmed.to_owned()))
    }

    fn key(&self) -> String {
        match self {
            SecretSource::Env { key, .. }
            | SecretSource::File { key, .. }
            | SecretSource::Credential { key, .. } => key.clone(),
        }
    }
}

/// The environment variable that stands in for credential `name` outside systemd.
pub(crate) fn credential_variable(name: &str) -> &'static str {
    match name {
        "password" => "MDE_ALERTS_PASSWORD",
        "mail_password" => "MDE_ALERTS_MAIL_PASSWORD",
        _ => "MDE_ALERTS_CLIENT_SECRET",
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env { var, .. } if shown_name(var) => {
                write!(f, "environment variable {var}")
            }
            SecretSource::Env { .. } => write!(
                f,
                "an environment variable (its name is not shown: not in capitals, it may be the secret itself)"
            ),
            SecretSource::File { path, .. } if path.exists() => {
                write!(f, "file {}", path.display())
            }
            // A path to nothing may be a secret pasted in place of a path: not shown.
            SecretSource::File { .. } => write!(
                f,
                "a file that does not exist (its path is not shown, in case it is the secret itself)"
            ),
            SecretSource::Credential { name, .. } => {
                write!(
                    f,
                    "systemd credential {name} ($CREDENTIALS_DIRECTORY/{name}), or by hand the environment variable {}",
                    credential_variable(name)
                )
            }
        }
    }
}

/// Whether an environment variable's name may be shown: names are conventionally in capitals
/// (`MDE_ALERTS_CLIENT_SECRET`); anything else in a `*_env` key may be a pasted password
/// (`Welcome_2024`), so it is never echoed.
fn shown_name(var: &str) -> bool {
    var.chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// What to do about a file holding a secret that the wrong accounts can read, or the service's
/// account cannot: one answer wherever it is said (`config check` as root, a poll's warning).
pub(crate) const SECRET_FILE_FIX: &str = "chown it to the service's user and chmod 0600, or leave the key out and pass the secret as a systemd credential (LoadCredential=, see the README)";

/// Warns when a file holding a secret may be read by others than its owner: once per file and
/// process, however many tenants share the file or how often it is read (forty tenants of one app
/// made forty identical lines).
pub(crate) fn warn_if_shared(key: &str, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    static WARNED: std::sync::Mutex<Option<std::collections::HashSet<PathBuf>>> =
        std::sync::Mutex::new(None);
    // Only regular files: anything else is refused when read, with its own message.
    if let Some(meta) = std::fs::metadata(path).ok().filter(|m| m.is_file()) {
        let mode = meta.permissions().mode() & 0o777;
        let first = || {
            WARNED
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(Default::default)
                .insert(path.to_path_buf())
        };
        if mode & 0o077 != 0 && first() {
            tracing::warn!(
                key,
                file = %path.display(),
                mode = format!("{mode:o}"),
                fix = SECRET_FILE_FIX,
                "This secret file may be read by group or others."
            );
        }
    }
}

fn read_secret_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    warn_if_shared(key, path);
    let bytes = read_key_file(key, path, "secret file")?;
    utf8_secret(key, path, bytes)
}

fn utf8_secret(key: &str, path: &Path, bytes: Vec<u8>) -> Result<String, ConfigError> {
    String::from_utf8(bytes).map_err(|_| {
        ConfigError::new(
            key,
            format!("the secret file {} is not UTF-8 text", path.display()),
            "write only the secret's value into it, as plain text",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Quotes or spaces around a client secret are found here, not by Entra after a round trip;
    /// a password may have them.
    #[test]
    fn a_quoted_or_padded_client_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let read = |key: &str, value: &str| {
            let path = dir.path().join("s");
            std::fs::write(&path, value).unwrap();
            // Owner-only: a warning from this test's thread would settle the callsite's interest
            // while `a_shared_secret_file_is_warned_about_once` captures it on another.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            SecretSource::File {
                key: key.into(),
                path,
            }
            .read()
        };
        for (value, says) in [
            ("\"abc8Q~secret\"", "in quotes"),
            ("'abc8Q~secret'", "in quotes"),
            ("abc8Q~secret \n", "spaces"),
            ("\tabc8Q~secret", "spaces"),
        ] {
            let e = read("tenants[0].client_secret_file", value).unwrap_err();
            assert!(e.problem.contains(says), "{value:?}: {e}");
            assert!(!e.to_string().contains("abc8Q"), "{e}");
        }
        read("tenants[0].client_secret_file", "abc8Q~secret\n").unwrap();
        read("tenants[0].password_file", " pass word ").unwrap();
    }

    /// Forty tenants of one app share one secret file: one warning, not forty.
    #[test]
    fn a_shared_secret_file_is_warned_about_once() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let lines = crate::tenant_poll::log_capture::info_lines(|| {
            for i in 0..40 {
                warn_if_shared(&format!("tenants[{i}].client_secret_file"), &f);
            }
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["fields"]["mode"], "644");
        assert_eq!(lines[0]["fields"]["fix"], SECRET_FILE_FIX);
    }
}
