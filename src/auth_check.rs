//! `auth check`: sign in as each tenant would, explain the token's claims, and make one small
//! call to the API the tenant reads, within a limit an interactive command can wait for.

use std::time::Duration;

use crate::auth::AuthError;
use crate::config::{Config, SourceKind};
use crate::env::{Environment, TenantEnv};
use crate::error::Error;
use crate::source::SourceError;

/// Why `auth check` could not show that a tenant's poll would work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// Neither the sign-in nor the probe answered within the limit.
    #[error(
        "no answer within auth check's {} s limit (Entra ID at {login_url} or the API at {api_url} is slow or not answering)",
        limit.as_secs()
    )]
    TimedOut {
        /// The limit.
        limit: Duration,
        /// The tenant's sign-in URL.
        login_url: String,
        /// The API it would read.
        api_url: String,
        /// The config key of that URL (`api_url` or `graph_url`).
        key: &'static str,
    },
    /// The tenant has no lane for the API its route picked (a bug: the route picks only lanes the
    /// tenant has).
    #[error("the tenant does not read {0}")]
    NoLane(&'static str),
    /// Entra ID gave no token.
    #[error(transparent)]
    SignIn(#[from] AuthError),
    /// The API asked to wait longer than the check may.
    #[error(
        "the API asked to wait {} s before the next call (throttled: HTTP 429, or the configured call quota), more than auth check's {} s limit allows; the sign-in itself worked",
        wait.as_secs(),
        limit.as_secs()
    )]
    Throttled {
        /// The wait asked for.
        wait: Duration,
        /// The check's limit.
        limit: Duration,
    },
    /// The API refused the probe or could not be read.
    #[error(transparent)]
    Probe(SourceError),
}

impl CheckError {
    /// What the admin can do about it: printed once, as `fix: …`, after the error.
    pub fn hint(&self) -> Option<String> {
        match self {
            CheckError::TimedOut { key, .. } => Some(format!(
                "check login_url, {key} and the network (DNS, firewall, [http] proxy or HTTPS_PROXY), then try again"
            )),
            CheckError::NoLane(_) => None,
            CheckError::SignIn(e) => e.hint(),
            CheckError::Throttled { .. } => Some(
                "try again later; if it persists, another tool may be spending this app's quota"
                    .into(),
            ),
            CheckError::Probe(e) => e.hint(),
        }
    }
}

/// What `auth check` found for one tenant.
#[derive(Debug)]
pub struct AuthReport {
    /// The tenant's name.
    pub tenant: String,
    /// The grant used.
    pub grant: &'static str,
    /// The token's claims (never the token itself); null when the token is opaque (not a JWT).
    pub claims: serde_json::Value,
    /// Whether the claims could be read: an opaque token's cannot, and then only the probe judges.
    pub claims_readable: bool,
    /// Seconds until the token expires.
    pub expires_in_secs: u64,
    /// The audience is the Defender resource.
    pub audience_ok: bool,
    /// The permissions found (`roles` or `scp`).
    pub permissions: Vec<String>,
    /// They include one that reads alerts.
    pub permission_ok: bool,
    /// The certificate's subject and expiry, for a certificate grant.
    pub certificate: Option<(String, chrono::DateTime<chrono::Utc>)>,
    /// Which API was checked: the one the tenant reads.
    pub source: crate::config::SourceKind,
    /// What the config says (`auto`, `mde`, `graph`).
    pub choice: crate::config::SourceChoice,
    /// Why the tenant reads `source` (for `auto`: what its Graph token allows, or Graph's refusal).
    pub why: crate::source::route::Why,
    /// The audience the token must have (Defender's resource, or this cloud's Graph root).
    pub audience: String,
    /// The probe's request, for the report (`GET /api/alerts?$top=1`).
    pub probe_request: &'static str,
    /// One `$top=1` request to the alerts API with the token: `Ok` or why not.
    pub probe: Result<(), CheckError>,
    /// The raw token, only when asked for.
    pub raw_token: Option<String>,
}

impl AuthReport {
    /// Whether a poll would work: the probe succeeded, and the claims (when they can be read)
    /// show the right audience and permission.
    pub fn ok(&self) -> bool {
        self.probe.is_ok() && (!self.claims_readable || (self.audience_ok && self.permission_ok))
    }
}

/// The WindowsDefenderATP app's ID: Entra may put it in `aud` instead of the resource URI.
const WINDOWS_DEFENDER_ATP_APP_ID: &str = "fc780465-2017-40d4-a0c5-307022471b92";
/// Microsoft Graph's app ID, which Entra may put in `aud` instead of the Graph root.
const MICROSOFT_GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

/// How long `auth check` may take in all: a check is interactive, and a 429 with a long
/// `Retry-After` or a server that never answers must not hold it for hours.
const AUTH_CHECK_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Gets a token for each tenant (or `only`), explains its claims, and makes one small API call,
/// all within `AUTH_CHECK_LIMIT`. A sign-in failure is reported per tenant; configuration errors
/// stop everything (exit 78).
pub async fn auth_check(
    config: &Config,
    only: Option<&str>,
    show_token: bool,
) -> Result<Vec<(String, Result<AuthReport, CheckError>)>, Error> {
    auth_check_within(config, only, show_token, AUTH_CHECK_LIMIT).await
}

/// [`auth_check`] with another overall limit.
pub async fn auth_check_within(
    config: &Config,
    only: Option<&str>,
    show_token: bool,
    limit: std::time::Duration,
) -> Result<Vec<(String, Result<AuthReport, CheckError>)>, Error> {
    let tenants: Vec<_> = match only {
        Some(name) => vec![config.tenant(name)?],
        None => config.tenants.iter().collect(),
    };
    let env = Environment::new(config)?;
    let now = tokio::time::Instant::now();
    let deadline = crate::http::later(now, limit).unwrap_or(now + AUTH_CHECK_LIMIT);
    let mut out = Vec::new();
    for t in tenants {
        // One call: a fresh budget of the configured quotas is enough.
        let tenant = env.tenant(t, Vec::new())?;
        let checked = tokio::time::timeout_at(
            deadline,
            check_routed(&env, &tenant, show_token, deadline, limit),
        )
        .await
        .unwrap_or_else(|_| {
            let api = tenant.route.current();
            Err(CheckError::TimedOut {
                limit,
                login_url: t.login_url.to_string(),
                api_url: t.endpoint(api).to_string(),
                key: match api {
                    SourceKind::Mde => "api_url",
                    SourceKind::Graph => "graph_url",
                },
            })
        });
        out.push((t.name.clone(), checked));
    }
    Ok(out)
}

/// `auth check` for one tenant, on the API it would read: for `auto`, as a poll decides, and the
/// MDE API too when Graph refuses the tenant.
async fn check_routed(
    env: &Environment,
    tenant: &TenantEnv,
    show_token: bool,
    deadline: tokio::time::Instant,
    limit: std::time::Duration,
) -> Result<AuthReport, CheckError> {
    let graph = tenant.graph.as_ref().map(|l| &*l.tokens);
    let mde = tenant.mde.as_ref().map(|l| &*l.tokens);
    let decision = tenant.route.decide(graph, mde).await;
    let report = check_tenant(env, tenant, decision, show_token, deadline, limit).await?;
    // A refusal may move an auto tenant to the other API, as it would in a poll.
    let refusal = match &report.probe {
        Err(CheckError::Probe(e)) if crate::source::route::is_refusal(e) => Some(e),
        _ => None,
    };
    let next = match refusal {
        Some(e) => tenant.route.refused(report.source, e, graph).await,
        None => None,
    };
    match next {
        Some(next) if next.api != report.source => {
            check_tenant(env, tenant, next, show_token, deadline, limit).await
        }
        _ => Ok(report),
    }
}

/// `auth check` for one tenant.
async fn check_tenant(
    env: &Environment,
    tenant: &TenantEnv,
    decision: crate::source::route::Decision,
    show_token: bool,
    deadline: tokio::time::Instant,
    limit: std::time::Duration,
) -> Result<AuthReport, CheckError> {
    let api = decision.api;
    let t = &tenant.cfg;
    let Some(lane) = tenant.lane(api) else {
        return Err(CheckError::NoLane(api.title()));
    };
    let tokens = &lane.tokens;
    let token = tokens.token().await?;
    let claims = token.claims();
    let claims_readable = claims.is_object();
    let aud = claims["aud"].as_str().unwrap_or("").trim_end_matches('/');
    let audience = t.resource_for(api);
    let audience_ok = aud == audience.trim_end_matches('/')
        || aud
            == match api {
                SourceKind::Mde => WINDOWS_DEFENDER_ATP_APP_ID,
                SourceKind::Graph => MICROSOFT_GRAPH_APP_ID,
            };
    let permissions = crate::auth::permissions_in(&claims);
    let permission_ok = permissions.iter().any(|p| match api {
        SourceKind::Mde => matches!(
            p.as_str(),
            "Alert.Read.All" | "Alert.ReadWrite.All" | "Alert.Read" | "Alert.ReadWrite"
        ),
        // Application or delegated: Graph names both the same.
        SourceKind::Graph => matches!(
            p.as_str(),
            "SecurityAlert.Read.All" | "SecurityAlert.ReadWrite.All"
        ),
    });
    let Some(source) = env.source(tenant, api, Some(deadline)) else {
        return Err(CheckError::NoLane(api.title()));
    };
    let probe = crate::source::AlertSource::fetch(
        &source,
        &crate::source::PageRequest {
            bound: crate::source::Bound::AtOrAfter(
                crate::alert::time::ApiTime::now().minus(std::time::Duration::from_secs(60)),
            ),
            before: None,
            created: None,
            ordered: false,
            top: 1,
            skip: 0,
        },
    )
    .await
    .map(drop);
    let probe = probe.map_err(|e| match e {
        SourceError::Deadline { wait } => CheckError::Throttled { wait, limit },
        e => CheckError::Probe(e),
    });
    Ok(AuthReport {
        tenant: t.name.clone(),
        grant: tokens.grant_name(),
        expires_in_secs: token
            .expires_at
            .saturating_duration_since(tokio::time::Instant::now())
            .as_secs(),
        claims,
        claims_readable,
        audience_ok,
        permissions,
        permission_ok,
        certificate: tokens.certificate().map(|(s, d)| (s.to_owned(), d)),
        source: api,
        choice: t.source,
        why: decision.why,
        audience,
        probe_request: match api {
            SourceKind::Mde => "GET /api/alerts?$top=1",
            SourceKind::Graph => "GET /v1.0/security/alerts_v2?$top=1",
        },
        probe,
        raw_token: show_token.then(|| token.bearer().to_owned()),
    })
}
