//! `mde-alerts status`: each tenant's health (the rules are `health::verdict`), last run, cursor and
//! alert counts; exit 1 when a tenant is unhealthy, so monitoring can run it. Opens the store
//! read-only: a monitoring user may read it without being allowed to write it.

use std::path::Path;
use std::process::ExitCode;

use mde_alerts::config::{SourceKind, mde_deprecation};
use mde_alerts::error::Error;
use mde_alerts::health::{TenantStatus, tenant_status};
use mde_alerts::store::Store;

pub fn run(config: &Path, json: bool) -> Result<ExitCode, Error> {
    let config = super::load(config)?;
    let store = Store::open_read_only(&config.store.path)?;
    let daemon = mde_alerts::daemon::state::read(&config.store.path);
    let mut all = Vec::new();
    for t in &config.tenants {
        let next = daemon
            .as_ref()
            .and_then(|d| d.tenants.get(&t.name))
            .map(|s| s.next_poll.to_rfc3339());
        let mut status = tenant_status(
            &store,
            &t.name,
            config.health.max_age,
            next,
            daemon.is_some(),
        )?;
        if t.source == SourceKind::Mde {
            status.warnings.push(mde_deprecation());
        }
        all.push(status);
    }
    if json {
        let text = serde_json::to_string_pretty(&all)
            .map_err(|e| Error::io("cannot write the status")(e.into()))?;
        outln!("{text}")?;
    } else {
        for t in &all {
            print(t)?;
            for w in &t.warnings {
                outln!("  warning: {w}")?;
            }
        }
    }
    Ok(if all.iter().all(|t| t.healthy) {
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
    outln!(
        "  store {} on disk, oldest revision stored {}",
        super::store::bytes(t.store_bytes),
        t.oldest_revision.as_deref().unwrap_or("(none yet)")
    )?;
    match &t.next_poll {
        Some(n) => outln!("  next poll {n} (daemon running)"),
        None => outln!("  daemon not running"),
    }
}
