//! One wiring of what a run needs — the HTTP client, each tenant's token providers and API budgets,
//! and the source that reads its alerts — so that `poll`, `auth check`, `compare`, the demo and
//! the service build them the same way.
//!
//! A tenant has a [`Lane`] (tokens for one API's audience, that API's budget) for each API it may
//! read: an `auto` tenant has both, so that it can move from one to the other without a restart.
//! Lanes live as long as their [`TenantEnv`]: the service keeps them for the life of the process
//! (one token per lifetime, a budget that remembers its calls); a one-off command builds them once.

use std::sync::Arc;
use std::time::SystemTime;

use crate::auth::{AuthError, TokenProvider};
use crate::budget::Budget;
use crate::config::PollConfig;
use crate::config::{Config, ConfigError, SourceKind, TenantConfig};
use crate::poll::PollSettings;
use crate::source::client::ApiSource;
use crate::source::route::Route;

/// Why the pieces could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum EnvError {
    /// A secret, key or certificate the config names cannot be used (exit 78).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP client could not be built (proxy, private CA, TLS).
    #[error("cannot set up HTTPS")]
    Https(#[source] crate::http::ClientError),
    /// A tenant's token provider could not be built.
    #[error(transparent)]
    SignIn(AuthError),
}

/// The pieces every tenant of one config shares.
#[derive(Debug, Clone)]
pub(crate) struct Environment {
    http: reqwest::Client,
    poll: PollConfig,
}

/// What a tenant needs to read one API: tokens for that API's audience, and that API's budget.
#[derive(Debug, Clone)]
pub(crate) struct Lane {
    /// Its tokens (cached, renewed at 80 % of their life).
    pub(crate) tokens: Arc<TokenProvider>,
    /// Its API budget (both quotas).
    pub(crate) budget: Arc<Budget>,
}

/// One tenant's long-lived pieces.
#[derive(Debug, Clone)]
pub(crate) struct TenantEnv {
    /// The tenant's settings.
    pub(crate) cfg: Arc<TenantConfig>,
    /// Reading the MDE API, when the tenant may (`auto` or `mde`).
    pub(crate) mde: Option<Lane>,
    /// Reading Microsoft Graph, when the tenant may (`auto` or `graph`).
    pub(crate) graph: Option<Lane>,
    /// Which API it reads now, and why.
    pub(crate) route: Arc<Route>,
}

impl TenantEnv {
    /// The lane of `api`, when the tenant may read it.
    pub(crate) fn lane(&self, api: SourceKind) -> Option<&Lane> {
        match api {
            SourceKind::Mde => self.mde.as_ref(),
            SourceKind::Graph => self.graph.as_ref(),
        }
    }

    /// The lane of the API the tenant reads now (its last decision; Graph before any for `auto`).
    fn current_lane(&self) -> &Lane {
        self.lane(self.route.current())
            .or(self.graph.as_ref())
            .or(self.mde.as_ref())
            .expect("a tenant has a lane for at least one API")
    }

    /// When its current token expires (Unix seconds), for the metrics.
    pub(crate) fn token_expiry(&self) -> Option<i64> {
        self.current_lane().tokens.current_expiry()
    }
}

impl Environment {
    /// Builds the HTTP client (proxy, private CA, timeouts, no redirects) for `config`.
    pub(crate) fn new(config: &Config) -> Result<Environment, EnvError> {
        let http = crate::http::client(config.poll.request_timeout, &config.http)
            .map_err(EnvError::Https)?;
        Ok(Environment {
            http,
            poll: config.poll.clone(),
        })
    }

    /// How a poll of a tenant reading `source` pages (Graph's `$top` is at most 1,000).
    pub(crate) fn poll_settings(&self, source: SourceKind) -> PollSettings {
        poll_settings(&self.poll, source)
    }

    /// A tenant's pieces: a lane (tokens and budget) for each API it may read, and its route. A
    /// missing secret or a bad certificate is a configuration error (exit 78) naming the config
    /// file: built before anything else runs. `history` is the calls the store recorded in the
    /// last hour, so that the budget outlives the process.
    pub(crate) fn tenant(
        &self,
        t: &TenantConfig,
        history: Vec<SystemTime>,
    ) -> Result<TenantEnv, EnvError> {
        tenant(&self.http, &self.poll, t, history)
    }

    /// The source that reads `tenant`'s alerts from `api`, giving up at `deadline`; `None` when
    /// the tenant may not read `api`.
    pub(crate) fn source(
        &self,
        tenant: &TenantEnv,
        api: SourceKind,
        deadline: Option<tokio::time::Instant>,
    ) -> Option<ApiSource> {
        source(&self.http, &self.poll, tenant, api).map(|s| s.with_deadline(deadline))
    }
}

/// How a poll of a tenant reading `source` pages (see [`Environment::poll_settings`]).
fn poll_settings(poll: &PollConfig, source: SourceKind) -> PollSettings {
    PollSettings {
        overlap: poll.overlap,
        initial_lookback: poll.initial_lookback,
        page_size: poll.page_size(source),
    }
}

/// A tenant's pieces on `http` (see [`Environment::tenant`]).
fn tenant(
    http: &reqwest::Client,
    poll: &PollConfig,
    t: &TenantConfig,
    history: Vec<SystemTime>,
) -> Result<TenantEnv, EnvError> {
    t.check_ids_filled()?;
    let lane = |api: SourceKind| -> Result<Option<Lane>, EnvError> {
        if !t.source.may_read(api) {
            return Ok(None);
        }
        let (minute, hour) = poll.quotas(api);
        Ok(Some(Lane {
            tokens: tokens(http, t, api)?,
            budget: Arc::new(Budget::new(minute, hour, history.clone())),
        }))
    };
    Ok(TenantEnv {
        mde: lane(SourceKind::Mde)?,
        graph: lane(SourceKind::Graph)?,
        route: Arc::new(Route::new(t.source)),
        cfg: Arc::new(t.clone()),
    })
}

/// The source that reads `tenant`'s alerts from `api` through `http`; `None` when the tenant may
/// not read `api` (it is pinned to the other).
fn source(
    http: &reqwest::Client,
    poll: &PollConfig,
    tenant: &TenantEnv,
    api: SourceKind,
) -> Option<ApiSource> {
    let lane = tenant.lane(api)?;
    Some(match api {
        SourceKind::Mde => ApiSource::mde(
            http.clone(),
            &tenant.cfg.api_url,
            lane.tokens.clone(),
            poll.expand_evidence,
            lane.budget.clone(),
        ),
        SourceKind::Graph => ApiSource::graph(
            http.clone(),
            &tenant.cfg.graph_url,
            lane.tokens.clone(),
            tenant.cfg.services.clone(),
            lane.budget.clone(),
        ),
    })
}

/// A tenant's token provider for `api` on `http`. A secret or certificate error names the file the
/// tenant's block is in (the config, or a file of `tenants_dir`).
fn tokens(
    http: &reqwest::Client,
    t: &TenantConfig,
    api: SourceKind,
) -> Result<Arc<TokenProvider>, EnvError> {
    TokenProvider::new(http.clone(), t, api)
        .map(Arc::new)
        .map_err(|e| match e {
            AuthError::Config(c) => EnvError::Config(t.in_its_file(c)),
            other => EnvError::SignIn(other),
        })
}
