//! One wiring of what a run needs — the HTTP client, each tenant's token provider and API budget,
//! and the source that reads its alerts — so that `poll`, `auth check`, the demo and the service
//! build them the same way (three hand-made copies of this had started to drift).
//!
//! A tenant's token provider and budget live as long as its [`TenantEnv`]: the service keeps them
//! for the life of the process (one token per lifetime, a budget that remembers its calls); a
//! one-off command builds them once.

use std::sync::Arc;
use std::time::SystemTime;

use crate::auth::{AuthError, TokenProvider};
use crate::budget::Budget;
use crate::config::PollConfig;
use crate::config::{Config, ConfigError, SourceKind, TenantConfig};
use crate::poll::PollSettings;
use crate::source::client::ApiSource;

/// Why the pieces could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// A secret, key or certificate the config names cannot be used (exit 78).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP client or a token provider could not be built.
    #[error("cannot set up HTTPS: {0}")]
    Http(String),
}

/// The pieces every tenant of one config shares.
#[derive(Debug, Clone)]
pub struct Environment {
    http: reqwest::Client,
    poll: PollConfig,
}

/// One tenant's long-lived pieces.
#[derive(Debug, Clone)]
pub struct TenantEnv {
    /// The tenant's settings.
    pub cfg: Arc<TenantConfig>,
    /// Its tokens (cached, renewed at 80 % of their life).
    pub tokens: Arc<TokenProvider>,
    /// Its API budget (both quotas).
    pub budget: Arc<Budget>,
}

impl Environment {
    /// Builds the HTTP client (proxy, private CA, timeouts, no redirects) for `config`.
    pub fn new(config: &Config) -> Result<Environment, EnvError> {
        let http = crate::http::client(config.poll.request_timeout, &config.http)
            .map_err(EnvError::Http)?;
        Ok(Environment {
            http,
            poll: config.poll.clone(),
        })
    }

    /// How a poll of a tenant reading `source` pages (Graph's `$top` is at most 1,000).
    pub fn poll_settings(&self, source: SourceKind) -> PollSettings {
        PollSettings {
            overlap: self.poll.overlap,
            initial_lookback: self.poll.initial_lookback,
            page_size: self.poll.page_size(source),
        }
    }

    /// A tenant's token provider. A missing secret or a bad certificate is a configuration error
    /// (exit 78) naming the config file: built before anything else runs.
    pub fn tokens(
        &self,
        t: &TenantConfig,
        config: &Config,
    ) -> Result<Arc<TokenProvider>, EnvError> {
        tokens(&self.http, t, config)
    }

    /// A tenant's API budget of the quotas of the API it reads (Defender 100/min and 1,500/h,
    /// Graph 150/min, or the configured ones); `history` is the calls the store recorded in the
    /// last hour, so that the budget outlives the process.
    pub fn budget(&self, source: SourceKind, history: Vec<SystemTime>) -> Arc<Budget> {
        let (minute, hour) = self.poll.quotas(source);
        Arc::new(Budget::new(minute, hour, history))
    }

    /// The source that reads `tenant`'s alerts, giving up on waits past `deadline`.
    pub fn source(&self, tenant: &TenantEnv, deadline: Option<tokio::time::Instant>) -> ApiSource {
        source(&self.http, &self.poll, tenant).with_deadline(deadline)
    }
}

/// The source that reads `tenant`'s alerts through `http` (see [`Environment::source`]).
pub fn source(http: &reqwest::Client, poll: &PollConfig, tenant: &TenantEnv) -> ApiSource {
    match tenant.cfg.source {
        SourceKind::Mde => ApiSource::mde(
            http.clone(),
            &tenant.cfg.api_url,
            tenant.tokens.clone(),
            poll.expand_evidence,
            tenant.budget.clone(),
        ),
        SourceKind::Graph => ApiSource::graph(
            http.clone(),
            &tenant.cfg.graph_url,
            tenant.tokens.clone(),
            tenant.cfg.services.clone(),
            tenant.budget.clone(),
        ),
    }
}

/// A tenant's token provider on `http` (see [`Environment::tokens`]; the service, which keeps its
/// own client across reloads, reaches it through `app::token_provider`). A secret or certificate
/// error names the file the tenant's block is in (the config, or a file of `tenants_dir`), so
/// `_config` is no longer read; it stays until the callers being edited in parallel settle.
pub fn tokens(
    http: &reqwest::Client,
    t: &TenantConfig,
    _config: &Config,
) -> Result<Arc<TokenProvider>, EnvError> {
    TokenProvider::new(http.clone(), t)
        .map(Arc::new)
        .map_err(|e| match e {
            AuthError::Config(c) => EnvError::Config(t.in_its_file(c)),
            other => EnvError::Http(other.to_string()),
        })
}
