//! `mde-alerts poll`: one poll of each tenant (or one), then the exports that follow a poll.

use std::path::Path;
use std::process::ExitCode;

use mde_alerts::error::Error;
use mde_alerts::poll_job;

pub(crate) async fn run(
    config: &Path,
    tenant: Option<&str>,
    export: bool,
) -> Result<ExitCode, Error> {
    let config = super::load(config)?;
    let summary = poll_job::poll(&config, tenant, export).await?;
    for r in &summary.ok {
        match summary.apis.iter().find(|(t, _)| *t == r.tenant) {
            Some((_, d)) => outln!("{r}; read {}", d.api.title())?,
            None => outln!("{r}")?,
        }
    }
    for w in &summary.exported {
        outln!("wrote {w}")?;
    }
    for (t, e) in &summary.failed {
        errln!("error: {t}: poll failed: {e}");
        if let Some(fix) = e.hint() {
            errln!("  fix: {fix}");
        }
    }
    if let Some((signal, runs)) = &summary.interrupted {
        if runs.is_empty() {
            errln!("interrupted by {signal} before the poll started; nothing was stored");
        }
        for r in runs {
            errln!(
                "interrupted by {signal}: {}: {} new, {} updated, {} unchanged in {} committed page{} stored before the signal; cursor {}. `status` shows the run as interrupted; the next poll continues from where this one stopped.",
                r.tenant,
                r.counts.new,
                r.counts.updated,
                r.counts.unchanged,
                r.pages,
                if r.pages == 1 { "" } else { "s" },
                r.cursor_after
                    .map(|c| c.to_api_string())
                    .unwrap_or_else(|| "(none yet)".into())
            );
        }
        return Ok(ExitCode::from(signal.exit_code()));
    }
    Ok(if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        super::failed()
    })
}
