//! `export`: the exports the config names, written on request.

use crate::config::{Config, ConfigError};
use crate::error::Error;
use crate::export::{ExportError, Trigger, Written, run_export_as};
use crate::store::Store;

/// Runs the configured exports (all, or the one called `name`).
pub fn run(config: &Config, name: Option<&str>) -> Result<Vec<Written>, Error> {
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
    let mut store = Store::open(&config.store.path)?;
    crate::store::reconcile_configured(&mut store, config)?;
    crate::export::check_export_dirs(config)?;
    let tenants = config.tenant_names();
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
                tracing::error!(export = %e.name, error = %err, fix = err.hint().as_deref(), "Written without the alerts the store cannot read.");
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
