//! `mde-alerts config check`: validate the config, run the checks `poll` makes before it starts,
//! and print the resolved settings with secrets redacted, and which API each tenant reads.

use std::path::Path;
use std::process::ExitCode;

use mde_alerts::config::SourceKind;
use mde_alerts::error::Error;
use mde_alerts::source::route::{mde_warning, still_describes};
use mde_alerts::store::Store;

pub(crate) fn run(config: &Path) -> Result<ExitCode, Error> {
    let config = super::load(config)?;
    super::write_out(format_args!("{config}"))?;
    // The checks `poll` makes before it starts, so that "ok" means it will not refuse.
    config.check_ready()?;
    // The same, as the service's user would see it: an admin runs this as root.
    for w in config.service_user_warnings() {
        errln!("warning: {w}\n  fix: {}", w.fix);
    }
    // Which API each tenant reads, as its last poll decided; `config check` asks Microsoft
    // nothing, so a tenant that never polled says how it will decide.
    let store = config
        .store
        .path
        .is_file()
        .then(|| Store::open_read_only(&config.store.path).ok())
        .flatten();
    outln!("apis:")?;
    let mut warnings: Vec<(&str, _)> = Vec::new();
    for t in &config.tenants {
        let row = store
            .as_ref()
            .and_then(|s| s.api_choice(&t.name).ok().flatten())
            .filter(|r| still_describes(t.source, &r.api, &r.reason));
        let api = t
            .source
            .pinned()
            .or_else(|| row.as_ref().and_then(|r| SourceKind::parse(&r.api)));
        match (api, &row) {
            (Some(api), Some(r)) => outln!(
                "  {}: reads {} (source = {}: {}) since {}",
                t.name,
                api.title(),
                t.source.as_str(),
                r.detail,
                r.since
            )?,
            (Some(api), None) => outln!(
                "  {}: reads {} (source = {})",
                t.name,
                api.title(),
                t.source.as_str()
            )?,
            (None, _) => outln!(
                "  {}: source = auto, decided at its first poll: Microsoft Graph when the app holds SecurityAlert.Read.All, else the Defender for Endpoint API",
                t.name
            )?,
        }
        if let Some(w) = mde_warning(t.source, api, row.as_ref().map(|r| r.reason.as_str())) {
            warnings.push((&t.name, w));
        }
    }
    // One line per situation, naming its tenants: forty tenants in one situation are one warning.
    for (w, names) in &super::group(warnings) {
        errln!(
            "warning: {} {}: {w}\n  fix: {}",
            if names.len() == 1 {
                "tenant"
            } else {
                "tenants"
            },
            super::tenant_list(names),
            w.fix
        );
    }
    outln!(
        "ok: the config is valid, every secret is readable, and the store and export directories can be written"
    )?;
    Ok(ExitCode::SUCCESS)
}
