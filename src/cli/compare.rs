//! `mde-alerts compare`: both APIs over the same window, and what a switch to Graph changes.
//! Exit 0 when both APIs could be read for every tenant, 1 otherwise.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use mde_alerts::compare::{TenantComparison, compare_in, work_dir};
use mde_alerts::error::Error;
use mde_alerts::words;
use tokio::signal::unix::{SignalKind, signal};

pub(crate) async fn run(
    config: &Path,
    tenant: Option<&str>,
    since: Duration,
    timeout: Duration,
    json: bool,
) -> Result<ExitCode, Error> {
    let config = super::load(config)?;
    // The throw-away stores hold a tenant's alerts: removed on every way out, SIGINT and
    // SIGTERM included (the default action would end the process with the directory in place).
    let listen =
        |kind| signal(kind).map_err(|e| Error::io("cannot listen for SIGINT and SIGTERM")(e));
    let (mut int, mut term) = (
        listen(SignalKind::interrupt())?,
        listen(SignalKind::terminate())?,
    );
    let dir = work_dir()?;
    let stopped_by = tokio::select! {
        all = compare_in(&config, tenant, since, timeout, dir.path()) => Ok(all),
        _ = int.recv() => Err(("SIGINT", 130)),
        _ = term.recv() => Err(("SIGTERM", 143)),
    };
    let removed = dir.close();
    let all = match stopped_by {
        Ok(all) => all?,
        Err((name, code)) => {
            errln!("stopped by {name}: nothing compared; the temporary stores are removed");
            return Ok(ExitCode::from(code));
        }
    };
    if let Err(e) = removed {
        errln!("warning: cannot remove the comparison's temporary directory: {e}");
    }
    if json {
        let v = serde_json::json!({
            "since": humantime::format_duration(since).to_string(),
            "tenants": all.iter().map(TenantComparison::to_json).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&v)
            .map_err(|e| Error::io("cannot write the comparison")(e.into()))?;
        outln!("{text}")?;
    } else {
        for c in &all {
            print(c, since)?;
        }
    }
    Ok(if all.iter().all(TenantComparison::complete) {
        ExitCode::SUCCESS
    } else {
        super::failed()
    })
}

/// At most this many alerts of each list are printed; `--json` has them all.
const SHOWN: usize = 20;

fn print(c: &TenantComparison, since: Duration) -> Result<(), Error> {
    outln!("tenant {}: the last {}", c.name, words::duration(since))?;
    for (name, side) in [("MDE API", &c.mde), ("Graph  ", &c.graph)] {
        match &side.error {
            None => outln!(
                "  {name}  {} ({})",
                words::count(side.alerts, "alert", "alerts"),
                words::count(side.api_calls, "API call", "API calls")
            )?,
            Some(e) => outln!("  {name}  could not be read: {e}")?,
        }
    }
    if !c.complete() {
        outln!("  nothing compared: both APIs must be readable (the app needs both permissions)")?;
        return Ok(());
    }
    outln!(
        "  only in the MDE API: {}  (Microsoft documents that alerts_v2 leaves out alerts suppressed by tuning rules and standalone alerts not in an incident)",
        c.only_in_mde.len()
    )?;
    for o in c.only_in_mde.iter().take(SHOWN) {
        outln!(
            "    {}  status {}  detectionSource {}  {}",
            o.id,
            o.status.as_deref().unwrap_or("-"),
            o.detection_source.as_deref().unwrap_or("-"),
            o.title.as_deref().unwrap_or("")
        )?;
    }
    more(c.only_in_mde.len())?;
    outln!(
        "  only in Graph: {}  (other Defender products' alerts, when services includes them, and alerts newer than the MDE read)",
        c.only_in_graph.len()
    )?;
    for o in c.only_in_graph.iter().take(SHOWN) {
        outln!(
            "    {}  status {}  serviceSource {}  detectionSource {}",
            o.id,
            o.status.as_deref().unwrap_or("-"),
            o.service_source.as_deref().unwrap_or("-"),
            o.detection_source.as_deref().unwrap_or("-")
        )?;
    }
    more(c.only_in_graph.len())?;
    outln!(
        "  status or severity differ: {}  (an alert updated between the two reads shows here too)",
        c.different.len()
    )?;
    for d in c.different.iter().take(SHOWN) {
        outln!(
            "    {}  status {} / {}  severity {} / {}  (MDE / Graph)",
            d.id,
            d.status.0.as_deref().unwrap_or("-"),
            d.status.1.as_deref().unwrap_or("-"),
            d.severity.0.as_deref().unwrap_or("-"),
            d.severity.1.as_deref().unwrap_or("-")
        )?;
    }
    more(c.different.len())?;
    Ok(())
}

fn more(n: usize) -> Result<(), Error> {
    if n > SHOWN {
        outln!("    … and {} more (--json lists them all)", n - SHOWN)?;
    }
    Ok(())
}
