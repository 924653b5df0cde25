//! `mde-alerts demo`: the product working in one minute against the built-in simulator, and what
//! to try next.

use std::path::Path;
use std::process::ExitCode;

use mde_alerts::error::Error;

pub(crate) async fn run(dir: &Path) -> Result<ExitCode, Error> {
    outln!(
        "Starting the built-in Defender simulator and polling it; between the two polls the demo's app is granted Microsoft Graph's SecurityAlert.Read.All, and its tenant (source = auto) moves to Graph by itself…"
    )?;
    let report = mde_alerts::demo::run(dir).await?;
    if let Some((signal, _)) = report.polls.iter().find_map(|p| p.interrupted.as_ref()) {
        errln!("demo interrupted by {signal}");
        return Ok(ExitCode::from(signal.exit_code()));
    }
    let labels = ["first poll  ", "second poll "];
    for (p, label) in report.polls.iter().zip(labels) {
        for (tenant, d) in &p.apis {
            outln!("{label} {tenant} reads {} ({})", d.api.title(), d.why)?;
        }
        for r in &p.ok {
            outln!("{label} {r}")?;
        }
    }
    let failed: Vec<_> = report.polls.iter().flat_map(|p| &p.failed).collect();
    for (t, e) in &failed {
        errln!("error: {t}: {e}");
        if let Some(fix) = e.hint() {
            errln!("  fix: {fix}");
        }
    }
    if let Some(c) = report.comparison.as_ref().filter(|c| !c.complete()) {
        for e in [&c.mde.error, &c.graph.error].into_iter().flatten() {
            errln!("compare: {e}");
        }
    }
    if let Some(c) = report.comparison.as_ref().filter(|c| c.complete()) {
        outln!(
            "compare      tenant {}: the MDE API returned {} alerts, Graph {}; {} only in the MDE API (alerts_v2 leaves out tuned and standalone alerts), {} only in Graph, {} with a different status or severity",
            c.name,
            c.mde.alerts,
            c.graph.alerts,
            c.only_in_mde.len(),
            c.only_in_graph.len(),
            c.different.len()
        )?;
    }
    outln!()?;
    if let Some(p) = report.polls.get(1) {
        for w in &p.exported {
            outln!("wrote {w}")?;
        }
    }
    let cfg = report.config.display();
    let me = super::invocation();
    outln!(
        "\nTry next:\n  {me} --config {cfg} status\n  {me} --config {cfg} export --format ndjson --out alerts.ndjson\n  {me} --config {cfg} config check\n  {me} simulate --port 8443   # a simulator to point a config at\n\nFor a real tenant: copy config.example.toml to /etc/mde-alerts/config.toml and fill in your app registration."
    )?;
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        super::failed()
    })
}
