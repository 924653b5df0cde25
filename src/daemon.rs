//! `mde-alerts run`: the service. Polls each tenant and writes each scheduled export on its cron
//! schedule until SIGTERM, and talks to systemd.
//!
//! The scheduler is our own small loop over croner schedules rather than tokio-cron-scheduler:
//! that crate is thinly maintained, has no guard against overlapping runs and a DST bug in its
//! time-zone constructors. Here, all schedules are UTC, and:
//!
//! - **No overlap**: a tick that finds the tenant's last poll still running is skipped and logged,
//!   never doubled. Each poll's deadline is its next tick, so a poll gives way on its own.
//! - **Staggered tenants**: tenant *i* of *n* fires `i × min(interval, 60 s) / n` after the tick,
//!   so fifty tenants do not hit Entra and Defender in the same second.
//! - **One token per lifetime**: each tenant keeps its token provider and API budget for the life
//!   of the process (and across SIGHUP if the tenant is unchanged).
//! - **Watchdog from the loop**: `WATCHDOG=1` is sent at half of `WATCHDOG_USEC`, from the
//!   scheduler loop itself, and only while no job has overrun its deadline by more than
//!   [`WEDGE_GRACE`]: a wedged poll stops the pings, and systemd restarts the service. The unit's
//!   `WatchdogSec=` must exceed the longest legitimate overrun (one request timeout).
//! - **READY=1** once the config is valid, the secrets are readable and the store is open and
//!   migrated — not waiting for Microsoft, so an API outage is not a start failure.
//! - **STATUS=** after every run: "last poll 12:05:01 ok: 3 new, 5 updated; next 12:10:00".
//! - **SIGTERM/SIGINT**: no new work; running jobs are cancelled (a commit in progress finishes,
//!   or SQLite rolls it back), `STOPPING=1`, exit 0 within seconds. Temp files of an export cut
//!   short are removed by the next export; `-latest` files are never partial.
//! - **SIGHUP**: the config is read again; a broken one is logged and the running one kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::app::{AppError, tenant_names};
use crate::auth::TokenProvider;
use crate::budget::Budget;
use crate::config::{Config, ConfigError, TenantConfig, cron_interval};
use crate::export::{run_after_poll, run_export};
use crate::poll::{PollSettings, poll_tenant};
use crate::source::mde::MdeSource;
use crate::store::{Store, StoreError, WriterLock};

/// How long a job may overrun its deadline before the watchdog stops being fed.
pub const WEDGE_GRACE: Duration = Duration::from_secs(5);

/// How long shutdown waits for a commit in progress.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

/// Talks to systemd; silent outside it (no `NOTIFY_SOCKET`).
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "sd_notify failed.");
    }
}

/// A job that is running.
struct Running {
    handle: JoinHandle<()>,
    deadline: Option<Instant>,
}

/// A tenant's long-lived state.
struct TenantJob {
    cfg: TenantConfig,
    tokens: Arc<TokenProvider>,
    budget: Arc<Budget>,
    offset: Duration,
    next: DateTime<Utc>,
    running: Option<Running>,
}

/// A scheduled export.
struct ExportJob {
    index: usize,
    next: DateTime<Utc>,
    running: Option<Running>,
}

/// What a finished job reports to the loop.
enum Done {
    Poll {
        tenant: String,
        line: Result<String, String>,
    },
    Export {
        name: String,
        result: Result<usize, String>,
    },
}

/// Everything built from one config.
struct Plan {
    config: Config,
    http: reqwest::Client,
    tenants: Vec<TenantJob>,
    exports: Vec<ExportJob>,
}

fn schedule_of<'a>(config: &'a Config, t: &'a TenantConfig) -> &'a croner::Cron {
    t.schedule.as_ref().unwrap_or(&config.poll.schedule)
}

fn next_after(cron: &croner::Cron, after: DateTime<Utc>, offset: Duration) -> DateTime<Utc> {
    cron.find_next_occurrence(&after, false)
        .unwrap_or(after + chrono::Duration::hours(1))
        + chrono::Duration::from_std(offset).unwrap_or_default()
}

impl Plan {
    /// Builds the jobs of `config`. Secrets, certificates, quotas and network settings are read
    /// afresh (a reload must pick up a rotated secret); running jobs are moved over by
    /// [`Plan::adopt`]. Budgets start from the calls the store recorded.
    fn build(config: Config, store: &Store) -> Result<Plan, AppError> {
        let http = crate::http::client(config.poll.request_timeout, &config.http)
            .map_err(AppError::Http)?;
        let n = config.tenants.len().max(1) as u32;
        let now = Utc::now();
        let mut tenants = Vec::new();
        for (i, t) in config.tenants.iter().enumerate() {
            let interval = cron_interval(schedule_of(&config, t));
            let offset = interval.min(Duration::from_secs(60)) * i as u32 / n;
            let tokens = crate::app::token_provider(&http, t, &config)?;
            let budget = Arc::new(Budget::new(
                config.poll.calls_per_minute,
                config.poll.calls_per_hour,
                store.recent_calls(&t.name)?,
            ));
            tenants.push(TenantJob {
                next: next_after(schedule_of(&config, t), now, offset),
                cfg: t.clone(),
                tokens,
                budget,
                offset,
                running: None,
            });
        }
        let exports = config
            .exports
            .iter()
            .enumerate()
            .filter_map(|(index, e)| {
                e.schedule.as_ref().map(|c| ExportJob {
                    index,
                    next: next_after(c, now, Duration::ZERO),
                    running: None,
                })
            })
            .collect();
        Ok(Plan {
            config,
            http,
            tenants,
            exports,
        })
    }

    /// Takes over the running jobs of `old` (same tenant or export name).
    fn adopt(&mut self, old: Plan) {
        let mut tenants: HashMap<String, Running> = old
            .tenants
            .into_iter()
            .filter_map(|t| t.running.map(|r| (t.cfg.name, r)))
            .collect();
        for t in &mut self.tenants {
            t.running = tenants.remove(&t.cfg.name);
        }
        let mut exports: HashMap<String, Running> = old
            .exports
            .into_iter()
            .filter_map(|e| {
                let name = old.config.exports[e.index].name.clone();
                e.running.map(|r| (name, r))
            })
            .collect();
        for e in &mut self.exports {
            e.running = exports.remove(&self.config.exports[e.index].name);
        }
        // Jobs of removed tenants or exports run to their end; nothing waits for them.
    }

    fn next_wakeup(&self) -> DateTime<Utc> {
        self.tenants
            .iter()
            .map(|t| t.next)
            .chain(self.exports.iter().map(|e| e.next))
            .min()
            .unwrap_or_else(|| Utc::now() + chrono::Duration::hours(1))
    }

    fn wedged(&self) -> Option<String> {
        let now = Instant::now();
        let over = |r: &Running| r.deadline.is_some_and(|d| now > d + WEDGE_GRACE);
        self.tenants
            .iter()
            .find(|t| t.running.as_ref().is_some_and(over))
            .map(|t| t.cfg.name.clone())
    }
}

/// The state file beside the store that tells `status` what the daemon plans next.
pub fn state_path(store: &Path) -> PathBuf {
    let mut p = store.as_os_str().to_owned();
    p.push(".daemon.json");
    PathBuf::from(p)
}

fn write_state(plan: &Plan) {
    let tenants: serde_json::Map<String, serde_json::Value> = plan
        .tenants
        .iter()
        .map(|t| {
            (
                t.cfg.name.clone(),
                serde_json::json!({
                    "next_poll": t.next.to_rfc3339(),
                    "running": t.running.is_some(),
                }),
            )
        })
        .collect();
    let state = serde_json::json!({
        "pid": std::process::id(),
        "written_at": Utc::now().to_rfc3339(),
        "tenants": tenants,
    });
    let path = state_path(&plan.config.store.path);
    if let Err(e) = crate::export::write_atomic(&path, 0o644, |f| {
        serde_json::to_writer_pretty(f, &state).map_err(std::io::Error::other)
    }) {
        tracing::warn!(error = %e, file = %path.display(), "Cannot write the daemon state file.");
    }
}

fn write_metrics(plan: &Plan, store: &Arc<Mutex<Store>>) {
    let Some(path) = &plan.config.metrics_textfile else {
        return;
    };
    // Never block the scheduler loop behind a long export: the next run writes the metrics.
    let Ok(s) = store.try_lock() else {
        tracing::debug!("The store is busy; the metrics are written after the next run.");
        return;
    };
    let expiry: Vec<(String, i64)> = plan
        .tenants
        .iter()
        .filter_map(|t| t.tokens.current_expiry().map(|e| (t.cfg.name.clone(), e)))
        .collect();
    if let Err(e) = crate::metrics::publish(path, &s, &tenant_names(&plan.config), &expiry) {
        tracing::warn!(error = %e, "Cannot read the figures for the metrics.");
    }
}

/// Startup problems that mean "fix the config": exit 78, and systemd does not restart.
fn startup(config: &Config) -> Result<(WriterLock, Store), AppError> {
    crate::config::check_export_dirs(config)?;
    let to_config = |e: StoreError| -> AppError {
        match e {
            StoreError::Open { path, reason, fix } => AppError::Config(ConfigError {
                file: Some(config.path.clone()),
                key: "store.path".into(),
                problem: format!("the store {} cannot be opened: {reason}", path.display()),
                fix,
            }),
            StoreError::Disk { path, reason } => AppError::Config(ConfigError {
                file: Some(config.path.clone()),
                key: "store.path".into(),
                problem: format!("the store {} cannot be written: {reason}", path.display()),
                fix: "put the store on a writable local file system (the unit's StateDirectory=)"
                    .into(),
            }),
            other => AppError::Store(other),
        }
    };
    let lock =
        WriterLock::acquire(&config.store.path, crate::app::WRITER_WAIT).map_err(to_config)?;
    let mut store = Store::open(&config.store.path).map_err(to_config)?;
    // A store that opens but cannot be written (a read-only mount) must fail now, not at the
    // first commit.
    store.check_writable().map_err(to_config)?;
    Ok((lock, store))
}

/// Runs the service until SIGTERM or SIGINT.
pub async fn run(config_path: &Path, config: Config) -> Result<(), AppError> {
    let (_lock, store) = startup(&config)?;
    let store = Arc::new(Mutex::new(store));
    let mut plan = {
        let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
        crate::app::reconcile_tenants(&mut s, &config)?;
        Plan::build(config, &s)?
    };
    let mut term = signal(SignalKind::terminate()).map_err(|e| AppError::Http(e.to_string()))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| AppError::Http(e.to_string()))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| AppError::Http(e.to_string()))?;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let mut next_ping = Instant::now();
    notify(&[sd_notify::NotifyState::Ready]);
    let first = plan.next_wakeup();
    let status = format!("started; first poll {}", first.format("%H:%M:%S"));
    notify(&[sd_notify::NotifyState::Status(&status)]);
    tracing::info!(
        tenants = plan.tenants.len(),
        first = %first.format("%Y-%m-%d %H:%M:%S UTC"),
        "mde-alerts is running."
    );
    write_state(&plan);
    loop {
        let until_job = (plan.next_wakeup() - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        let mut wake = Instant::now() + until_job;
        if watchdog.is_some() {
            wake = wake.min(next_ping);
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                notify(&[sd_notify::NotifyState::Reloading]);
                plan = reload(config_path, plan, &store);
                write_state(&plan);
                notify(&[sd_notify::NotifyState::Ready]);
            }
            Some(done) = done_rx.recv() => {
                finish(&mut plan, done, &store);
                continue;
            }
        }
        let now = Utc::now();
        // A job that ended without reporting (it panicked) must not block its tenant forever.
        for t in &mut plan.tenants {
            if t.running.as_ref().is_some_and(|r| r.handle.is_finished()) {
                t.running = None;
            }
        }
        for e in &mut plan.exports {
            if e.running.as_ref().is_some_and(|r| r.handle.is_finished()) {
                e.running = None;
            }
        }
        for i in 0..plan.tenants.len() {
            if plan.tenants[i].next > now {
                continue;
            }
            let cron = schedule_of(&plan.config, &plan.tenants[i].cfg).clone();
            let offset = plan.tenants[i].offset;
            let following = next_after(&cron, now, offset);
            plan.tenants[i].next = following;
            if plan.tenants[i].running.is_some() {
                tracing::warn!(
                    tenant = %plan.tenants[i].cfg.name,
                    "The previous poll is still running; this tick is skipped."
                );
                continue;
            }
            let deadline = Instant::now() + (following - now).to_std().unwrap_or_default();
            let handle = spawn_poll(&plan, i, store.clone(), deadline, done_tx.clone());
            plan.tenants[i].running = Some(Running {
                handle,
                deadline: Some(deadline),
            });
        }
        for j in 0..plan.exports.len() {
            if plan.exports[j].next > now {
                continue;
            }
            let index = plan.exports[j].index;
            let Some(cron) = plan.config.exports[index].schedule.clone() else {
                continue;
            };
            plan.exports[j].next = next_after(&cron, now, Duration::ZERO);
            if plan.exports[j].running.is_some() {
                tracing::warn!(export = %plan.config.exports[index].name, "The previous export is still running; this tick is skipped.");
                continue;
            }
            let handle = spawn_export(&plan, index, store.clone(), done_tx.clone());
            plan.exports[j].running = Some(Running {
                handle,
                deadline: None,
            });
        }
        write_state(&plan);
        if let Some(period) = watchdog
            && Instant::now() >= next_ping
        {
            match plan.wedged() {
                None => notify(&[sd_notify::NotifyState::Watchdog]),
                Some(t) => tracing::error!(
                    tenant = %t,
                    "A poll has overrun its deadline; the watchdog is no longer fed, so systemd will restart the service."
                ),
            }
            next_ping = Instant::now() + period;
        }
    }
    shutdown(plan, &store).await;
    Ok(())
}

fn spawn_poll(
    plan: &Plan,
    i: usize,
    store: Arc<Mutex<Store>>,
    deadline: Instant,
    done: mpsc::UnboundedSender<Done>,
) -> JoinHandle<()> {
    let t = &plan.tenants[i];
    let source = MdeSource::new(
        plan.http.clone(),
        &t.cfg.api_url,
        t.tokens.clone(),
        plan.config.poll.expand_evidence,
        t.budget.clone(),
    )
    .with_deadline(Some(deadline));
    let settings = PollSettings {
        overlap: plan.config.poll.overlap,
        initial_lookback: plan.config.poll.initial_lookback,
        page_size: plan.config.poll.page_size,
    };
    let tenant = t.cfg.name.clone();
    let exports = plan.config.exports.clone();
    let tenants = tenant_names(&plan.config);
    tokio::spawn(async move {
        // The poll runs as its own task, so that a panic in it (a bug) is caught here, recorded
        // as the run's error and shown by `status`, instead of leaving the run "running".
        let mut poll = AbortOnDrop(tokio::spawn({
            let store = store.clone();
            let tenant = tenant.clone();
            async move { poll_tenant(&source, &store, &tenant, settings).await }
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
        let line = match result {
            Ok(r) => {
                tracing::info!("{r}");
                // Exports without a schedule follow every successful poll.
                if exports.iter().any(|e| e.schedule.is_none()) {
                    let store = store.clone();
                    let exported = tokio::task::spawn_blocking(move || {
                        let s = store.lock().unwrap_or_else(|p| p.into_inner());
                        run_after_poll(&s, &exports, &tenants)
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
        let _ = done.send(Done::Poll { tenant, line });
    })
}

/// Aborts the task when dropped: the poll task dies with the job that awaits it (shutdown aborts
/// the job).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The text of a task's panic (or why it ended without a result).
fn panic_message(join: tokio::task::JoinError) -> String {
    match join.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into()),
        Err(join) => join.to_string(),
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

fn spawn_export(
    plan: &Plan,
    index: usize,
    store: Arc<Mutex<Store>>,
    done: mpsc::UnboundedSender<Done>,
) -> JoinHandle<()> {
    let e = plan.config.exports[index].clone();
    let tenants = tenant_names(&plan.config);
    tokio::spawn(async move {
        let name = e.name.clone();
        let result = tokio::task::spawn_blocking(move || {
            let s = store.lock().unwrap_or_else(|p| p.into_inner());
            run_export(&s, &e, &tenants)
        })
        .await;
        let result = match result {
            Ok(Ok(w)) => {
                for f in &w {
                    tracing::info!(file = %f.path.display(), rows = f.rows, "Export written.");
                }
                Ok(w.len())
            }
            Ok(Err(err)) => {
                tracing::error!(export = %name, error = %err, "Export failed; the previous files are kept.");
                Err(err.to_string())
            }
            Err(err) => Err(err.to_string()),
        };
        let _ = done.send(Done::Export { name, result });
    })
}

fn finish(plan: &mut Plan, done: Done, store: &Arc<Mutex<Store>>) {
    match done {
        Done::Poll { tenant, line } => {
            if let Some(t) = plan.tenants.iter_mut().find(|t| t.cfg.name == tenant) {
                t.running = None;
            }
            let next = plan.next_wakeup().format("%H:%M:%S");
            let now = Utc::now().format("%H:%M:%S");
            let status = match &line {
                Ok(l) => format!("last poll of {tenant} {now} ok: {l}; next {next}"),
                Err(e) => format!(
                    "last poll of {tenant} {now} FAILED: {}; next {next}",
                    e.chars().take(160).collect::<String>()
                ),
            };
            notify(&[sd_notify::NotifyState::Status(&status)]);
            write_metrics(plan, store);
        }
        Done::Export { name, result } => {
            for e in &mut plan.exports {
                if plan.config.exports[e.index].name == name {
                    e.running = None;
                }
            }
            if let Err(err) = result {
                notify(&[sd_notify::NotifyState::Status(&format!(
                    "export {name} FAILED: {}",
                    err.chars().take(160).collect::<String>()
                ))]);
            }
        }
    }
    write_state(plan);
}

fn reload(config_path: &Path, plan: Plan, store: &Arc<Mutex<Store>>) -> Plan {
    let fresh = Config::load(config_path).and_then(|c| {
        crate::config::check_export_dirs(&c)?;
        for t in &c.tenants {
            t.check_secrets().map_err(|e| e.in_file_of(&c))?;
        }
        Ok(c)
    });
    let config = match fresh {
        Ok(c) if c.store.path != plan.config.store.path => {
            tracing::error!(
                "SIGHUP: the new config moves the store; restart the service for that. Keeping the running config."
            );
            let _ = c;
            return plan;
        }
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the new config is invalid; keeping the running one.");
            return plan;
        }
    };
    let built = {
        let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
        crate::app::reconcile_tenants(&mut s, &config)
            .map_err(AppError::from)
            .and_then(|()| Plan::build(config, &s))
    };
    match built {
        Ok(mut p) => {
            p.adopt(plan);
            tracing::info!(
                tenants = p.tenants.len(),
                exports = p.config.exports.len(),
                "SIGHUP: configuration reloaded."
            );
            p
        }
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the new config cannot be used; keeping the running one.");
            plan
        }
    }
}

async fn shutdown(plan: Plan, store: &Arc<Mutex<Store>>) {
    notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!("Stopping: no new work; cancelling running jobs.");
    for t in &plan.tenants {
        if let Some(r) = &t.running {
            r.handle.abort();
        }
    }
    for e in &plan.exports {
        if let Some(r) = &e.running {
            r.handle.abort();
        }
    }
    // A commit or export running on a blocking thread holds the store: wait for it briefly, so the
    // transaction finishes rather than being cut by the exit (SQLite would roll it back anyway).
    // The runs cut short are closed as `interrupted` (so `status` does not call them running).
    let cut: Vec<String> = plan
        .tenants
        .iter()
        .filter(|t| t.running.is_some())
        .map(|t| t.cfg.name.clone())
        .collect();
    let store = store.clone();
    let waited = tokio::time::timeout(
        SHUTDOWN_WAIT,
        tokio::task::spawn_blocking(move || {
            let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
            for tenant in &cut {
                if let Err(e) = s.close_running(
                    tenant,
                    crate::store::Outcome::Interrupted,
                    "stopped by the service's shutdown before it finished",
                ) {
                    tracing::warn!(tenant = %tenant, error = %e, "Cannot close the interrupted run.");
                }
            }
        }),
    )
    .await;
    if waited.is_err() {
        tracing::warn!("A store operation was still running at shutdown; SQLite rolls it back.");
    }
    let _ = std::fs::remove_file(state_path(&plan.config.store.path));
    tracing::info!("Stopped.");
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
