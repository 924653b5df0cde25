//! The commands' work, shared by the CLI, the demo and the tests: wiring config, tokens, source,
//! store and exports together. Errors stay typed here; only `main` turns them into exit codes.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::auth::{AuthError, TokenProvider};
use crate::config::{Config, ConfigError};
use crate::export::{ExportError, Written, run_export};
use crate::poll::{PollError, PollReport, PollSettings, poll_tenant};
use crate::source::mde::MdeSource;
use crate::store::{Store, StoreError};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The configuration is wrong (exit 78).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An export failed.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The HTTP client could not be built.
    #[error("cannot set up HTTPS: {0}")]
    Http(String),
}

impl From<AuthError> for AppError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Config(c) => AppError::Config(c),
            other => AppError::Http(other.to_string()),
        }
    }
}

/// The outcome of `poll` for every tenant.
#[derive(Debug, Default)]
pub struct PollSummary {
    /// Tenants that polled.
    pub ok: Vec<PollReport>,
    /// Tenants that failed, with why.
    pub failed: Vec<(String, PollError)>,
    /// Files written after the poll.
    pub exported: Vec<Written>,
}

/// Opens the configured store.
pub fn open_store(config: &Config) -> Result<Store, StoreError> {
    Store::open(&config.store.path)
}

/// One poll of each tenant (or of `only`), then the configured exports if `export` and at least one
/// tenant succeeded. A tenant's failure does not stop the others.
pub async fn poll(
    config: &Config,
    only: Option<&str>,
    export: bool,
) -> Result<PollSummary, AppError> {
    let tenants: Vec<_> = match only {
        Some(name) => vec![config.tenant(name)?],
        None => config.tenants.iter().collect(),
    };
    // Secrets first: a missing one is a configuration error, reported before anything runs.
    let http = crate::http::client(config.poll.request_timeout)
        .map_err(|e| AppError::Http(crate::auth::error_chain(&e)))?;
    let mut providers = Vec::new();
    for t in &tenants {
        let p = TokenProvider::new(http.clone(), t).map_err(|e| match e {
            AuthError::Config(c) => AppError::Config(c.in_file_of(config)),
            other => AppError::Http(other.to_string()),
        })?;
        providers.push(Arc::new(p));
    }
    let store = Arc::new(Mutex::new(open_store(config)?));
    let settings = PollSettings {
        overlap: config.poll.overlap,
        initial_lookback: config.poll.initial_lookback,
        page_size: config.poll.page_size,
    };
    let mut summary = PollSummary::default();
    for (t, tokens) in tenants.iter().zip(providers) {
        let source = MdeSource::new(
            http.clone(),
            &t.api_url,
            tokens,
            config.poll.expand_evidence,
        );
        match poll_tenant(&source, &store, &t.name, settings).await {
            Ok(r) => {
                tracing::info!(tenant = %t.name, new = r.counts.new, updated = r.counts.updated, unchanged = r.counts.unchanged, stale = r.counts.stale, invalid = r.counts.invalid, api_calls = r.api_calls, "Poll finished.");
                summary.ok.push(r);
            }
            Err(e) => {
                tracing::error!(tenant = %t.name, error = %e, "Poll failed; everything stored before the failure is kept.");
                summary.failed.push((t.name.clone(), e));
            }
        }
    }
    if export && !summary.ok.is_empty() && !config.exports.is_empty() {
        let store = store.clone();
        let exports = config.exports.clone();
        summary.exported = tokio::task::spawn_blocking(move || {
            let s = store.lock().unwrap_or_else(|p| p.into_inner());
            exports
                .iter()
                .map(|e| run_export(&s, e))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .expect("export task panicked")?;
    }
    Ok(summary)
}

/// Runs the configured exports (all, or the one called `name`).
pub fn export_configured(config: &Config, name: Option<&str>) -> Result<Vec<Written>, AppError> {
    let exports: Vec<_> = match name {
        None => config.exports.iter().collect(),
        Some(n) => {
            let e = config.exports.iter().find(|e| e.name == n).ok_or_else(|| {
                let names: Vec<_> = config.exports.iter().map(|e| e.name.as_str()).collect();
                ConfigError {
                    file: Some(config.path.clone()),
                    key: "--name".into(),
                    problem: format!("no export is called {n:?}"),
                    fix: if names.is_empty() {
                        "add an [[exports]] block to the config, or use --format and --out".into()
                    } else {
                        format!("use one of: {}", names.join(", "))
                    },
                }
            })?;
            vec![e]
        }
    };
    if exports.is_empty() {
        return Err(ConfigError {
            file: Some(config.path.clone()),
            key: "exports".into(),
            problem: "no export is configured".into(),
            fix: "add an [[exports]] block, or use `export --format csv --out FILE`".into(),
        }
        .into());
    }
    let store = open_store(config)?;
    Ok(exports
        .into_iter()
        .map(|e| run_export(&store, e))
        .collect::<Result<_, _>>()?)
}

/// Whether `path` is a store that exists (so that `export` does not create an empty one).
pub fn store_exists(path: &Path) -> bool {
    path.is_file()
}
