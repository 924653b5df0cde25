//! The daemon's two kinds of job as tasks: a tenant's poll ([`crate::poll_job`], followed by the
//! exports without a schedule) and a scheduled export. Each reports to the loop with a [`Done`]
//! when it ends.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Plan;
use crate::export::run_export;
use crate::poll_job::{AfterPoll, JobError, PollJob};
use crate::store::{Outcome, Store};

/// What a poll did, for the interval's summary line and systemd's status.
#[derive(Debug, Clone, Copy)]
pub(super) struct Figures {
    pub(crate) new: u64,
    pub(crate) updated: u64,
    pub(crate) api_calls: u64,
    pub(crate) throttled: u64,
    pub(crate) elapsed: std::time::Duration,
    pub(crate) outcome: Outcome,
}

impl Default for Figures {
    fn default() -> Self {
        Figures {
            new: 0,
            updated: 0,
            api_calls: 0,
            throttled: 0,
            elapsed: std::time::Duration::ZERO,
            outcome: Outcome::Ok,
        }
    }
}

impl From<&crate::poll::PollReport> for Figures {
    fn from(r: &crate::poll::PollReport) -> Self {
        Figures {
            new: r.counts.new,
            updated: r.counts.updated,
            api_calls: r.api_calls,
            throttled: r.throttled,
            elapsed: r.elapsed,
            outcome: r.outcome,
        }
    }
}

/// What a finished job reports to the loop.
pub(super) enum Done {
    Poll {
        tenant: String,
        result: Result<Figures, JobError>,
    },
    Export {
        name: String,
        result: Result<usize, String>,
    },
}

pub(super) fn spawn_poll(
    plan: &Plan,
    tenant: &str,
    store: Arc<Mutex<Store>>,
    deadline: Option<tokio::time::Instant>,
    done: mpsc::UnboundedSender<Done>,
) -> Option<JoinHandle<()>> {
    let job = PollJob {
        env: plan.env.clone(),
        tenant: plan.tenants.get(tenant)?.clone(),
        store,
        deadline,
        slots: plan.slots.clone(),
        after: Some(AfterPoll {
            exports: plan.exports.clone(),
            tenants: plan.names.clone(),
        }),
    };
    let tenant = tenant.to_owned();
    // Dropping this task (shutdown aborts it) drops the job, and the job's poll with it.
    Some(tokio::spawn(async move {
        let finished = job.run().await;
        let _ = done.send(Done::Poll {
            tenant,
            result: finished.result.map(|r| Figures::from(&r)),
        });
    }))
}

pub(super) fn spawn_export(
    plan: &Plan,
    name: &str,
    store: Arc<Mutex<Store>>,
    done: mpsc::UnboundedSender<Done>,
) -> Option<JoinHandle<()>> {
    let e = plan.config.exports.iter().find(|e| e.name == name)?.clone();
    let tenants = plan.names.clone();
    let mail = plan.config.mail.clone();
    Some(tokio::spawn(async move {
        let name = e.name.clone();
        let result = tokio::task::spawn_blocking(move || {
            let w = run_export(
                &store.lock().unwrap_or_else(|p| p.into_inner()),
                &e,
                &tenants,
            )?;
            for f in &w {
                tracing::info!(file = %f.path.display(), rows = f.rows, "Export written.");
            }
            crate::export::mail::mail_export_shared(&store, mail.as_ref(), &e, &w)?;
            Ok::<_, crate::export::ExportError>(w)
        })
        .await;
        let result = match result {
            Ok(Ok(w)) => Ok(w.len()),
            // The mail's own failure is logged where it is recorded; the files were written.
            Ok(Err(err @ crate::export::ExportError::Mail(_))) => Err(err.to_string()),
            Ok(Err(err)) => {
                let fix = err.hint().unwrap_or_default();
                tracing::error!(export = %name, error = %err, fix = %fix, "Export failed; the previous files are kept.");
                Err(err.to_string())
            }
            Err(err) => Err(err.to_string()),
        };
        let _ = done.send(Done::Export { name, result });
    }))
}
