//! `mde-alerts status`: each tenant's health (the rules are `health::verdict`), last run, cursor and
//! alert counts; exit 1 when a tenant is unhealthy, so monitoring can run it. The text starts with
//! one summary line, and past ten tenants shows only those that need attention (issue 12: an
//! install of 1,000 tenants must read at a glance); `--json` always has every tenant asked for. Opens the store
//! read-only: a monitoring user may read it without being allowed to write it.

use std::path::Path;
use std::process::ExitCode;

use mde_alerts::config::{SourceKind, mde_deprecation};
use mde_alerts::error::Error;
use mde_alerts::health::{StoreFacts, TenantStatus, summarize, tenant_status};
use mde_alerts::store::Store;

/// Up to this many tenants, `status` shows each in full; beyond, only those that need attention
/// (`--all` shows every one).
const SHOW_ALL_UP_TO: usize = 10;

pub fn run(config: &Path, json: bool, tenant: Option<&str>, all: bool) -> Result<ExitCode, Error> {
    let config = super::load(config)?;
    let tenants: Vec<_> = match tenant {
        Some(name) => vec![config.tenant(name)?],
        None => config.tenants.iter().collect(),
    };
    let store = Store::open_read_only(&config.store.path)?;
    let daemon = mde_alerts::daemon::state::read(&config.store.path);
    let deprecation = mde_deprecation();
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
        if t.source == SourceKind::Mde {
            status.warnings.push(deprecation.clone());
        }
        statuses.push(status);
    }
    if json {
        let text = serde_json::to_string_pretty(&statuses)
            .map_err(|e| Error::io("cannot write the status")(e.into()))?;
        outln!("{text}")?;
    } else {
        outln!("{}", summarize(&statuses))?;
        // The store is one for all tenants: said once, under the summary.
        if let Some(t) = statuses.first() {
            outln!(
                "store {} on disk, oldest revision stored {}",
                super::store::bytes(t.store_bytes),
                t.oldest_revision.as_deref().unwrap_or("(none yet)")
            )?;
        }
        let every = all || tenant.is_some() || statuses.len() <= SHOW_ALL_UP_TO;
        // A warning every MDE tenant shares is said once, not a thousand times.
        let shared = if every {
            Vec::new()
        } else {
            vec![deprecation.clone()]
        };
        let mde = statuses
            .iter()
            .filter(|t| t.warnings.contains(&deprecation))
            .count();
        if !every && mde > 0 {
            outln!(
                "warning ({mde} tenant{} on the MDE API): {deprecation}",
                if mde == 1 { "" } else { "s" }
            )?;
        }
        let mut hidden = 0;
        for t in &statuses {
            if !every && !t.needs_attention(&shared) {
                hidden += 1;
                continue;
            }
            print(t)?;
            for w in t.warnings.iter().filter(|w| !shared.contains(w)) {
                outln!("  warning: {w}")?;
            }
        }
        if hidden > 0 {
            outln!(
                "{hidden} healthy tenant{} not shown: `status --all` lists every one, `status --tenant NAME` one.",
                if hidden == 1 { " is" } else { "s are" }
            )?;
        }
    }
    Ok(if statuses.iter().all(|t| t.healthy) {
        ExitCode::SUCCESS
    } else {
        super::failed()
    })
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
        Some(r) => {
            outln!(
                "  last {} {} at {}: {} new, {} updated, {} unchanged, {} stale, {} invalid, {} API calls ({} throttled)",
                r.kind,
                r.outcome,
                r.started_at,
                r.new,
                r.updated,
                r.unchanged,
                r.stale,
                r.invalid,
                r.api_calls,
                r.throttled
            )?;
            if let Some(e) = &r.error {
                outln!("  error: {e}")?;
            }
        }
        None => outln!("  never polled")?,
    }
    if let (Some(s), Some(age)) = (&t.last_success, t.last_success_age_secs) {
        outln!("  last success {s} ({age}s ago)")?;
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
        Some(n) => outln!("  next poll {n} (daemon running)"),
        None => outln!("  daemon not running"),
    }
}
