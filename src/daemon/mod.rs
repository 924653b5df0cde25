//! `mde-alerts run`: the service. Polls each tenant and writes each scheduled export on its cron
//! schedule until SIGTERM, and talks to systemd.
//!
//! **tokio-cron-scheduler fires the schedules, our rules decide.** It fires every schedule
//! (`ticker`: UTC only, one cron job per distinct expression, however many tenants share it).
//! Each firing is a tick into this loop; what a tick starts is decided by [`scheduler`], a pure
//! module tested on fixed instants, because the crate lacks what we need: it has no guard against
//! overlapping runs (mvniekerk/tokio-cron-scheduler#83), its time-zone constructors run an hour
//! off after a DST change (mvniekerk/tokio-cron-scheduler#107), and it cannot stagger tenants.
//! All schedules are UTC, and:
//!
//! - **No overlap**: a tick that finds the tenant's last poll still running is skipped and logged,
//!   never doubled. Each poll's deadline is its next tick, so a poll gives way on its own.
//! - **Staggered tenants**: tenant *i* of *n* fires `i × min(interval, 60 s) / n` after the tick,
//!   so fifty tenants do not hit Entra and Defender in the same second. A tick is noticed up to
//!   half a second late (tokio-cron-scheduler looks every 500 ms); the stagger counts from the
//!   cron time, so only tenant 0 starts that late.
//! - **One token per lifetime**: each tenant keeps its token provider and API budget for the life
//!   of the process (and across SIGHUP if the tenant is unchanged).
//! - **Watchdog from the loop**: `WATCHDOG=1` is sent at half of `WATCHDOG_USEC`, from the
//!   scheduler loop itself, and only while no job has overrun its deadline by more than
//!   [`WEDGE_GRACE`]: a wedged poll stops the pings, and systemd restarts the service. The unit's
//!   `WatchdogSec=` must exceed the longest legitimate overrun (one request timeout).
//! - **READY=1** once the config is valid, the secrets are readable and the store is open and
//!   migrated — not waiting for Microsoft, so an API outage is not a start failure.
//! - **STATUS=** after every run: "last poll 12:05:01 ok: 3 new, 5 updated; next 12:10:00".
//! - **A panicking poll** (a bug) runs as its own task, so the panic is recorded as the run's
//!   error (and shown by `status`) instead of leaving the run "running".
//! - **SIGTERM/SIGINT**: no new work; running jobs are cancelled (a commit in progress finishes,
//!   or SQLite rolls it back) and their runs closed as `interrupted`, `STOPPING=1`, exit 0 within
//!   seconds. Temp files of an export cut short are removed by the next export; `-latest` files
//!   are never partial.
//! - **SIGHUP**: the config is read again (renamed tenants reconciled in the store, as at start);
//!   a broken one is logged and the running one kept; running jobs are adopted by name.
//!
//! [`run`] wires signals, tokio-cron-scheduler and sd_notify to [`serve`]; a test drives
//! [`serve`] in-process with a [`Driver`] of its own: ticks it sends, a clock, a stop, and the
//! [`Event`]s it watches.

mod jobs;
mod publish;
pub mod scheduler;
pub mod state;
mod systemd;
mod ticker;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError};
use crate::env::{Environment, TenantEnv};
use crate::error::Error;
use crate::store::{Store, StoreError, WRITER_WAIT, WriterLock};

pub use scheduler::{Clock, JobKey, SystemClock, Tick, TokioClock, schedule_key};
pub use state::{DaemonState, state_path};

use jobs::{Done, spawn_export, spawn_poll};
use publish::Publisher;
use scheduler::{Due, Scheduler};
use systemd::{Outlet, Watchdog};

/// How long a job may overrun its deadline before the watchdog stops being fed.
pub const WEDGE_GRACE: Duration = Duration::from_secs(5);

/// How long shutdown waits for a commit in progress.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

/// The service's SQLite page cache, in KiB (see [`Store::set_cache`]): at 10,000 tenants the
/// store's default of 32 MiB was a third of the service's memory and bought nothing measurable.
const SERVICE_CACHE_KIB: u32 = 8 * 1024;

/// What the loop does, for an observer (an in-process test watches these instead of the log).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A notice as systemd receives it: `READY=1`, `STATUS=…`, `WATCHDOG=1`, `STOPPING=1`.
    Notify(String),
    /// A job started.
    Started(JobKey),
    /// A tick found the job still running and was skipped.
    Skipped(JobKey),
    /// A job finished (`ok`: it succeeded).
    Finished {
        /// The job.
        key: JobKey,
        /// It succeeded.
        ok: bool,
    },
    /// A poll overran its deadline and the grace: the watchdog ping was withheld.
    Wedged(JobKey),
    /// A reload took the new config.
    Reloaded,
    /// A reload kept the running config, for this reason.
    ReloadRejected(String),
}

/// What a driver asks of the loop (SIGHUP, SIGTERM/SIGINT in the service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Read the config again.
    Reload,
    /// Stop: cancel running jobs and return.
    Stop,
}

/// Where the ticks come from.
#[derive(Debug)]
pub enum Ticks {
    /// tokio-cron-scheduler fires the config's schedules.
    Cron,
    /// The driver sends them (a test).
    Manual(mpsc::UnboundedReceiver<Tick>),
}

/// What drives [`serve`]: the service's is [`run`]'s; a test builds its own (`Driver::manual`,
/// with the `test-support` feature).
pub struct Driver {
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// The ticks.
    pub ticks: Ticks,
    /// Reload and stop; the loop also stops when every sender is gone.
    pub control: mpsc::UnboundedReceiver<Control>,
    /// The observer of [`Event`]s.
    pub events: Option<mpsc::UnboundedSender<Event>>,
    /// Ping the watchdog this often (half of systemd's `WATCHDOG_USEC`).
    pub watchdog: Option<Duration>,
    /// How long a poll may overrun its deadline before the pings stop ([`WEDGE_GRACE`]).
    pub wedge_grace: Duration,
    /// Talk to systemd's notify socket.
    pub systemd: bool,
}

/// The test's side of a [`Driver::manual`].
#[cfg(any(test, feature = "test-support"))]
pub struct Remote {
    /// Send ticks.
    pub ticks: mpsc::UnboundedSender<Tick>,
    /// Send reload and stop.
    pub control: mpsc::UnboundedSender<Control>,
    /// Receive what the loop does.
    pub events: mpsc::UnboundedReceiver<Event>,
    /// The calendar the loop reads.
    calendar: Arc<TestCalendar>,
}

#[cfg(any(test, feature = "test-support"))]
impl Driver {
    /// A driver for a test: ticks, control and events through channels, a calendar that moves
    /// only when the test fires a schedule ([`Remote::fire`]), no systemd, no watchdog (set one
    /// on the driver to watch the pings).
    pub fn manual() -> (Driver, Remote) {
        let (ticks_tx, ticks_rx) = mpsc::unbounded_channel();
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let calendar = Arc::new(TestCalendar(Mutex::new(chrono::Utc::now())));
        let driver = Driver {
            clock: calendar.clone(),
            ticks: Ticks::Manual(ticks_rx),
            control: control_rx,
            events: Some(events_tx),
            watchdog: None,
            wedge_grace: WEDGE_GRACE,
            systemd: false,
        };
        let remote = Remote {
            ticks: ticks_tx,
            control: control_tx,
            events: events_rx,
            calendar,
        };
        (driver, remote)
    }
}

/// The calendar of a [`Driver::manual`]: it stands still until the test fires a schedule, so no
/// test waits for a cron time or a staggered start; deadlines and the watchdog keep the
/// monotonic clock.
#[cfg(any(test, feature = "test-support"))]
#[derive(Debug)]
pub struct TestCalendar(Mutex<chrono::DateTime<chrono::Utc>>);

#[cfg(any(test, feature = "test-support"))]
impl Clock for TestCalendar {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(any(test, feature = "test-support"))]
impl Remote {
    /// Fires `cron` at its next time on the calendar, for the `jobs` that share it, and first
    /// moves the calendar to the last of their staggered starts, so that all of them start at
    /// once. Each poll's deadline is then its schedule's next firing plus its stagger, as in the
    /// service: a day away for a daily schedule, a second for an every-second one.
    pub fn fire(&self, cron: &croner::Cron, jobs: usize) {
        let at = {
            let mut now = self.calendar.0.lock().unwrap_or_else(|p| p.into_inner());
            let at = cron
                .find_next_occurrence(&now, false)
                .expect("a schedule that fires");
            let last = scheduler::stagger(
                jobs.saturating_sub(1),
                jobs,
                scheduler::interval_at(cron, at),
            );
            *now = at + chrono::Duration::from_std(last).unwrap_or_default();
            at
        };
        self.ticks
            .send(Tick {
                schedule: schedule_key(cron),
                at,
            })
            .expect("the loop is running");
    }
}

/// What the polls of one schedule interval did, summed up for one log line: a quiet service of a
/// thousand tenants logs that line, not a thousand. Said when no poll is running or waiting for
/// its staggered start.
#[derive(Debug, Default)]
struct Interval {
    polled: u64,
    failed: u64,
    new: u64,
    updated: u64,
    api_calls: u64,
    throttled: u64,
    slowest: Option<(String, Duration)>,
    /// Tenants whose tick found their last poll still running.
    skipped: Vec<String>,
}

impl Interval {
    fn add(&mut self, tenant: &str, figures: Option<jobs::Figures>) {
        self.polled += 1;
        let Some(f) = figures else {
            self.failed += 1;
            return;
        };
        self.new += f.new;
        self.updated += f.updated;
        self.api_calls += f.api_calls;
        self.throttled += f.throttled;
        if self.slowest.as_ref().is_none_or(|(_, d)| f.elapsed > *d) {
            self.slowest = Some((tenant.to_owned(), f.elapsed));
        }
    }

    /// Logs the line and starts afresh.
    fn say(&mut self) {
        let i = std::mem::take(self);
        if !i.skipped.is_empty() {
            let shown: Vec<&str> = i.skipped.iter().take(5).map(String::as_str).collect();
            tracing::warn!(
                tenants = i.skipped.len(),
                "{} tenant{}' previous poll was still running, so this tick was skipped for {}{}: polls take longer than the schedule allows (poll less often, or raise [poll] concurrency)",
                i.skipped.len(),
                if i.skipped.len() == 1 { "" } else { "s" },
                shown.join(", "),
                if i.skipped.len() > shown.len() {
                    format!(" and {} more", i.skipped.len() - shown.len())
                } else {
                    String::new()
                }
            );
        }
        if i.polled == 0 {
            return;
        }
        let (slowest, slowest_secs) = i
            .slowest
            .map(|(t, d)| (t, d.as_secs_f64()))
            .unwrap_or_default();
        tracing::info!(
            polled = i.polled,
            failed = i.failed,
            new = i.new,
            updated = i.updated,
            api_calls = i.api_calls,
            throttled = i.throttled,
            slowest = %slowest,
            slowest_secs,
            "Polled {} tenant{}: {} new, {} updated, {} failed; {} API call{}{}{}.",
            i.polled,
            if i.polled == 1 { "" } else { "s" },
            i.new,
            i.updated,
            i.failed,
            i.api_calls,
            if i.api_calls == 1 { "" } else { "s" },
            if i.throttled > 0 {
                format!(", {} throttled", i.throttled)
            } else {
                String::new()
            },
            // Only a tenant that finished has a time: when every one failed there is no slowest.
            if slowest.is_empty() {
                String::new()
            } else {
                format!("; slowest {slowest} ({slowest_secs:.1} s)")
            }
        );
    }
}

/// Everything built from one config.
struct Plan {
    config: Config,
    /// The HTTP client and `[poll]` settings every job of this config shares.
    env: Arc<Environment>,
    tenants: HashMap<String, TenantEnv>,
    sched: Scheduler<JoinHandle<()>>,
    /// The tenants' names and the exports, shared by every job rather than copied for each
    /// (a copy per poll made a poll's cost grow with the number of tenants).
    names: Arc<Vec<String>>,
    exports: Arc<Vec<crate::config::ExportConfig>>,
    /// Polls that may run at once (`[poll] concurrency`). A tick of 10,000 tenants started 10,000
    /// polls together, each with its own connection and buffers in flight: memory grew with the
    /// number of tenants. A started job waits here for a slot, holding only its small setup.
    slots: Arc<tokio::sync::Semaphore>,
}

impl Plan {
    /// Builds the jobs of `config`. Secrets, certificates, quotas and network settings are read
    /// afresh (a reload must pick up a rotated secret); running jobs are moved over by
    /// [`Scheduler::adopt`]. Budgets start from the calls the store recorded.
    fn build(
        config: Config,
        store: &Store,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Plan, Error> {
        let env = Arc::new(Environment::new(&config)?);
        let mut tenants = HashMap::new();
        for t in &config.tenants {
            let tenant = env.tenant(t, store.recent_calls(&t.name)?)?;
            tenants.insert(t.name.clone(), tenant);
        }
        // One `Cron` per distinct schedule, shared by its jobs (see `scheduler::Job::cron`).
        let mut shared: HashMap<String, Arc<croner::Cron>> = HashMap::new();
        let mut share = |cron: &croner::Cron| {
            shared
                .entry(schedule_key(cron))
                .or_insert_with(|| Arc::new(cron.clone()))
                .clone()
        };
        let polls: Vec<(String, Arc<croner::Cron>)> = config
            .tenants
            .iter()
            .map(|t| {
                let cron = t.schedule.as_deref().unwrap_or(&config.poll.schedule);
                (t.name.clone(), share(cron))
            })
            .collect();
        let exports: Vec<(String, Arc<croner::Cron>)> = config
            .exports
            .iter()
            .filter_map(|e| e.schedule.as_ref().map(|c| (e.name.clone(), share(c))))
            .collect();
        Ok(Plan {
            sched: Scheduler::new(polls, exports, now),
            names: Arc::new(config.tenant_names()),
            exports: Arc::new(config.exports.clone()),
            slots: Arc::new(tokio::sync::Semaphore::new(config.poll.concurrency.max(1))),
            config,
            env,
            tenants,
        })
    }

    /// The next start of any job, or in an hour if there is none.
    fn next_start(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        self.sched
            .next_start_any(now)
            .unwrap_or(now + chrono::Duration::hours(1))
    }
}

/// Whether two lanes sign in alike (both absent, or the same sign-in).
fn same_lane(old: &Option<crate::env::Lane>, new: &Option<crate::env::Lane>) -> bool {
    match (old, new) {
        (None, None) => true,
        (Some(a), Some(b)) => a.tokens.same_sign_in(&b.tokens),
        _ => false,
    }
}

/// The state file of `plan` at `now` (its path is the store's plus `.daemon.json`).
fn daemon_state(
    plan: &Plan,
    now: chrono::DateTime<chrono::Utc>,
) -> (DaemonState, std::path::PathBuf) {
    let state = DaemonState {
        pid: std::process::id(),
        written_at: now,
        tenants: plan
            .sched
            .polls(now)
            .into_iter()
            .map(|(t, next_poll, running)| {
                (t.to_owned(), state::TenantState { next_poll, running })
            })
            .collect(),
    };
    (state, plan.config.store.path.clone())
}

/// Each tenant's current token expiry, for the metrics.
fn token_expiry(plan: &Plan) -> Vec<(String, i64)> {
    plan.config
        .tenants
        .iter()
        .filter_map(|t| {
            let rt = plan.tenants.get(&t.name)?;
            rt.token_expiry().map(|e| (t.name.clone(), e))
        })
        .collect()
}

/// Writes what is dirty and due (see [`publish`]), and the quiet polls' bookkeeping once due
/// (see [`crate::store::FLUSH_EVERY`]).
fn publish(publisher: &mut Publisher, plan: &Plan, store: &Mutex<Store>, clock: &dyn Clock) {
    // Not behind a long transaction: the loop comes back here after every job.
    if let Ok(mut s) = store.try_lock()
        && let Err(e) = s.flush_quiet_if_due()
    {
        tracing::warn!(error = %e, fix = e.hint().as_deref(), "Cannot record the quiet polls' bookkeeping; it is tried again.");
    }
    publisher.publish(
        clock.instant(),
        || Some(daemon_state(plan, clock.now())),
        store,
        || token_expiry(plan),
    );
}

/// Runs the service until SIGTERM or SIGINT: signals, tokio-cron-scheduler and systemd wired to
/// [`serve`].
pub async fn run(config_path: &Path, config: Config) -> Result<(), Error> {
    let listen = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| Error::Signal { name, source })
    };
    let mut term = listen(SignalKind::terminate(), "SIGTERM")?;
    let mut int = listen(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = listen(SignalKind::hangup(), "SIGHUP")?;
    let (control, control_rx) = mpsc::unbounded_channel();
    // Signals become controls; the task ends with the loop (its receiver gone).
    tokio::spawn(async move {
        loop {
            let c = tokio::select! {
                _ = term.recv() => Control::Stop,
                _ = int.recv() => Control::Stop,
                _ = hup.recv() => Control::Reload,
            };
            if control.send(c).is_err() {
                return;
            }
        }
    });
    let driver = Driver {
        clock: Arc::new(SystemClock),
        ticks: Ticks::Cron,
        control: control_rx,
        events: None,
        watchdog: systemd::watchdog_period(),
        wedge_grace: WEDGE_GRACE,
        systemd: true,
    };
    serve(config_path, config, driver).await
}

/// Runs the service's loop with `driver` until it says stop: opens the store, builds the jobs,
/// then starts what is due, finishes what reports, reloads and pings the watchdog.
pub async fn serve(config_path: &Path, config: Config, driver: Driver) -> Result<(), Error> {
    let Driver {
        clock,
        ticks,
        mut control,
        events,
        watchdog,
        wedge_grace,
        systemd,
    } = driver;
    let out = Outlet { systemd, events };
    let (_lock, store) = startup(&config)?;
    let store = Arc::new(Mutex::new(store));
    // Retention, once a day, in short transactions beside the polls; with every revision kept it
    // still bounds the runs.
    let keep = (config.store.keep_revisions).unwrap_or(crate::store::retention::KEEP_ALL);
    let retention = Some(tokio::spawn(crate::store::retention::daily(
        store.clone(),
        keep,
    )));
    let mut plan = {
        let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
        crate::store::reconcile_configured(&mut s, &config)?;
        Plan::build(config, &s, clock.now())?
    };
    let (mut ticker, mut ticks) = match ticks {
        Ticks::Cron => {
            let (tx, rx) = mpsc::unbounded_channel();
            let mut ticker = ticker::Ticker::start(tx).await.map_err(Error::Cron)?;
            ticker
                .set(&plan.sched.schedules())
                .await
                .map_err(Error::Cron)?;
            (Some(ticker), rx)
        }
        Ticks::Manual(rx) => (None, rx),
    };
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut watchdog = watchdog.map(|p| Watchdog::new(p, clock.instant()));
    out.notify(sd_notify::NotifyState::Ready);
    let first = plan.next_start(clock.now());
    out.notify(sd_notify::NotifyState::Status(&systemd::started(first)));
    tracing::info!(
        tenants = plan.sched.poll_count(),
        first = %first.format("%Y-%m-%d %H:%M:%S UTC"),
        "mde-alerts is running."
    );
    let mut publisher = Publisher::new(plan.config.metrics_textfile.clone(), &plan.names);
    publish(&mut publisher, &plan, &store, clock.as_ref());
    let mut interval = Interval::default();
    loop {
        let mut wake = match plan.sched.next_wakeup() {
            Some(at) => clock.instant_at(at),
            None => clock.instant() + Duration::from_secs(3600),
        };
        if let Some(at) = publisher.next_due() {
            wake = wake.min(at);
        }
        if let Some(d) = store.try_lock().ok().and_then(|s| s.quiet_due_in()) {
            wake = wake.min(clock.instant() + d);
        }
        if let Some(w) = &watchdog {
            wake = wake.min(w.next());
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            Some(tick) = ticks.recv() => {
                plan.sched.tick(&tick);
            }
            c = control.recv() => match c {
                Some(Control::Reload) => {
                    out.notify(sd_notify::NotifyState::Reloading);
                    plan = reload(config_path, plan, &store, clock.as_ref(), &out);
                    if let Some(t) = &mut ticker
                        && let Err(e) = t.set(&plan.sched.schedules()).await
                    {
                        tracing::error!(error = %e, "SIGHUP: tokio-cron-scheduler did not take the new schedules.");
                    }
                    publisher.reconfigure(plan.config.metrics_textfile.clone(), &plan.names);
                    out.notify(sd_notify::NotifyState::Ready);
                }
                Some(Control::Stop) | None => break,
            },
            Some(done) = done_rx.recv() => {
                finish(&mut plan, done, &mut interval, &mut publisher, clock.as_ref(), &out);
                publish(&mut publisher, &plan, &store, clock.as_ref());
                continue;
            }
        }
        // A job that ended without reporting must not block its tenant forever.
        plan.sched.sweep(JoinHandle::is_finished);
        let now = clock.now();
        for due in plan.sched.due(now) {
            match due {
                Due::Skip(key) => {
                    match &key {
                        JobKey::Poll(t) => {
                            tracing::debug!(
                                tenant = %t,
                                "The previous poll is still running; this tick is skipped."
                            );
                            interval.skipped.push(t.clone());
                        }
                        JobKey::Export(e) => tracing::warn!(
                            export = %e,
                            "The previous export is still running; this tick is skipped."
                        ),
                    }
                    out.event(Event::Skipped(key));
                }
                Due::Start { key, deadline } => {
                    let deadline = deadline.map(|d| clock.instant_at(d));
                    let handle = match &key {
                        JobKey::Poll(t) => {
                            spawn_poll(&plan, t, store.clone(), deadline, done_tx.clone())
                        }
                        JobKey::Export(e) => spawn_export(&plan, e, store.clone(), done_tx.clone()),
                    };
                    if let Some(handle) = handle {
                        plan.sched.start(&key, handle, deadline);
                        publisher.state_changed();
                        out.event(Event::Started(key));
                    }
                }
            }
        }
        publish(&mut publisher, &plan, &store, clock.as_ref());
        if let Some(w) = &mut watchdog
            && w.due(clock.instant())
        {
            match plan.sched.wedged(clock.instant(), wedge_grace) {
                None => out.notify(sd_notify::NotifyState::Watchdog),
                Some(key) => {
                    let (JobKey::Poll(name) | JobKey::Export(name)) = key;
                    tracing::error!(
                        tenant = %name,
                        "A poll has overrun its deadline; the watchdog is no longer fed, so systemd will restart the service."
                    );
                    out.event(Event::Wedged(key.clone()));
                }
            }
        }
    }
    if let Some(t) = ticker {
        t.stop().await;
    }
    let expiry = token_expiry(&plan);
    retention.inspect(tokio::task::JoinHandle::abort);
    shutdown(plan, &store, &out).await;
    publisher.flush_metrics(&store, expiry);
    Ok(())
}

/// Records a finished job; the interval's summary is said once its last poll is done, before the
/// job's `Finished` event (an observer that saw the event has the line too).
fn finish(
    plan: &mut Plan,
    done: Done,
    interval: &mut Interval,
    publisher: &mut Publisher,
    clock: &dyn Clock,
    out: &Outlet,
) {
    match done {
        Done::Poll { tenant, result } => {
            interval.add(&tenant, result.as_ref().ok().copied());
            let key = JobKey::Poll(tenant);
            plan.sched.finish(&key);
            if !plan.sched.polls_outstanding() {
                interval.say();
            }
            let now = clock.now();
            let JobKey::Poll(tenant) = &key else {
                unreachable!()
            };
            let status = systemd::after_poll(tenant, now, result.as_ref(), plan.next_start(now));
            out.notify(sd_notify::NotifyState::Status(&status));
            publisher.polled(tenant);
            out.event(Event::Finished {
                key,
                ok: result.is_ok(),
            });
        }
        Done::Export { name, result } => {
            if let Err(err) = &result {
                out.notify(sd_notify::NotifyState::Status(&systemd::export_failed(
                    &name, err,
                )));
            }
            let key = JobKey::Export(name);
            plan.sched.finish(&key);
            out.event(Event::Finished {
                key,
                ok: result.is_ok(),
            });
            publisher.state_changed();
        }
    }
}

/// Reads the config again; on any problem logs why and keeps `plan`.
fn reload(
    config_path: &Path,
    plan: Plan,
    store: &Arc<Mutex<Store>>,
    clock: &dyn Clock,
    out: &Outlet,
) -> Plan {
    let reject = |why: &str, error: Option<String>, plan: Plan| {
        match &error {
            Some(e) => tracing::error!(error = %e, "{why}"),
            None => tracing::error!("{why}"),
        }
        out.event(Event::ReloadRejected(match error {
            Some(e) => format!("{why} {e}"),
            None => why.to_owned(),
        }));
        plan
    };
    let fresh = Config::load(config_path).and_then(|c| {
        crate::export::check_export_dirs(&c)?;
        for t in &c.tenants {
            t.check_secrets().map_err(|e| t.in_its_file(e))?;
        }
        Ok(c)
    });
    let config = match fresh {
        Ok(c) if c.store.path != plan.config.store.path => {
            return reject(
                "SIGHUP: the new config moves the store; restart the service for that. Keeping the running config.",
                None,
                plan,
            );
        }
        Ok(c) => c,
        Err(e) => {
            return reject(
                "SIGHUP: the new config is invalid; keeping the running one.",
                Some(e.with_fix()),
                plan,
            );
        }
    };
    let built = {
        let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
        crate::store::reconcile_configured(&mut s, &config)
            .map_err(Error::from)
            .and_then(|()| Plan::build(config, &s, clock.now()))
    };
    match built {
        Ok(mut p) => {
            p.sched.adopt(plan.sched);
            // A tenant the reload does not change (settings, quotas, network, credentials) keeps
            // its token providers, budgets and route: only added and changed tenants sign in.
            let same_net = p.config.http == plan.config.http
                && p.config.poll.request_timeout == plan.config.poll.request_timeout;
            let same_quotas = |api| plan.config.poll.quotas(api) == p.config.poll.quotas(api);
            for new in p.tenants.values_mut() {
                if let Some(old) = plan.tenants.get(&new.cfg.name)
                    && same_net
                    && old.cfg.same_settings(&new.cfg)
                    && same_quotas(crate::config::SourceKind::Mde)
                    && same_quotas(crate::config::SourceKind::Graph)
                    && same_lane(&old.mde, &new.mde)
                    && same_lane(&old.graph, &new.graph)
                {
                    *new = crate::env::TenantEnv {
                        cfg: new.cfg.clone(),
                        ..old.clone()
                    };
                }
            }
            tracing::info!(
                tenants = p.sched.poll_count(),
                exports = p.config.exports.len(),
                "SIGHUP: configuration reloaded."
            );
            out.event(Event::Reloaded);
            p
        }
        Err(e) => reject(
            "SIGHUP: the new config cannot be used; keeping the running one.",
            Some(match e.hint() {
                Some(fix) => format!("{e}\n  fix: {fix}"),
                None => e.to_string(),
            }),
            plan,
        ),
    }
}

async fn shutdown(plan: Plan, store: &Arc<Mutex<Store>>, out: &Outlet) {
    out.notify(sd_notify::NotifyState::Stopping);
    tracing::info!("Stopping: no new work; cancelling running jobs.");
    let mut cut = Vec::new();
    for (key, r) in plan.sched.running() {
        r.handle.abort();
        if let JobKey::Poll(t) = key {
            cut.push(t.clone());
        }
    }
    // A commit or export running on a blocking thread holds the store: wait for it briefly, so the
    // transaction finishes rather than being cut by the exit (SQLite would roll it back anyway).
    // The runs cut short are closed as `interrupted` (so `status` does not call them running).
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
                    tracing::warn!(tenant = %tenant, error = %e, fix = e.hint().as_deref(), "Cannot close the interrupted run.");
                }
            }
            // The quiet polls' bookkeeping is written now, not when the last holder of the store
            // lets it go (a job's blocking thread may outlive this step): whoever reads the store
            // once the service has stopped sees every poll it made.
            if let Err(e) = s.flush_quiet() {
                tracing::warn!(error = %e, fix = e.hint().as_deref(), "Cannot record the last quiet polls in the store; only their bookkeeping is lost.");
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

/// Startup problems that mean "fix the config": exit 78, and systemd does not restart.
fn startup(config: &Config) -> Result<(WriterLock, Store), Error> {
    // The store's path first: making an export directory could make the store's directory too.
    crate::preflight::check_store_dir(config)?;
    crate::export::check_export_dirs(config)?;
    let to_config = |e: StoreError| -> Error {
        match e {
            StoreError::Open { path, reason, fix } => Error::Config(ConfigError {
                file: Some(config.path.clone()),
                key: "store.path".into(),
                problem: format!("the store {} cannot be opened: {reason}", path.display()),
                fix,
            }),
            StoreError::Disk { path, reason } => Error::Config(ConfigError {
                file: Some(config.path.clone()),
                key: "store.path".into(),
                problem: format!("the store {} cannot be written: {reason}", path.display()),
                fix: "put the store on a writable local file system (the unit's StateDirectory=)"
                    .into(),
            }),
            // A second service on one store is a configuration problem (two units, or a copy
            // of the config), not a crash: exit 78, which the unit does not restart on.
            StoreError::Busy { path, holder, .. } => Error::Config(ConfigError {
                file: Some(config.path.clone()),
                key: "store.path".into(),
                problem: format!(
                    "the store {} is held by another mde-alerts ({holder})",
                    path.display()
                ),
                fix: "run one service per store: stop the other one (or give this one its own [store] path); a manual `poll`, `import` or `store prune` holds it only while it runs".into(),
            }),
            other => Error::Store(other),
        }
    };
    let lock = WriterLock::acquire(&config.store.path, WRITER_WAIT).map_err(to_config)?;
    let mut store = Store::open(&config.store.path).map_err(to_config)?;
    // A store that opens but cannot be written (a read-only mount) must fail now, not at the
    // first commit.
    store.check_writable().map_err(to_config)?;
    store.set_cache(SERVICE_CACHE_KIB).map_err(to_config)?;
    Ok((lock, store))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every job of a schedule shares one `Cron`: a copy per tenant (about 5 KB each) would be
    /// half the service's memory at 10,000 tenants.
    #[test]
    fn the_jobs_of_a_schedule_share_one_cron() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret-value-for-the-test\n").unwrap();
        let mut text = String::new();
        for i in 0..50 {
            let own = if i % 10 == 0 {
                "schedule = \"0 0 * * * *\"\n"
            } else {
                ""
            };
            text.push_str(&format!(
                "[[tenants]]\nname = \"t{i}\"\ntenant_id = \"t{i}.example.com\"\n\
                 client_id = \"11111111-2222-3333-4444-555555555555\"\n\
                 client_secret_file = \"{}\"\n{own}",
                secret.display()
            ));
        }
        text.push_str(&format!(
            "[store]\npath = \"{}\"\n",
            dir.path().join("s.db").display()
        ));
        let config = Config::parse(&text, &dir.path().join("c.toml")).unwrap();
        let store = Store::open(&config.store.path).unwrap();
        let plan = Plan::build(config, &store, chrono::Utc::now()).unwrap();
        assert_eq!(plan.sched.poll_count(), 50);
        assert_eq!(
            plan.sched.cron_copies(),
            2,
            "one per schedule, not one per tenant"
        );
    }
}

#[cfg(test)]
mod interval_tests {
    use super::*;

    /// A thousand quiet polls are one line at INFO, its numbers as fields; thirty-eight skipped
    /// ticks are one warning naming a few of them.
    #[test]
    fn an_interval_of_many_tenants_is_one_line() {
        let lines = crate::tenant_poll::log_capture::info_lines(|| {
            let mut i = Interval::default();
            for n in 0..1000 {
                i.add(
                    &format!("t{n:04}"),
                    Some(jobs::Figures {
                        api_calls: 1,
                        elapsed: Duration::from_millis(n),
                        ..jobs::Figures::default()
                    }),
                );
            }
            i.add("broken", None);
            i.skipped = (0..38).map(|n| format!("s{n}")).collect();
            i.say();
            // Said once: nothing is left to say.
            i.say();
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let warn = &lines[0];
        assert_eq!(warn["level"], "WARN");
        assert_eq!(warn["fields"]["tenants"], 38);
        let m = warn["fields"]["message"].as_str().unwrap();
        assert!(m.starts_with("38 tenants' previous poll"), "{m}");
        assert!(m.contains("s0, s1, s2, s3, s4 and 33 more"), "{m}");
        let f = &lines[1]["fields"];
        assert_eq!(lines[1]["level"], "INFO");
        assert_eq!(f["polled"], 1001);
        assert_eq!(f["failed"], 1);
        assert_eq!(f["api_calls"], 1000);
        assert_eq!(f["slowest"], "t0999");
    }
}
