//! The daemon's two kinds of job as tasks: a tenant's poll (followed by the exports without a
//! schedule) and a scheduled export. Each reports to the loop with a [`Done`] when it ends.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Plan;
use crate::export::{run_after_poll, run_export};
use crate::poll::panic_message;
use crate::store::Store;

/// What a poll did, for the interval's summary line.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Figures {
    pub new: u64,
    pub updated: u64,
    pub api_calls: u64,
    pub throttled: u64,
    pub elapsed: std::time::Duration,
}

/// What a finished job reports to the loop.
pub(super) enum Done {
    Poll {
        tenant: String,
        line: Result<String, String>,
        figures: Option<Figures>,
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
    let t = plan.tenants.get(tenant)?.clone();
    let (http, poll_cfg) = (plan.http.clone(), plan.config.poll.clone());
    let tenant = t.cfg.name.clone();
    let exports = plan.exports.clone();
    let tenants = plan.names.clone();
    let slots = plan.slots.clone();
    Some(tokio::spawn(async move {
        // A slot first (`[poll] concurrency`); one not free by the deadline (the next tick) is a
        // failed poll that says so, not a job that waits for ever.
        let wait = slots.acquire_owned();
        let slot = match deadline {
            Some(d) => tokio::time::timeout_at(d, wait).await.ok(),
            None => Some(wait.await),
        };
        let Some(Ok(_slot)) = slot else {
            let e = "no poll slot was free before the next tick: polls take longer than the schedule allows (raise [poll] concurrency or poll less often)".to_owned();
            tracing::error!(tenant = %tenant, error = %e, "Poll not started.");
            // Recorded as a failed run, so that `status` and the metrics say so: a tenant that
            // never gets a slot must not look healthy until its last success grows old.
            let recorded = tokio::task::spawn_blocking({
                let (store, tenant, e) = (store.clone(), tenant.clone(), e.clone());
                move || {
                    let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
                    let run = s.begin_run(&tenant, "poll")?;
                    s.finish_run(
                        run,
                        crate::store::Outcome::Failed,
                        Default::default(),
                        Some(&e),
                    )
                }
            })
            .await;
            if let Ok(Err(why)) = recorded {
                tracing::error!(tenant = %tenant, error = %why, "Cannot record the failed poll in the store.");
            }
            let _ = done.send(Done::Poll {
                tenant,
                line: Err(e),
                figures: None,
            });
            return;
        };
        // The poll runs as its own task, so that a panic in it (a bug) is caught here, recorded
        // as the run's error and shown by `status`, instead of leaving the run "running".
        let mut poll = AbortOnDrop(tokio::spawn({
            let store = store.clone();
            async move { crate::tenant_poll::poll(&http, &poll_cfg, &t, &store, deadline).await }
        }));
        let result = match (&mut poll.0).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(join) => {
                let why = format!(
                    "the poll panicked (a bug in mde-alerts; please report it with the log): {}",
                    panic_message(join)
                );
                let closed = tokio::task::spawn_blocking({
                    let store = store.clone();
                    let tenant = tenant.clone();
                    let why = why.clone();
                    move || {
                        let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
                        s.close_running(&tenant, crate::store::Outcome::Failed, &why)
                    }
                })
                .await;
                if let Ok(Err(e)) = closed {
                    tracing::error!(tenant = %tenant, error = %e, "Cannot record the panic in the store.");
                }
                Err(why)
            }
        };
        let mut figures = None;
        let line = match result {
            Ok(r) => {
                crate::tenant_poll::log_finished(&r);
                figures = Some(Figures {
                    new: r.counts.new,
                    updated: r.counts.updated,
                    api_calls: r.api_calls,
                    throttled: r.throttled,
                    elapsed: r.elapsed,
                });
                // Exports without a schedule follow every successful poll.
                if exports.iter().any(|e| e.schedule.is_none()) {
                    let store = store.clone();
                    let polled = tenant.clone();
                    let exported = tokio::task::spawn_blocking(move || {
                        let s = store.lock().unwrap_or_else(|p| p.into_inner());
                        run_after_poll(&s, &exports, &tenants, Some(&polled))
                    })
                    .await;
                    match exported {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::error!(error = %e, "Export after the poll failed."),
                        Err(e) => tracing::error!(error = %e, "Export task failed."),
                    }
                }
                Ok(short_line(&r))
            }
            Err(e) => {
                tracing::error!(tenant = %tenant, error = %e, "Poll failed; everything stored before the failure is kept.");
                Err(e)
            }
        };
        let _ = done.send(Done::Poll {
            tenant,
            line,
            figures,
        });
    }))
}

/// Aborts the task when dropped: the poll task dies with the job that awaits it (shutdown aborts
/// the job).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn short_line(r: &crate::poll::PollReport) -> String {
    format!(
        "{} new, {} updated{}",
        r.counts.new,
        r.counts.updated,
        match r.outcome {
            crate::store::Outcome::Partial => " (partial)",
            crate::store::Outcome::Stalled => " (stalled: no progress)",
            _ => "",
        }
    )
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
                let fix = err.fix().unwrap_or_default();
                tracing::error!(export = %name, error = %err, fix = %fix, "Export failed; the previous files are kept.");
                Err(err.to_string())
            }
            Err(err) => Err(err.to_string()),
        };
        let _ = done.send(Done::Export { name, result });
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A poll that panics is recorded with its message, not lost as "finished without reporting".
    #[tokio::test]
    async fn a_panicking_job_reports_its_message() {
        let h = tokio::spawn(async { panic!("overflow when adding duration to instant") });
        let join = h.await.unwrap_err();
        assert_eq!(
            panic_message(join),
            "overflow when adding duration to instant"
        );
        let n = 7;
        let h = tokio::spawn(async move { panic!("index {n} out of range") });
        assert_eq!(panic_message(h.await.unwrap_err()), "index 7 out of range");
    }

    /// Dropping the job that awaits a poll aborts the poll (shutdown aborts jobs).
    #[tokio::test]
    async fn dropping_the_guard_aborts_the_task() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let guard = AbortOnDrop(tokio::spawn(async move {
            let _tx = tx;
            std::future::pending::<()>().await;
        }));
        drop(guard);
        assert!(
            rx.await.is_err(),
            "the task was dropped, and its sender with it"
        );
    }
}
