//! The commands' work, shared by the CLI, the demo and the tests: wiring config, tokens, source,
//! store and exports together. Errors stay typed here; only `main` turns them into exit codes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::auth::AuthError;
use crate::config::SourceKind;
use crate::config::{Config, ConfigError};
use crate::env::{Environment, TenantEnv};
use crate::export::{ExportError, Trigger, Written, run_export_as};
use crate::poll::{PollError, PollReport};
use crate::store::{Store, StoreError, WriterLock};

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

impl From<crate::env::EnvError> for AppError {
    fn from(e: crate::env::EnvError) -> Self {
        match e {
            crate::env::EnvError::Config(c) => AppError::Config(c),
            crate::env::EnvError::Http(h) => AppError::Http(h),
        }
    }
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
    /// Which API each tenant read, and why (in config order; a tenant whose poll never started
    /// has none).
    pub apis: Vec<(String, crate::source::route::Decision)>,
    /// The poll was stopped by SIGINT or SIGTERM: which signal, and the runs it cut short (as
    /// recorded, `interrupted`, with what each had stored; none if no poll had started).
    pub interrupted: Option<(Signal, Vec<crate::store::RunRow>)>,
}

/// A signal that stops a one-off command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl-C.
    Interrupt,
    /// `kill`, or systemd stopping the unit.
    Terminate,
}

impl Signal {
    /// The shell's exit status for a process ended by this signal (128 + its number).
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        })
    }
}

/// Resolves on the first SIGINT or SIGTERM. Installing it replaces the default action (dying on
/// the spot), so a one-off command can finish its run row and say what it stored.
pub fn stop_signal() -> std::io::Result<impl std::future::Future<Output = Signal>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => Signal::Interrupt,
            _ = term.recv() => Signal::Terminate,
        }
    })
}

/// How long a second writer waits for the first before giving up.
pub const WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// When a poll must stop waiting: the next scheduled poll (or the one after, if the next is less
/// than a minute away, so that a manual poll just before a tick still gets a fair run).
pub fn poll_deadline(schedule: &croner::Cron) -> Option<tokio::time::Instant> {
    let now = chrono::Utc::now();
    let next = schedule.find_next_occurrence(&now, false).ok()?;
    let next = if next - now < chrono::Duration::seconds(60) {
        schedule.find_next_occurrence(&next, false).ok()?
    } else {
        next
    };
    let wait = (next - now).to_std().ok()?;
    Some(tokio::time::Instant::now() + wait)
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
    let env = Environment::new(config)?;
    let mut built = Vec::new();
    for t in &tenants {
        built.push(env.tenant(t, Vec::new())?);
    }
    // An export directory that cannot be written is a configuration error, found before any API
    // call is spent.
    if export {
        crate::export::check_export_dirs(config)?;
    }
    // One writer per store: a second poll or import waits briefly, then says who holds it.
    let _lock = WriterLock::acquire(&config.store.path, WRITER_WAIT)?;
    let store = Arc::new(Mutex::new(open_store(config)?));
    reconcile_tenants(&mut store.lock().unwrap_or_else(|p| p.into_inner()), config)?;
    let deadline = poll_deadline(&config.poll.schedule);
    let mut summary = PollSummary::default();
    let stop = stop_signal()
        .map_err(|e| AppError::Http(format!("cannot watch for SIGINT/SIGTERM: {e}")))?;
    tokio::pin!(stop);
    // Tenants are polled `concurrency` at a time, each in its own task under its own budget and
    // token; one tenant's failure (or panic) is its own. Results are reported in config order.
    let mut token_expiry: Vec<Option<i64>> = vec![None; tenants.len()];
    let mut decisions: Vec<Option<crate::source::route::Decision>> = vec![None; tenants.len()];
    let mut results: Vec<Option<Result<PollReport, PollError>>> =
        (0..tenants.len()).map(|_| None).collect();
    let mut queue = tenants.iter().zip(built).enumerate();
    let mut running = tokio::task::JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, (usize, String)> = HashMap::new();
    loop {
        while running.len() < config.poll.concurrency.max(1) {
            let Some((i, (t, tenant))) = queue.next() else {
                break;
            };
            // The calls the store recorded in the last hour, so that the budget outlives the
            // process: read only now, when the tenant's poll starts.
            let history = {
                let s = store.lock().unwrap_or_else(|p| p.into_inner());
                s.recent_calls(&t.name)?
            };
            for lane in [&tenant.mde, &tenant.graph].into_iter().flatten() {
                lane.budget.remember(&history);
            }
            let store = store.clone();
            let (http, poll_cfg) = (env.http().clone(), env.poll_config().clone());
            let handle = running.spawn(async move {
                let r = crate::tenant_poll::poll(&http, &poll_cfg, &tenant, &store, deadline).await;
                (r, (tenant.token_expiry(), tenant.route.decision()))
            });
            in_flight.insert(handle.id(), (i, t.name.clone()));
        }
        let joined = tokio::select! {
            j = running.join_next_with_id() => j,
            signal = &mut stop => {
                // Every poll still running is dropped at its next await; a page commit already
                // under way finishes (it holds the store), and then each run row is closed as
                // `interrupted`.
                running.shutdown().await;
                let mut names: Vec<(usize, String)> = in_flight.into_values().collect();
                names.sort();
                let runs = tokio::task::spawn_blocking({
                    let store = store.clone();
                    move || {
                        let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
                        let mut runs = Vec::new();
                        for (_, tenant) in names {
                            s.close_running(&tenant, crate::store::Outcome::Interrupted, &format!("stopped by {signal} before it finished"))?;
                            runs.extend(s.runs(Some(&tenant), 1)?);
                            tracing::warn!(tenant = %tenant, %signal, "Poll interrupted; everything stored before the signal is kept.");
                        }
                        Ok::<_, StoreError>(runs)
                    }
                })
                .await
                .expect("store task panicked")?;
                summary.interrupted = Some((signal, runs));
                return Ok(summary);
            }
        };
        let Some(joined) = joined else {
            break;
        };
        let (id, outcome) = match joined {
            Ok((id, (r, expiry))) => (id, Ok((r, expiry))),
            Err(e) => (e.id(), Err(e)),
        };
        let Some((i, name)) = in_flight.remove(&id) else {
            continue;
        };
        let result = match outcome {
            Ok((r, (expiry, decision))) => {
                token_expiry[i] = expiry;
                decisions[i] = decision;
                r
            }
            Err(join) => {
                // A panic in one tenant's poll (a bug) is that tenant's failure, recorded as its
                // run's error; the others go on.
                let e = PollError::Panicked(crate::poll::panic_message(join));
                let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
                s.close_running(&name, crate::store::Outcome::Failed, &e.to_string())?;
                Err(e)
            }
        };
        match &result {
            Ok(r) => crate::tenant_poll::log_finished(r),
            Err(e) => {
                tracing::error!(tenant = %name, error = %e, "Poll failed; everything stored before the failure is kept.");
            }
        }
        results[i] = Some(result);
    }
    summary.apis = tenants
        .iter()
        .zip(decisions)
        .filter_map(|(t, d)| d.map(|d| (t.name.clone(), d)))
        .collect();
    for (t, result) in tenants.iter().zip(results) {
        match result {
            Some(Ok(r)) => summary.ok.push(r),
            Some(Err(e)) => summary.failed.push((t.name.clone(), e)),
            None => {}
        }
    }
    if let Some(path) = &config.metrics_textfile {
        let s = store.lock().unwrap_or_else(|p| p.into_inner());
        let expiry: Vec<(String, i64)> = tenants
            .iter()
            .zip(&token_expiry)
            .filter_map(|(t, e)| e.map(|e| (t.name.clone(), e)))
            .collect();
        crate::metrics::publish(path, &s, &tenant_names(config), &expiry)?;
    }
    if export && !summary.ok.is_empty() {
        let store = store.clone();
        let exports = config.exports.clone();
        let tenants = tenant_names(config);
        summary.exported = tokio::task::spawn_blocking(move || {
            let s = store.lock().unwrap_or_else(|p| p.into_inner());
            crate::export::run_after_poll(&s, &exports, &tenants, None)
        })
        .await
        .expect("export task panicked")?;
    }
    Ok(summary)
}

/// Records each configured tenant's `tenant_id` in the store and carries a renamed tenant's rows
/// over to its new name (see [`Store::reconcile_tenants`]), saying what it did.
pub fn reconcile_tenants(store: &mut Store, config: &Config) -> Result<(), StoreError> {
    let configured: Vec<(&str, &str)> = config
        .tenants
        .iter()
        .map(|t| (t.name.as_str(), t.tenant_id.as_str()))
        .collect();
    for change in store.reconcile_tenants(&configured)? {
        tracing::warn!("{change}.");
    }
    Ok(())
}

/// The configured tenants' names.
pub fn tenant_names(config: &Config) -> Vec<String> {
    config.tenants.iter().map(|t| t.name.clone()).collect()
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
    let mut store = open_store(config)?;
    reconcile_tenants(&mut store, config)?;
    crate::export::check_export_dirs(config)?;
    let tenants = tenant_names(config);
    let mut all = Vec::new();
    // A damaged row costs that row in each export's files, and a mail server that is down a
    // late mail, not the exports after it: every export is written, and the command fails once
    // at the end.
    let mut failed = None;
    for e in exports {
        match run_export_as(&store, e, &tenants, Trigger::Manual) {
            Ok(written) => {
                // The files are written whatever the mail server says; a failed mail is pending.
                if let Err(m) =
                    crate::export::mail::mail_export(&store, config.mail.as_ref(), e, &written)
                {
                    for w in &written {
                        tracing::info!(file = %w.path.display(), rows = w.rows, "Export written.");
                    }
                    failed.get_or_insert(ExportError::from(m));
                }
                all.extend(written)
            }
            Err(err @ ExportError::Unreadable { .. }) => {
                tracing::error!(export = %e.name, error = %err, "Written without the alerts the store cannot read.");
                failed.get_or_insert(err);
            }
            Err(err) => return Err(err.into()),
        }
    }
    match failed {
        Some(err) => Err(err.into()),
        None => Ok(all),
    }
}

/// Whether `path` is a store that exists (so that `export` does not create an empty one).
pub fn store_exists(path: &Path) -> bool {
    path.is_file()
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
    pub probe: Result<(), String>,
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
pub const AUTH_CHECK_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Gets a token for each tenant (or `only`), explains its claims, and makes one small API call,
/// all within [`AUTH_CHECK_LIMIT`]. A sign-in failure is reported per tenant; configuration errors
/// stop everything (exit 78).
pub async fn auth_check(
    config: &Config,
    only: Option<&str>,
    show_token: bool,
) -> Result<Vec<(String, Result<AuthReport, String>)>, AppError> {
    auth_check_within(config, only, show_token, AUTH_CHECK_LIMIT).await
}

/// [`auth_check`] with another overall limit.
pub async fn auth_check_within(
    config: &Config,
    only: Option<&str>,
    show_token: bool,
    limit: std::time::Duration,
) -> Result<Vec<(String, Result<AuthReport, String>)>, AppError> {
    let tenants: Vec<_> = match only {
        Some(name) => vec![config.tenant(name)?],
        None => config.tenants.iter().collect(),
    };
    let env = Environment::new(config)?;
    let now = tokio::time::Instant::now();
    let deadline = crate::http::later(now, limit).unwrap_or(now + AUTH_CHECK_LIMIT);
    let secs = limit.as_secs();
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
            Err(format!(
                "no answer within auth check's {secs} s limit (Entra ID at {} or the API at {} is slow or not answering). Fix: check login_url, {} and the network (DNS, firewall, [http] proxy or HTTPS_PROXY), then try again",
                t.login_url,
                t.endpoint(api),
                match api {
                    SourceKind::Mde => "api_url",
                    SourceKind::Graph => "graph_url",
                }
            ))
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
) -> Result<AuthReport, String> {
    let graph = tenant.graph.as_ref().map(|l| &*l.tokens);
    let mde = tenant.mde.as_ref().map(|l| &*l.tokens);
    let decision = tenant.route.decide(graph, mde).await;
    let (report, refusal) =
        check_tenant(env, tenant, decision, show_token, deadline, limit).await?;
    match refusal {
        Some(e) => match tenant.route.refused(report.source, &e, graph).await {
            Some(next) if next.api != report.source => {
                check_tenant(env, tenant, next, show_token, deadline, limit)
                    .await
                    .map(|(r, _)| r)
            }
            _ => Ok(report),
        },
        None => Ok(report),
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
) -> Result<(AuthReport, Option<crate::source::SourceError>), String> {
    let api = decision.api;
    let t = &tenant.cfg;
    let Some(lane) = tenant.lane(api) else {
        return Err(format!("the tenant does not read {}", api.title()));
    };
    let tokens = &lane.tokens;
    let token = tokens.token().await.map_err(|e| e.to_string())?;
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
        return Err(format!("the tenant does not read {}", api.title()));
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
    let text = |e: &crate::source::SourceError| match e {
        crate::source::SourceError::Deadline { wait } => format!(
            "the API asked to wait {} s before the next call (throttled: HTTP 429, or the configured call quota), more than auth check's {} s limit allows; the sign-in itself worked. Fix: try again later; if it persists, another tool may be spending this app's quota",
            wait.as_secs(),
            limit.as_secs()
        ),
        e => e.to_string(),
    };
    // A refusal is kept whole: it may move an auto tenant to the other API.
    let (probe, refusal) = match probe {
        Ok(()) => (Ok(()), None),
        Err(e) => (
            Err(text(&e)),
            crate::source::route::is_refusal(&e).then_some(e),
        ),
    };
    Ok((
        AuthReport {
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
        },
        refusal,
    ))
}
