//! A tenant's poll as a job, the one way `poll` and `run` run it: wait for a slot (`[poll]
//! concurrency`) no later than the deadline, poll on the API the tenant's route picks
//! (`tenant_poll`), turn a panic into that tenant's failed run, say one "poll finished"
//! event, and write the exports that follow a poll of this tenant.
//!
//! [`poll`] is the `poll` command: one job per tenant, a signal that stops them all, and the
//! exports and metrics once every tenant is done.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use crate::config::{Config, ExportConfig};
use crate::env::{Environment, TenantEnv};
use crate::error::Error;
use crate::export::Written;
use crate::poll::{PollError, PollReport, panic_message};
use crate::signal::{Signal, stop_signal};
use crate::source::route::Decision;
use crate::store::{Outcome, RunRow, Store, StoreError, WRITER_WAIT, WriterLock};

/// Why a tenant's poll job failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// Every slot stayed taken until the deadline (the next tick): the poll never started.
    #[error(
        "no poll slot was free before the next tick: polls take longer than the schedule allows"
    )]
    NoSlot,
    /// The poll started and failed (a panic included).
    #[error(transparent)]
    Poll(#[from] PollError),
}

impl JobError {
    /// What the admin can do about it, when there is something to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            JobError::NoSlot => Some("raise [poll] concurrency, or poll less often".into()),
            JobError::Poll(e) => e.hint(),
        }
    }
}

/// The exports that follow a successful poll of one tenant (the service's case; `poll` writes
/// them once, after every tenant).
#[derive(Debug, Clone)]
pub(crate) struct AfterPoll {
    /// The configured exports; only those without a `schedule` follow a poll.
    pub(crate) exports: Arc<Vec<ExportConfig>>,
    /// Every configured tenant's name.
    pub(crate) tenants: Arc<Vec<String>>,
}

/// One tenant's poll, ready to run.
pub(crate) struct PollJob {
    /// The HTTP client and `[poll]` settings.
    pub(crate) env: Arc<Environment>,
    /// The tenant's tokens, budgets and route.
    pub(crate) tenant: TenantEnv,
    /// The store, shared by every job.
    pub(crate) store: Arc<Mutex<Store>>,
    /// When the poll must give way (the next tick); waiting for a slot counts against it.
    pub(crate) deadline: Option<tokio::time::Instant>,
    /// The polls that may run at once.
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
    /// The exports to write after a successful poll, if any.
    pub(crate) after: Option<AfterPoll>,
}

/// What a finished job says.
#[derive(Debug)]
pub(crate) struct Finished {
    /// The poll's report, or why it failed.
    pub(crate) result: Result<PollReport, JobError>,
    /// When the tenant's current token expires (Unix seconds), for the metrics.
    token_expiry: Option<i64>,
    /// Which API the tenant read, and why; none if the poll never decided.
    decision: Option<Decision>,
}

impl PollJob {
    /// Runs the job to its end. The poll runs as a task of its own, so that a panic in it (a bug)
    /// is caught here and closes the run as failed with the panic's message, instead of leaving
    /// it "running"; dropping this future aborts the poll.
    pub(crate) async fn run(self) -> Finished {
        let PollJob {
            env,
            tenant,
            store,
            deadline,
            slots,
            after,
        } = self;
        let name = tenant.cfg.name.clone();
        let wait = slots.acquire_owned();
        let slot = match deadline {
            Some(d) => tokio::time::timeout_at(d, wait).await.ok(),
            None => Some(wait.await),
        };
        let Some(Ok(_slot)) = slot else {
            let e = JobError::NoSlot;
            tracing::error!(tenant = %name, error = %e, fix = e.hint().unwrap_or_default(), "Poll not started.");
            // Recorded as a failed run, so that `status` and the metrics say so: a tenant that
            // never gets a slot must not look healthy until its last success grows old. The row
            // keeps the fix beside the error: `status` shows the row, not this error.
            let (why, fix) = (e.to_string(), e.hint());
            let recorded = blocking(&store, move |s| {
                let run = s.begin_run(&name, "poll")?;
                s.finish_run(
                    run,
                    Outcome::Failed,
                    Default::default(),
                    Some(&why),
                    fix.as_deref(),
                )
            })
            .await;
            if let Err(why) = recorded {
                tracing::error!(tenant = %tenant.cfg.name, error = %why, fix = why.hint().as_deref(), "Cannot record the failed poll in the store.");
            }
            return Finished {
                result: Err(e),
                token_expiry: tenant.token_expiry(),
                decision: tenant.route.decision(),
            };
        };
        let mut poll = AbortOnDrop(tokio::spawn({
            let (store, tenant, env) = (store.clone(), tenant.clone(), env.clone());
            async move { crate::tenant_poll::poll(&env, &tenant, &store, deadline).await }
        }));
        let result = match (&mut poll.0).await {
            Ok(r) => r.map_err(JobError::from),
            Err(join) => {
                let e = PollError::Panicked(panic_message(join));
                let why = e.to_string();
                let closed = blocking(&store, {
                    let name = name.clone();
                    move |s| s.close_running(&name, Outcome::Failed, &why)
                })
                .await;
                if let Err(e) = closed {
                    tracing::error!(tenant = %name, error = %e, fix = e.hint().as_deref(), "Cannot record the panic in the store.");
                }
                Err(e.into())
            }
        };
        match &result {
            Ok(r) => {
                crate::tenant_poll::log_finished(r);
                if let Some(after) = after {
                    export_after(&store, after, &name).await;
                }
            }
            Err(e) => {
                tracing::error!(tenant = %name, error = %e, fix = e.hint().unwrap_or_default(), "Poll failed; everything stored before the failure is kept.");
            }
        }
        Finished {
            result,
            token_expiry: tenant.token_expiry(),
            decision: tenant.route.decision(),
        }
    }
}

/// Writes the exports without a schedule for `tenant`'s poll; a failure is logged (the poll's
/// alerts are stored, and the next poll writes the files again).
async fn export_after(store: &Arc<Mutex<Store>>, after: AfterPoll, tenant: &str) {
    if !after.exports.iter().any(|e| e.schedule.is_none()) {
        return;
    }
    let polled = tenant.to_owned();
    let store = store.clone();
    let exported = tokio::task::spawn_blocking(move || {
        let s = store.lock().unwrap_or_else(|p| p.into_inner());
        crate::export::run_after_poll(&s, &after.exports, &after.tenants, Some(&polled))
    })
    .await;
    match exported {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, fix = e.hint().unwrap_or_default(), "Export after the poll failed.")
        }
        Err(e) => tracing::error!(error = %e, "Export task failed."),
    }
}

/// Runs `f` on the store from a blocking thread.
async fn blocking<T: Send + 'static>(
    store: &Arc<Mutex<Store>>,
    f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    })
    .await
    .expect("store task panicked")
}

/// Aborts the task when dropped: the poll dies with the job that awaits it (a signal or the
/// service's shutdown drops the job).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The outcome of `poll` for every tenant.
#[derive(Debug, Default)]
pub struct PollSummary {
    /// Tenants that polled.
    pub ok: Vec<PollReport>,
    /// Tenants that failed, with why.
    pub failed: Vec<(String, JobError)>,
    /// Files written after the poll.
    pub exported: Vec<Written>,
    /// Which API each tenant read, and why (in config order; a tenant whose poll never started
    /// has none).
    pub apis: Vec<(String, Decision)>,
    /// The poll was stopped by SIGINT or SIGTERM: which signal, and the runs it cut short (as
    /// recorded, `interrupted`, with what each had stored; none if no poll had started).
    pub interrupted: Option<(Signal, Vec<RunRow>)>,
}

/// When a poll must stop waiting: the next scheduled poll (or the one after, if the next is less
/// than a minute away, so that a manual poll just before a tick still gets a fair run).
pub(crate) fn poll_deadline(schedule: &croner::Cron) -> Option<tokio::time::Instant> {
    let now = chrono::Utc::now();
    let next = schedule.find_next_occurrence(&now, false).ok()?;
    let next = if next - now < chrono::Duration::seconds(60) {
        schedule.find_next_occurrence(&next, false).ok()?
    } else {
        next
    };
    let wait = (next - now).to_std().ok()?;
    Some(tokio::time::Instant::now() + wait)
}

/// One poll of each tenant (or of `only`), then the configured exports if `export` and at least one
/// tenant succeeded. A tenant's failure does not stop the others.
pub async fn poll(config: &Config, only: Option<&str>, export: bool) -> Result<PollSummary, Error> {
    let tenants: Vec<_> = match only {
        Some(name) => vec![config.tenant(name)?],
        None => config.tenants.iter().collect(),
    };
    // Secrets first: a missing one is a configuration error, reported before anything runs.
    let env = Arc::new(Environment::new(config)?);
    let mut built = Vec::new();
    for t in &tenants {
        built.push(env.tenant(t, Vec::new())?);
    }
    // First, as `config check` does (making an export directory could make the store's): a
    // store path that cannot be a store (a directory, a missing directory) is the
    // config's mistake, said with its key and exit code 78, not an I/O failure found by SQLite.
    crate::preflight::check_store_dir(config)?;
    // An export directory that cannot be written is a configuration error, found before any API
    // call is spent.
    if export {
        crate::export::check_export_dirs(config)?;
    }
    // One writer per store: a second poll or import waits briefly, then says who holds it.
    let _lock = WriterLock::acquire(&config.store.path, WRITER_WAIT)?;
    let store = Arc::new(Mutex::new(Store::open(&config.store.path)?));
    crate::store::reconcile_configured(
        &mut store.lock().unwrap_or_else(|p| p.into_inner()),
        config,
    )?;
    let deadline = poll_deadline(&config.poll.schedule);
    let mut summary = PollSummary::default();
    let stop = stop_signal().map_err(|source| Error::Signal {
        name: "SIGINT/SIGTERM",
        source,
    })?;
    tokio::pin!(stop);
    // Jobs are started `concurrency` at a time, each with its own budget and token, so that a job
    // in flight is a poll under way (what a signal cuts short); one tenant's failure (or panic) is
    // its own. Results are reported in config order.
    let concurrency = config.poll.concurrency.max(1);
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut finished: Vec<Option<Finished>> = (0..tenants.len()).map(|_| None).collect();
    let mut queue = tenants.iter().zip(built).enumerate();
    let mut running = tokio::task::JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, (usize, String)> = HashMap::new();
    loop {
        while running.len() < concurrency {
            let Some((i, (t, tenant))) = queue.next() else {
                break;
            };
            // The calls the store recorded in the last hour, so that the budget outlives the
            // process: read only now, when the tenant's poll starts.
            let history = {
                let s = store.lock().unwrap_or_else(|p| p.into_inner());
                s.recent_calls(&t.name)?
            };
            for lane in [&tenant.mde, &tenant.graph].into_iter().flatten() {
                lane.budget.remember(&history);
            }
            let job = PollJob {
                env: env.clone(),
                tenant,
                store: store.clone(),
                deadline,
                slots: slots.clone(),
                after: None,
            };
            let handle = running.spawn(job.run());
            in_flight.insert(handle.id(), (i, t.name.clone()));
        }
        let joined = tokio::select! {
            j = running.join_next_with_id() => j,
            signal = &mut stop => {
                // Every poll still running is dropped at its next await; a page commit already
                // under way finishes (it holds the store), and then each run row is closed as
                // `interrupted`.
                running.shutdown().await;
                let mut names: Vec<(usize, String)> = in_flight.into_values().collect();
                names.sort();
                let runs = blocking(&store, move |s| {
                    let mut runs = Vec::new();
                    for (_, tenant) in names {
                        s.close_running(&tenant, Outcome::Interrupted, &format!("stopped by {signal} before it finished"))?;
                        runs.extend(s.runs(Some(&tenant), 1)?);
                        tracing::warn!(tenant = %tenant, %signal, "Poll interrupted; everything stored before the signal is kept.");
                    }
                    Ok(runs)
                })
                .await?;
                summary.interrupted = Some((signal, runs));
                return Ok(summary);
            }
        };
        let Some(joined) = joined else {
            break;
        };
        // The job catches its poll's panic itself; only a job aborted from outside ends without
        // a result, and nothing here aborts one.
        let Ok((id, done)) = joined else {
            continue;
        };
        if let Some((i, _)) = in_flight.remove(&id) {
            finished[i] = Some(done);
        }
    }
    let mut token_expiry = Vec::new();
    for (t, done) in tenants.iter().zip(finished) {
        let Some(done) = done else { continue };
        if let Some(d) = done.decision {
            summary.apis.push((t.name.clone(), d));
        }
        if let Some(e) = done.token_expiry {
            token_expiry.push((t.name.clone(), e));
        }
        match done.result {
            Ok(r) => summary.ok.push(r),
            Err(e) => summary.failed.push((t.name.clone(), e)),
        }
    }
    // A one-off poll ends here: its quiet polls' bookkeeping is written now, so that the metrics'
    // counters (read from the store) count them.
    store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .flush_quiet()?;
    if let Some(path) = &config.metrics_textfile {
        let s = store.lock().unwrap_or_else(|p| p.into_inner());
        crate::metrics::publish(path, &s, &config.tenant_names(), &token_expiry)?;
    }
    if export && !summary.ok.is_empty() {
        let store = store.clone();
        let exports = config.exports.clone();
        let tenants = config.tenant_names();
        summary.exported = tokio::task::spawn_blocking(move || {
            let s = store.lock().unwrap_or_else(|p| p.into_inner());
            crate::export::run_after_poll(&s, &exports, &tenants, None)
        })
        .await
        .expect("export task panicked")?;
    }
    Ok(summary)
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

    /// Dropping the job that awaits a poll aborts the poll (a signal or shutdown drops jobs).
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
