//! What `config check`, `poll` and the service check before they start, beyond a file that loads:
//! every secret readable, certificates that load, no placeholder left from the example, a store
//! and export directories this user can write. It sits above the config, auth and export
//! modules, which each own one of these checks, so that none of them needs the others.

mod service_user;

use std::path::Path;

use crate::config::{AuthMethod, Config, ConfigError, SecretSource, TenantConfig};

impl TenantConfig {
    /// Reads every secret this tenant's sign-in needs (to check they are readable).
    pub(crate) fn check_secrets(&self) -> Result<(), ConfigError> {
        match &self.auth {
            AuthMethod::ClientSecret(src) => src.read().map(drop),
            AuthMethod::Certificate { .. } => crate::auth::cert::Credential::load(self).map(drop),
            AuthMethod::Password {
                password,
                client_secret,
                ..
            } => {
                password.read()?;
                client_secret
                    .as_ref()
                    .map(SecretSource::read)
                    .transpose()
                    .map(drop)
            }
        }
    }
}

impl Config {
    /// What the service's user (the unit's `User=`) could not read or write of what this config
    /// names, one warning each, when that user exists here and is not the one running this.
    /// Also each file of the config that accounts other than its owner may change: whoever can
    /// edit it can point `login_url` at a server of their own and be sent the secret.
    pub fn service_user_warnings(&self) -> Vec<crate::config::Warning> {
        let mut out = service_user::Account::of_service()
            .map(|a| service_user::warnings(self, &a))
            .unwrap_or_default();
        let mut files: Vec<&Path> = std::iter::once(self.path.as_path())
            .chain(self.tenants.iter().map(|t| t.file()))
            .collect();
        files.sort();
        files.dedup();
        for f in files {
            use std::os::unix::fs::PermissionsExt;
            let Ok(meta) = std::fs::metadata(f) else {
                continue;
            };
            let mode = meta.permissions().mode();
            if mode & 0o022 != 0 {
                out.push(crate::config::Warning::new(
                    format!(
                        "{} may be changed by {} (mode {:04o}): whoever can edit it can send the tenants' secrets to a server of their own (login_url)",
                        f.display(),
                        if mode & 0o002 != 0 { "every account" } else { "its group" },
                        mode & 0o7777
                    ),
                    format!("chmod go-w {} (the package installs the config 0640, owner root, group mde-alerts)", f.display()),
                ));
            }
        }
        out
    }

    /// What `config check` adds to loading: everything a poll or the service needs that a valid
    /// file does not prove, checked without calling Microsoft, so that "ok" means a poll will not
    /// refuse to start: no placeholder IDs left from the example, every secret readable (and not
    /// a Secret ID), the HTTPS client buildable (its proxy URL, its CA file), the store's
    /// directory usable and every export directory writable.
    pub fn check_ready(&self) -> Result<(), ConfigError> {
        for t in &self.tenants {
            t.check_ids_filled()?;
            t.check_secrets().map_err(|e| t.in_its_file(e))?;
        }
        // The HTTPS client, as `poll` will build it: a proxy URL reqwest refuses or a CA file TLS
        // cannot read is found here, not at the first poll.
        crate::http::client(self.poll.request_timeout, &self.http).map_err(|e| {
            use crate::http::ClientError;
            let key = match &e {
                ClientError::Proxy { .. } => "http.proxy",
                ClientError::Build { ca_file: None, .. } => "http",
                _ => "http.ca_file",
            };
            ConfigError::new(key, crate::http::error_chain(&e), e.hint()).in_file(&self.path)
        })?;
        check_store_dir(self)?;
        check_metrics_textfile(self)?;
        crate::export::check_export_dirs_could_be_made(self)
    }
}

/// Checks that `[metrics] textfile` can be written where it says: a poll only logs a warning
/// when it cannot, and Prometheus then sees no data with no one told.
fn check_metrics_textfile(config: &Config) -> Result<(), ConfigError> {
    let Some(file) = &config.metrics_textfile else {
        return Ok(());
    };
    let err = |problem: String| {
        ConfigError::new(
            "metrics.textfile",
            problem,
            "name a .prom file in node_exporter's --collector.textfile.directory, and add that directory to the unit's ReadWritePaths=",
        )
        .in_file(&config.path)
    };
    if std::fs::metadata(file).is_ok_and(|m| !m.is_file()) {
        return Err(err(format!(
            "{} exists and is not a regular file",
            file.display()
        )));
    }
    let dir = crate::export::atomic::parent(file);
    if !dir.is_dir() {
        return Err(err(format!(
            "the directory {} does not exist",
            dir.display()
        )));
    }
    Ok(())
}

/// Checks that the store can be created or written where `[store] path` says, as `poll` will
/// need: its directory exists and takes new files (SQLite adds `-wal` and `-shm` beside it), and
/// an existing store is a regular file this user may write.
pub(crate) fn check_store_dir(config: &Config) -> Result<(), ConfigError> {
    let path = &config.store.path;
    let err = |problem: String, fix: &str| {
        ConfigError::new("store.path", problem, fix).in_file(&config.path)
    };
    let dir = crate::export::atomic::parent(path);
    if !dir.is_dir() {
        return Err(err(
            format!("the directory {} does not exist", dir.display()),
            "create it (the systemd unit's StateDirectory= does this), or change [store] path",
        ));
    }
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Err(err(
                format!("{} exists and is not a regular file", path.display()),
                "point [store] path at a file name (the store is created on the first poll)",
            ));
        }
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            return Err(err(
                format!(
                    "the store {} cannot be written by this user: {e}",
                    path.display()
                ),
                "run as the service's user, or give it write access to the store",
            ));
        }
    }
    if let Err(e) = tempfile::Builder::new()
        .prefix(".mde-alerts-check-")
        .tempfile_in(dir)
    {
        return Err(err(
            format!(
                "{} does not take new files for this user ({e}); SQLite needs to create its -wal and -shm files there",
                dir.display()
            ),
            "give the service's user write access to the directory (the unit's StateDirectory=), or change [store] path",
        ));
    }
    Ok(())
}
