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
use crate::config::{Config, ConfigError, TenantConfig};
use crate::poll::PollSettings;
use crate::source::mde::MdeSource;

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
    settings: PollSettings,
    quotas: (u32, u32),
    expand_evidence: bool,
}

/// One tenant's long-lived pieces.
#[derive(Debug, Clone)]
pub struct TenantEnv {
    /// The tenant's settings.
    pub cfg: TenantConfig,
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
            settings: PollSettings {
                overlap: config.poll.overlap,
                initial_lookback: config.poll.initial_lookback,
                page_size: config.poll.page_size,
            },
            quotas: (config.poll.calls_per_minute, config.poll.calls_per_hour),
            expand_evidence: config.poll.expand_evidence,
        })
    }

    /// The HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// How a poll pages.
    pub fn poll_settings(&self) -> PollSettings {
        self.settings
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

    /// A tenant's API budget of the configured quotas; `history` is the calls the store recorded
    /// in the last hour, so that the budget outlives the process.
    pub fn budget(&self, history: Vec<SystemTime>) -> Arc<Budget> {
        Arc::new(Budget::new(self.quotas.0, self.quotas.1, history))
    }

    /// The source that reads `tenant`'s alerts, giving up on waits past `deadline`.
    pub fn source(&self, tenant: &TenantEnv, deadline: Option<tokio::time::Instant>) -> MdeSource {
        MdeSource::new(
            self.http.clone(),
            &tenant.cfg.api_url,
            tenant.tokens.clone(),
            self.expand_evidence,
            tenant.budget.clone(),
        )
        .with_deadline(deadline)
    }
}

/// A tenant's token provider on `http` (see [`Environment::tokens`]; the service, which keeps its
/// own client across reloads, reaches it through `app::token_provider`).
pub fn tokens(
    http: &reqwest::Client,
    t: &TenantConfig,
    config: &Config,
) -> Result<Arc<TokenProvider>, EnvError> {
    TokenProvider::new(http.clone(), t)
        .map(Arc::new)
        .map_err(|e| match e {
            AuthError::Config(c) => EnvError::Config(c.in_file_of(config)),
            other => EnvError::Http(other.to_string()),
        })
}
