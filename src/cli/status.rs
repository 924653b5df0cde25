//! `mde-alerts status`: each tenant's health (the rules are `health::verdict`), last run, cursor and
//! alert counts; exit 1 when a tenant is unhealthy, so monitoring can run it. The text starts with
//! one summary line, and past ten tenants shows only those that need attention (an install of
//! 1,000 tenants must read at a glance); `--json` always has every tenant asked for. Opens the store
//! read-only: a monitoring user may read it without being allowed to write it.

use std::path::Path;
use std::process::ExitCode;

use mde_alerts::config::{SourceChoice, SourceKind, Warning};
use mde_alerts::error::Error;
use mde_alerts::health::{StoreFacts, TenantStatus, summarize, tenant_status};
use mde_alerts::source::route::{mde_warning, still_describes};
use mde_alerts::store::Store;
use mde_alerts::words;

/// Up to this many tenants, `status` shows each in full; beyond, only those that need attention
/// (`--all` shows every one).
const SHOW_ALL_UP_TO: usize = 10;

pub(crate) fn run(
    config: &Path,
    json: bool,
    tenant: Option<&str>,
    all: bool,
) -> Result<ExitCode, Error> {
    let config = super::load(config)?;
    let tenants: Vec<_> = match tenant {
        Some(name) => vec![config.tenant(name)?],
        None => config.tenants.iter().collect(),
    };
    let store = Store::open_read_only(&config.store.path)?;
    let mut healthy = true;
    let daemon = mde_alerts::daemon::state::read(&config.store.path);
    let facts = StoreFacts::read(&store)?;
    let mut statuses = Vec::with_capacity(tenants.len());
    for t in &tenants {
        let next = daemon
            .as_ref()
            .and_then(|d| d.tenants.get(&t.name))
            .map(|s| s.next_poll.to_rfc3339());
        let mut status = tenant_status(
            &store,
            &facts,
            &t.name,
            config.health.max_age,
            next,
            daemon.is_some(),
        )?;
        let row = store
            .api_choice(&t.name)?
            .filter(|r| still_describes(t.source, &r.api, &r.reason));
        let api = t
            .source
            .pinned()
            .or_else(|| row.as_ref().and_then(|r| SourceKind::parse(&r.api)));
        if let Some(w) = mde_warning(t.source, api, row.as_ref().map(|r| r.reason.as_str())) {
            status.warnings.push(w);
        }
        statuses.push(Row {
            source: t.source,
            api,
            api_reason: row.as_ref().map(|r| r.reason.clone()),
            api_why: row.as_ref().map(|r| r.detail.clone()),
            api_since: row.map(|r| r.since),
            status,
        });
    }
    healthy &= statuses.iter().all(|r| r.status.healthy);
    if json {
        let text = serde_json::to_string_pretty(&statuses)
            .map_err(|e| Error::io("cannot write the status")(e.into()))?;
        outln!("{text}")?;
    } else {
        let rows = statuses;
        let statuses: Vec<TenantStatus> = rows.iter().map(|r| r.status.clone()).collect();
        outln!("{}", summarize(&statuses))?;
        // The store is one for all tenants: said once, under the summary.
        if let Some(t) = statuses.first() {
            outln!(
                "store {} on disk (database {}, write-ahead log {}), oldest revision stored {}",
                super::store::bytes(t.store_bytes),
                super::store::bytes(t.store_bytes.saturating_sub(t.store_wal_bytes)),
                super::store::bytes(t.store_wal_bytes),
                t.oldest_revision.as_deref().unwrap_or("(none yet)")
            )?;
        }
        let every = all || tenant.is_some() || statuses.len() <= SHOW_ALL_UP_TO;
        // A warning tenants share (the same situation, the same fix) is said once, naming them,
        // not once per tenant.
        let groups = super::group(
            statuses
                .iter()
                .flat_map(|t| t.warnings.iter().map(|w| (t.tenant.as_str(), w.clone()))),
        );
        let shared: Vec<Warning> = groups
            .iter()
            .filter(|(_, names)| names.len() > 1)
            .map(|(w, _)| w.clone())
            .collect();
        for (w, names) in groups.iter().filter(|(_, n)| n.len() > 1) {
            outln!(
                "warning ({} tenants: {}): {w}\n  fix: {}",
                names.len(),
                super::tenant_list(names),
                w.fix
            )?;
        }
        let mut hidden = 0;
        for (t, row) in statuses.iter().zip(&rows) {
            if !every && !t.needs_attention(&shared) {
                hidden += 1;
                continue;
            }
            print(t)?;
            print_api(row)?;
            for w in t.warnings.iter().filter(|w| !shared.contains(w)) {
                outln!("  warning: {w}\n  fix: {}", w.fix)?;
            }
        }
        if hidden > 0 {
            outln!(
                "{hidden} healthy tenant{} not shown: `status --all` lists every one, `status --tenant NAME` one.",
                if hidden == 1 { " is" } else { "s are" }
            )?;
        }
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        super::failed()
    })
}

/// A tenant's status with which API it reads and why (`--json` carries both).
#[derive(serde::Serialize)]
struct Row {
    #[serde(flatten)]
    status: TenantStatus,
    /// What the config says: `auto`, `mde` or `graph`.
    source: SourceChoice,
    /// The API it reads now (`None`: an auto tenant that has not polled yet).
    api: Option<SourceKind>,
    /// Why, as a code (`graph_permitted`, `graph_not_permitted`, `pinned`, …).
    api_reason: Option<String>,
    /// Why, in words.
    api_why: Option<String>,
    /// Since when it reads that API.
    api_since: Option<String>,
}

fn print_api(r: &Row) -> Result<(), Error> {
    match (r.api, &r.api_why) {
        (Some(api), Some(why)) => outln!(
            "  reads {} (source = {}: {why}){}",
            api.title(),
            r.source.as_str(),
            r.api_since
                .as_deref()
                .map(|s| format!(" since {s}"))
                .unwrap_or_default()
        ),
        (Some(api), None) => outln!("  reads {} (source = {})", api.title(), r.source.as_str()),
        (None, _) => outln!(
            "  source = auto: decides at its first poll (Microsoft Graph when the app holds SecurityAlert.Read.All, else the Defender for Endpoint API)"
        ),
    }
}

fn print(t: &TenantStatus) -> Result<(), Error> {
    outln!(
        "{}: {} — {} alerts, cursor {}",
        t.tenant,
        if t.healthy { "healthy" } else { "UNHEALTHY" },
        t.alerts,
        t.cursor.as_deref().unwrap_or("(none yet)")
    )?;
    if let Some(p) = &t.problem {
        outln!("  problem: {p}")?;
    }
    match &t.last_run {
        Some(r) if r.polls > 1 => {
            outln!(
                "  last {} {} at {} (the newest of {} quiet polls since {}: {}, {} unchanged)",
                r.kind,
                r.outcome,
                r.started_at,
                r.polls,
                r.streak_since.as_deref().unwrap_or("?"),
                words::count(r.api_calls, "API call", "API calls"),
                r.unchanged
            )?;
        }
        Some(r) => {
            outln!(
                "  last {} {} at {}: {} new, {} updated, {} unchanged, {} stale, {} invalid, {} ({} throttled)",
                r.kind,
                r.outcome,
                r.started_at,
                r.new,
                r.updated,
                r.unchanged,
                r.stale,
                r.invalid,
                words::count(r.api_calls, "API call", "API calls"),
                r.throttled
            )?;
            if let Some(e) = &r.error {
                outln!("  error: {e}")?;
            }
            if let Some(fix) = &r.fix {
                outln!("  fix: {fix}")?;
            }
        }
        None => outln!("  never polled")?,
    }
    if let (Some(s), Some(age)) = (&t.last_success, t.last_success_age_secs) {
        outln!(
            "  last success {} ({} ago)",
            words::instant_text(s),
            words::duration(std::time::Duration::from_secs(age))
        )?;
    }
    let counts = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    outln!("  by status: {}", counts(&t.alerts_by_status))?;
    outln!("  by severity: {}", counts(&t.alerts_by_severity))?;
    match &t.next_poll {
        Some(n) => outln!("  next poll {} (daemon running)", words::instant_text(n)),
        None => outln!("  daemon not running"),
    }
}
