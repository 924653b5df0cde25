//! The daemon's scheduling rules, as a pure state machine: no I/O, no task, no clock of its own.
//! The caller passes the time in, so the rules are tested on fixed instants (see the tests).
//!
//! Ticks come from outside (tokio-cron-scheduler in the service, the test in tests): one per
//! firing of a cron expression, shared by every job on it. From a tick, the rules are:
//!
//! - **Stagger**: tenant *i* of *n* starts `i × min(interval, 60 s) / n` after the tick, so fifty
//!   tenants on one schedule do not hit Entra and Defender in the same second. Exports start at
//!   the tick.
//! - **No overlap**: a job still running when its next start comes is skipped for that tick,
//!   never doubled (tokio-cron-scheduler has no such guard: mvniekerk/tokio-cron-scheduler#83).
//! - **Deadline**: a poll's deadline is its own next start (the next tick plus its stagger), so a
//!   poll gives way before the next one is due.
//! - **Wedge**: a poll past its deadline by more than the grace is wedged; the service then stops
//!   feeding systemd's watchdog, and systemd restarts it.
//! - **Reload**: a new scheduler adopts the running jobs, pending starts and last ticks of the
//!   old one by name, so SIGHUP neither doubles nor loses a poll.
//!
//! Time is two clocks on purpose: cron is calendar time (UTC, [`DateTime<Utc>`]), while
//! deadlines and the watchdog are elapsed time ([`Instant`], monotonic: a clock step by NTP must
//! not wedge a healthy poll). [`Clock`] gives both from one place, so a test fixes both.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use tokio::time::Instant;

/// Where the daemon reads the time. The service uses [`SystemClock`]; a test fixes the calendar
/// or makes it follow tokio's paused clock ([`TokioClock`]).
pub trait Clock: Send + Sync {
    /// The calendar time (for cron and the state file).
    fn now(&self) -> DateTime<Utc>;
    /// The monotonic time (for deadlines, sleeps and the watchdog).
    fn instant(&self) -> Instant {
        Instant::now()
    }
    /// The monotonic instant at which the calendar reads `at`; now if `at` is past.
    fn instant_at(&self, at: DateTime<Utc>) -> Instant {
        let (now, mono) = (self.now(), self.instant());
        let ahead = (at - now).to_std().unwrap_or_default();
        // An instant too far ahead to represent (a schedule that fires in years) is a year away:
        // the loop wakes then and asks again.
        mono.checked_add(ahead)
            .unwrap_or_else(|| mono + Duration::from_secs(365 * 86_400))
    }
}

/// The machine's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A calendar that starts at a fixed time and moves with tokio's clock, so that under
/// `tokio::time::pause` both clocks advance together and only when the test says.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: DateTime<Utc>,
    origin: Instant,
}

impl TokioClock {
    /// A calendar reading `start` now.
    #[cfg(test)]
    fn starting_at(start: DateTime<Utc>) -> TokioClock {
        TokioClock {
            start,
            origin: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.origin.elapsed()).unwrap_or_default();
        self.start + elapsed
    }
}

/// A job the daemon schedules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobKey {
    /// A tenant's poll, by tenant name.
    Poll(String),
    /// A scheduled export, by export name.
    Export(String),
}

impl std::fmt::Display for JobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobKey::Poll(t) => write!(f, "the poll of {t}"),
            JobKey::Export(e) => write!(f, "the export {e}"),
        }
    }
}

/// One firing of a cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    /// The expression, as [`schedule_key`] spells it.
    pub(crate) schedule: String,
    /// The instant it fired for (the cron time, not when the firing was noticed).
    pub(crate) at: DateTime<Utc>,
}

/// The name of a schedule: its pattern as croner keeps it. Jobs with the same pattern share one
/// cron job and one tick.
pub fn schedule_key(cron: &Cron) -> String {
    cron.as_str().to_owned()
}

/// The cron time a firing noticed at `fired` is for: the latest occurrence at or before it (a
/// firing is noticed up to half a second late, never early).
pub(crate) fn tick_instant(cron: &Cron, fired: DateTime<Utc>) -> DateTime<Utc> {
    // croner compares whole seconds and keeps the fraction: 12:05:00.480 would "match" itself.
    let whole = chrono::Timelike::with_nanosecond(&fired, 0).unwrap_or(fired);
    cron.find_previous_occurrence(&whole, true).unwrap_or(whole)
}

/// The start offset of tenant `i` of `n`: `i × min(interval, 60 s) / n`.
pub(crate) fn stagger(i: usize, n: usize, interval: Duration) -> Duration {
    let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    let i = u32::try_from(i).unwrap_or(u32::MAX).min(n);
    interval.min(Duration::from_secs(60)) * i / n
}

/// The typical gap between two firings of `cron` after `now`: the config's one definition, at an
/// injected instant.
pub(crate) fn interval_at(cron: &Cron, now: DateTime<Utc>) -> Duration {
    crate::config::cron_interval_at(cron, now)
}

/// The first firing of `cron` after `after`, plus `offset`. A schedule with no next firing (the
/// config refuses those) is treated as hourly, so nothing waits forever.
fn next_after(cron: &Cron, after: DateTime<Utc>, offset: Duration) -> DateTime<Utc> {
    cron.find_next_occurrence(&after, false)
        .unwrap_or(after + chrono::Duration::hours(1))
        + chrono::Duration::from_std(offset).unwrap_or_default()
}

/// A job that is running: the caller's handle and its deadline.
#[derive(Debug)]
pub(crate) struct Running<H> {
    /// What the caller needs to watch or cancel it.
    pub(crate) handle: H,
    /// When it should have given way (polls only).
    deadline: Option<Instant>,
}

/// What is due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Due {
    /// Start the job; a poll's deadline is its next start.
    Start {
        /// The job.
        key: JobKey,
        /// The poll's deadline (calendar time); exports have none.
        deadline: Option<DateTime<Utc>>,
    },
    /// The job is still running from an earlier tick: this tick is skipped.
    Skip(JobKey),
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    /// When the job starts (the tick plus the stagger).
    at: DateTime<Utc>,
    /// The tick it is for.
    tick: DateTime<Utc>,
}

#[derive(Debug)]
struct Job<H> {
    key: JobKey,
    /// Shared by every job of the schedule: a croner `Cron` holds about 5 KB of bitfields, and
    /// a copy per tenant was half the service's memory at 10,000 tenants.
    cron: Arc<Cron>,
    schedule: String,
    offset: Duration,
    pending: Option<Pending>,
    running: Option<Running<H>>,
}

/// The jobs of one configuration and their state. `H` is the caller's handle of a running job
/// (a task in the service, `()` in tests).
#[derive(Debug)]
pub(crate) struct Scheduler<H> {
    jobs: Vec<Job<H>>,
    index: HashMap<JobKey, usize>,
    by_schedule: HashMap<String, Vec<usize>>,
    last_tick: HashMap<String, DateTime<Utc>>,
    /// Pending starts by time; an entry whose job has since been given another start is stale and
    /// dropped when reached (cheaper than removing it from the heap).
    queue: BinaryHeap<Reverse<(DateTime<Utc>, usize)>>,
    /// The jobs running now, so that the loop's checks cost what runs, not what is configured.
    running: BTreeSet<usize>,
    /// Each schedule's smallest stagger: the next start of any job is found per schedule.
    min_offset: HashMap<String, Duration>,
}

impl<H> Scheduler<H> {
    /// The jobs of a configuration: `tenants` in config order (their order sets the stagger) and
    /// the exports that have a schedule. `now` sets each tenant's interval.
    pub(crate) fn new<C: Into<Arc<Cron>>>(
        tenants: Vec<(String, C)>,
        exports: Vec<(String, C)>,
        now: DateTime<Utc>,
    ) -> Scheduler<H> {
        let n = tenants.len();
        let mut intervals: HashMap<String, Duration> = HashMap::new();
        let mut jobs = Vec::with_capacity(n + exports.len());
        for (i, (name, cron)) in tenants.into_iter().enumerate() {
            let cron: Arc<Cron> = cron.into();
            let schedule = schedule_key(&cron);
            let interval = *intervals
                .entry(schedule.clone())
                .or_insert_with(|| interval_at(&cron, now));
            jobs.push(Job {
                key: JobKey::Poll(name),
                offset: stagger(i, n, interval),
                cron,
                schedule,
                pending: None,
                running: None,
            });
        }
        for (name, cron) in exports {
            let cron: Arc<Cron> = cron.into();
            jobs.push(Job {
                key: JobKey::Export(name),
                schedule: schedule_key(&cron),
                cron,
                offset: Duration::ZERO,
                pending: None,
                running: None,
            });
        }
        let mut index = HashMap::new();
        let mut by_schedule: HashMap<String, Vec<usize>> = HashMap::new();
        let mut min_offset: HashMap<String, Duration> = HashMap::new();
        for (i, j) in jobs.iter().enumerate() {
            index.insert(j.key.clone(), i);
            by_schedule.entry(j.schedule.clone()).or_default().push(i);
            min_offset
                .entry(j.schedule.clone())
                .and_modify(|m| *m = (*m).min(j.offset))
                .or_insert(j.offset);
        }
        Scheduler {
            jobs,
            index,
            by_schedule,
            last_tick: HashMap::new(),
            queue: BinaryHeap::new(),
            running: BTreeSet::new(),
            min_offset,
        }
    }

    /// The distinct schedules, one cron job each.
    pub(crate) fn schedules(&self) -> Vec<Cron> {
        let mut seen = std::collections::HashSet::new();
        self.jobs
            .iter()
            .filter(|j| seen.insert(j.schedule.as_str()))
            .map(|j| Cron::clone(&j.cron))
            .collect()
    }

    /// The offset of a job after its tick.
    #[cfg(test)]
    fn offset(&self, key: &JobKey) -> Option<Duration> {
        self.index.get(key).map(|&i| self.jobs[i].offset)
    }

    /// Takes a tick: every job on its schedule gets a start at the tick plus its stagger. A tick
    /// not later than the last one of its schedule (a schedule fired by two cron jobs, or a
    /// repeat) is ignored. Returns how many starts were set.
    pub(crate) fn tick(&mut self, tick: &Tick) -> usize {
        let Some(jobs) = self.by_schedule.get(&tick.schedule) else {
            return 0;
        };
        if self
            .last_tick
            .get(&tick.schedule)
            .is_some_and(|&last| last >= tick.at)
        {
            return 0;
        }
        self.last_tick.insert(tick.schedule.clone(), tick.at);
        for &i in jobs {
            let job = &mut self.jobs[i];
            let at = tick.at + chrono::Duration::from_std(job.offset).unwrap_or_default();
            job.pending = Some(Pending { at, tick: tick.at });
            self.queue.push(Reverse((at, i)));
        }
        jobs.len()
    }

    /// The starts due at `now`, in time order: each is a start, or a skip when the job is still
    /// running. A start must be followed by [`Scheduler::start`].
    pub(crate) fn due(&mut self, now: DateTime<Utc>) -> Vec<Due> {
        let mut due = Vec::new();
        while let Some(&Reverse((at, i))) = self.queue.peek() {
            if at > now {
                break;
            }
            self.queue.pop();
            let job = &mut self.jobs[i];
            let Some(pending) = job.pending.filter(|p| p.at == at) else {
                continue;
            };
            job.pending = None;
            if job.running.is_some() {
                due.push(Due::Skip(job.key.clone()));
                continue;
            }
            let deadline = matches!(job.key, JobKey::Poll(_))
                .then(|| next_after(&job.cron, pending.tick, job.offset));
            due.push(Due::Start {
                key: job.key.clone(),
                deadline,
            });
        }
        due
    }

    /// Records that `key` started.
    pub(crate) fn start(&mut self, key: &JobKey, handle: H, deadline: Option<Instant>) {
        if let Some(&i) = self.index.get(key) {
            self.jobs[i].running = Some(Running { handle, deadline });
            self.running.insert(i);
        }
    }

    /// Records that `key` finished; returns its handle.
    pub(crate) fn finish(&mut self, key: &JobKey) -> Option<Running<H>> {
        let &i = self.index.get(key)?;
        self.running.remove(&i);
        self.jobs[i].running.take()
    }

    /// Clears jobs that ended without reporting (`ended` says so of a handle), so a lost report
    /// cannot block a tenant forever.
    pub(crate) fn sweep(&mut self, ended: impl Fn(&H) -> bool) {
        let jobs = &mut self.jobs;
        self.running.retain(|&i| {
            let j = &mut jobs[i];
            if j.running.as_ref().is_some_and(|r| ended(&r.handle)) {
                j.running = None;
            }
            j.running.is_some()
        });
    }

    /// The first job past its deadline by more than `grace` at `now`: the watchdog's wedge rule.
    pub(crate) fn wedged(&self, now: Instant, grace: Duration) -> Option<&JobKey> {
        self.running
            .iter()
            .map(|&i| &self.jobs[i])
            .find(|j| {
                j.running
                    .as_ref()
                    .and_then(|r| r.deadline)
                    .is_some_and(|d| now > d + grace)
            })
            .map(|j| &j.key)
    }

    /// Takes over from the scheduler of the previous configuration: running jobs and pending
    /// starts of the jobs that are still configured (by name), and the last tick of each schedule
    /// still in use. Jobs of removed tenants or exports run to their end; nothing waits for them.
    pub(crate) fn adopt(&mut self, old: Scheduler<H>) {
        for job in old.jobs {
            let Some(&i) = self.index.get(&job.key) else {
                continue;
            };
            let new = &mut self.jobs[i];
            if job.running.is_some() {
                self.running.insert(i);
            }
            new.running = job.running;
            // A start between its tick and its stagger is kept, at the new stagger.
            if let Some(p) = job.pending {
                let at = p.tick + chrono::Duration::from_std(new.offset).unwrap_or_default();
                new.pending = Some(Pending { at, tick: p.tick });
                self.queue.push(Reverse((at, i)));
            }
        }
        for (schedule, at) in old.last_tick {
            if self.by_schedule.contains_key(&schedule) {
                self.last_tick.insert(schedule, at);
            }
        }
    }

    /// When the next pending start is due, if any.
    pub(crate) fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        self.queue.peek().map(|Reverse((at, _))| *at)
    }

    /// When `key` starts next, seen at `now`: its pending start, else its schedule's next firing
    /// plus its stagger.
    #[cfg(test)]
    fn next_start(&self, key: &JobKey, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let job = &self.jobs[*self.index.get(key)?];
        Some(next_start_of(job, now, &mut HashMap::new()))
    }

    /// The earliest next start of any job, seen at `now`: the earliest pending start, or a
    /// schedule's next firing plus its smallest stagger. (A job with a pending start has its
    /// start in the queue, before that firing, so the minimum of the two is exact.) It costs
    /// one cron lookup per schedule, however many tenants there are: the service asks after
    /// every poll.
    pub(crate) fn next_start_any(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let pending = self.queue.peek().map(|Reverse((at, _))| *at);
        let firing = self.by_schedule.values().filter_map(|jobs| {
            let job = &self.jobs[*jobs.first()?];
            let offset = self
                .min_offset
                .get(&job.schedule)
                .copied()
                .unwrap_or_default();
            Some(
                next_after(&job.cron, now, Duration::ZERO)
                    + chrono::Duration::from_std(offset).unwrap_or_default(),
            )
        });
        pending.into_iter().chain(firing).min()
    }

    /// Every poll with its next start and whether it runs, seen at `now` (for the state file).
    /// Each schedule's next firing is computed once, however many tenants share it.
    pub(crate) fn polls(&self, now: DateTime<Utc>) -> Vec<(&str, DateTime<Utc>, bool)> {
        let mut cache = HashMap::new();
        self.jobs
            .iter()
            .filter_map(|j| match &j.key {
                JobKey::Poll(t) => Some((
                    t.as_str(),
                    next_start_of(j, now, &mut cache),
                    j.running.is_some(),
                )),
                JobKey::Export(_) => None,
            })
            .collect()
    }

    /// Whether any poll is running or waiting for its staggered start: while one is, the
    /// interval's polls are not all done.
    pub(crate) fn polls_outstanding(&self) -> bool {
        self.running
            .iter()
            .any(|&i| matches!(self.jobs[i].key, JobKey::Poll(_)))
            || self
                .jobs
                .iter()
                .any(|j| j.pending.is_some() && matches!(j.key, JobKey::Poll(_)))
    }

    /// The running jobs.
    pub(crate) fn running(&self) -> impl Iterator<Item = (&JobKey, &Running<H>)> {
        self.running.iter().filter_map(|&i| {
            let j = &self.jobs[i];
            j.running.as_ref().map(|r| (&j.key, r))
        })
    }

    /// How many distinct `Cron` values the jobs hold (one per schedule when the caller shares
    /// them, as the service does).
    #[cfg(test)]
    pub(crate) fn cron_copies(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        self.jobs
            .iter()
            .filter(|j| seen.insert(Arc::as_ptr(&j.cron)))
            .count()
    }

    /// How many polls there are.
    pub(crate) fn poll_count(&self) -> usize {
        self.jobs
            .iter()
            .filter(|j| matches!(j.key, JobKey::Poll(_)))
            .count()
    }
}

fn next_start_of<'a, H>(
    job: &'a Job<H>,
    now: DateTime<Utc>,
    cache: &mut HashMap<&'a str, DateTime<Utc>>,
) -> DateTime<Utc> {
    if let Some(p) = job.pending {
        return p.at;
    }
    let next = *cache
        .entry(job.schedule.as_str())
        .or_insert_with(|| next_after(&job.cron, now, Duration::ZERO));
    next + chrono::Duration::from_std(job.offset).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cron(text: &str) -> Cron {
        crate::config::parse_cron(text).unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn secs(n: i64) -> chrono::Duration {
        chrono::Duration::seconds(n)
    }

    fn poll(t: &str) -> JobKey {
        JobKey::Poll(t.into())
    }

    fn tick(c: &str, at: DateTime<Utc>) -> Tick {
        Tick {
            schedule: schedule_key(&cron(c)),
            at,
        }
    }

    fn tenants(n: usize, c: &str) -> Vec<(String, Cron)> {
        (0..n).map(|i| (format!("t{i}"), cron(c))).collect()
    }

    const EVERY_5_MIN: &str = "0 */5 * * * *";

    #[test]
    fn tenants_are_staggered_over_a_minute_at_most() {
        let five = Duration::from_secs(300);
        let got: Vec<u64> = (0..4).map(|i| stagger(i, 4, five).as_secs()).collect();
        assert_eq!(got, [0, 15, 30, 45]);
        let twenty = Duration::from_secs(20);
        let got: Vec<u64> = (0..4).map(|i| stagger(i, 4, twenty).as_secs()).collect();
        assert_eq!(got, [0, 5, 10, 15], "within a shorter interval");
        assert_eq!(stagger(0, 1, five), Duration::ZERO);
        assert_eq!(stagger(0, 0, five), Duration::ZERO, "no tenants, no panic");
        // 10,000 tenants on one schedule spread over the minute, the last one before its end.
        assert_eq!(
            stagger(9_999, 10_000, five),
            Duration::from_micros(59_994_000)
        );
    }

    #[test]
    fn a_tick_starts_each_tenant_at_its_stagger() {
        let t0 = utc(2026, 1, 15, 12, 0, 0);
        let mut s: Scheduler<()> = Scheduler::new(tenants(4, EVERY_5_MIN), vec![], t0);
        assert_eq!(s.next_wakeup(), None, "nothing before the first tick");
        assert_eq!(s.tick(&tick(EVERY_5_MIN, t0)), 4);
        assert_eq!(s.next_wakeup(), Some(t0));
        let first = s.due(t0);
        assert_eq!(
            first,
            [Due::Start {
                key: poll("t0"),
                deadline: Some(t0 + secs(300)),
            }]
        );
        assert_eq!(s.next_wakeup(), Some(t0 + secs(15)));
        assert!(s.due(t0 + secs(14)).is_empty());
        // A late wake-up starts everything that is due, in order, each with its own deadline.
        let late = s.due(t0 + secs(50));
        assert_eq!(
            late,
            [
                Due::Start {
                    key: poll("t1"),
                    deadline: Some(t0 + secs(315)),
                },
                Due::Start {
                    key: poll("t2"),
                    deadline: Some(t0 + secs(330)),
                },
                Due::Start {
                    key: poll("t3"),
                    deadline: Some(t0 + secs(345)),
                },
            ]
        );
        assert_eq!(s.next_wakeup(), None);
    }

    #[test]
    fn a_tick_is_skipped_while_the_poll_still_runs() {
        let t0 = utc(2026, 1, 15, 12, 0, 0);
        let mut s: Scheduler<u8> = Scheduler::new(tenants(1, EVERY_5_MIN), vec![], t0);
        s.tick(&tick(EVERY_5_MIN, t0));
        assert!(matches!(s.due(t0)[..], [Due::Start { .. }]));
        s.start(&poll("t0"), 7, None);
        s.tick(&tick(EVERY_5_MIN, t0 + secs(300)));
        assert_eq!(s.due(t0 + secs(300)), [Due::Skip(poll("t0"))]);
        assert_eq!(s.polls(t0 + secs(301)), [("t0", t0 + secs(600), true)]);
        assert_eq!(s.finish(&poll("t0")).map(|r| r.handle), Some(7));
        s.tick(&tick(EVERY_5_MIN, t0 + secs(600)));
        assert!(matches!(s.due(t0 + secs(600))[..], [Due::Start { .. }]));
    }

    #[test]
    fn exports_start_at_the_tick_without_a_deadline_and_do_not_overlap() {
        let t0 = utc(2026, 1, 15, 0, 0, 0);
        let daily = "0 0 0 * * *";
        let mut s: Scheduler<()> =
            Scheduler::new(tenants(3, daily), vec![("nightly".into(), cron(daily))], t0);
        assert_eq!(s.schedules().len(), 1, "one cron job for all four");
        assert_eq!(s.tick(&tick(daily, t0)), 4);
        let due = s.due(t0);
        assert!(due.contains(&Due::Start {
            key: JobKey::Export("nightly".into()),
            deadline: None,
        }));
        s.start(&JobKey::Export("nightly".into()), (), None);
        assert_eq!(
            s.wedged(Instant::now() + Duration::from_secs(86_400), WEDGE),
            None,
            "an export has no deadline to overrun"
        );
        s.tick(&tick(daily, t0 + secs(86_400)));
        assert!(
            s.due(t0 + secs(86_400))
                .contains(&Due::Skip(JobKey::Export("nightly".into())))
        );
    }

    const WEDGE: Duration = Duration::from_secs(5);

    #[test]
    fn a_poll_past_its_deadline_and_the_grace_is_wedged() {
        let t0 = utc(2026, 1, 15, 12, 0, 0);
        let base = Instant::now();
        let mut s: Scheduler<()> = Scheduler::new(tenants(2, EVERY_5_MIN), vec![], t0);
        s.start(&poll("t1"), (), Some(base + Duration::from_secs(300)));
        s.start(&poll("t0"), (), None);
        assert_eq!(s.wedged(base, WEDGE), None);
        assert_eq!(s.wedged(base + Duration::from_secs(305), WEDGE), None);
        assert_eq!(
            s.wedged(base + Duration::from_millis(305_001), WEDGE),
            Some(&poll("t1"))
        );
        s.finish(&poll("t1"));
        assert_eq!(s.wedged(base + Duration::from_secs(999), WEDGE), None);
    }

    /// Ticks are UTC: on the night Europe moves its clocks (2026-03-29, 01:00 UTC) and the one the
    /// US moves them back (2026-11-01, 06:00 UTC), an hourly and a daily schedule keep their
    /// spacing and the stagger is unchanged.
    #[test]
    fn dst_nights_change_nothing_in_utc() {
        for night in [utc(2026, 3, 29, 0, 0, 0), utc(2026, 11, 1, 5, 0, 0)] {
            let hourly = "0 0 * * * *";
            let mut s: Scheduler<()> = Scheduler::new(tenants(2, hourly), vec![], night);
            assert_eq!(s.offset(&poll("t1")), Some(Duration::from_secs(30)));
            for h in 0..4 {
                let at = night + chrono::Duration::hours(h);
                assert_eq!(s.next_start(&poll("t0"), at - secs(1)), Some(at));
                s.tick(&tick(hourly, at));
                let due = s.due(at + secs(30));
                assert_eq!(
                    due[1],
                    Due::Start {
                        key: poll("t1"),
                        deadline: Some(at + chrono::Duration::hours(1) + secs(30)),
                    },
                    "{at}"
                );
            }
            let daily = cron("0 30 1 * * *");
            let next_day = (night.date_naive() + chrono::Days::new(1))
                .and_hms_opt(1, 30, 0)
                .unwrap()
                .and_utc();
            let first = next_after(&daily, night + chrono::Duration::hours(2), Duration::ZERO);
            assert_eq!(first, next_day);
            assert_eq!(
                next_after(&daily, first, Duration::ZERO) - first,
                chrono::Duration::hours(24)
            );
        }
    }

    /// A schedule that fires once in four years: the deadline is the next firing, years away,
    /// and it converts to an instant without overflow.
    #[test]
    fn a_rare_schedule_has_a_distant_deadline() {
        let leap = "0 0 0 29 2 *";
        let t0 = utc(2028, 2, 29, 0, 0, 0);
        let mut s: Scheduler<()> = Scheduler::new(tenants(1, leap), vec![], t0);
        assert_eq!(
            s.next_start(&poll("t0"), utc(2026, 6, 1, 0, 0, 0)),
            Some(t0)
        );
        s.tick(&tick(leap, t0));
        assert_eq!(
            s.due(t0),
            [Due::Start {
                key: poll("t0"),
                deadline: Some(utc(2032, 2, 29, 0, 0, 0)),
            }]
        );
        let clock = FixedClock(t0);
        let far = clock.instant_at(utc(2032, 2, 29, 0, 0, 0));
        assert!(far > Instant::now() + Duration::from_secs(3 * 365 * 86_400));
        assert!(
            clock.instant_at(t0 - secs(10)) <= Instant::now(),
            "past is now"
        );
    }

    #[test]
    fn a_repeated_or_foreign_tick_is_ignored() {
        let t0 = utc(2026, 1, 15, 12, 0, 0);
        let mut s: Scheduler<()> = Scheduler::new(tenants(1, EVERY_5_MIN), vec![], t0);
        assert_eq!(
            s.tick(&tick("0 0 * * * *", t0)),
            0,
            "no job on that schedule"
        );
        assert_eq!(s.tick(&tick(EVERY_5_MIN, t0)), 1);
        assert_eq!(s.tick(&tick(EVERY_5_MIN, t0)), 0, "the same instant twice");
        assert_eq!(
            s.tick(&tick(EVERY_5_MIN, t0 - secs(300))),
            0,
            "an older one"
        );
        assert_eq!(s.due(t0).len(), 1, "one start, not two");
    }

    #[test]
    fn a_tick_that_fired_late_is_for_its_cron_time() {
        let c = cron(EVERY_5_MIN);
        let at = utc(2026, 1, 15, 12, 5, 0);
        assert_eq!(
            tick_instant(&c, at + chrono::Duration::milliseconds(480)),
            at
        );
        assert_eq!(tick_instant(&c, at), at);
    }

    #[test]
    fn reload_adopts_running_jobs_pending_starts_and_last_ticks_by_name() {
        let t0 = utc(2026, 1, 15, 12, 0, 0);
        let mut old: Scheduler<&str> = Scheduler::new(tenants(3, EVERY_5_MIN), vec![], t0);
        old.tick(&tick(EVERY_5_MIN, t0));
        for d in old.due(t0 + secs(20)) {
            if let Due::Start { key, .. } = d {
                old.start(&key, "running", None);
            }
        }
        assert_eq!(
            old.running().count(),
            2,
            "t0 and t1 run; t2 starts at +40 s"
        );
        // t1 is removed, t3 is new: t0 keeps running, t2 keeps its start (at its new stagger,
        // 20 s), t3 waits for the next tick.
        let mut new: Scheduler<&str> = Scheduler::new(
            vec![
                ("t0".into(), cron(EVERY_5_MIN)),
                ("t2".into(), cron(EVERY_5_MIN)),
                ("t3".into(), cron(EVERY_5_MIN)),
            ],
            vec![],
            t0 + secs(25),
        );
        new.adopt(old);
        let running: Vec<_> = new.running().map(|(k, r)| (k.clone(), r.handle)).collect();
        assert_eq!(running, [(poll("t0"), "running")]);
        assert_eq!(
            new.tick(&tick(EVERY_5_MIN, t0)),
            0,
            "the tick was taken already"
        );
        assert_eq!(new.next_wakeup(), Some(t0 + secs(20)));
        assert_eq!(
            new.due(t0 + secs(25)),
            [Due::Start {
                key: poll("t2"),
                deadline: Some(t0 + secs(320)),
            }],
            "the pending start survives the reload"
        );
    }

    #[test]
    fn the_state_of_ten_thousand_tenants_takes_one_cron_lookup() {
        let t0 = utc(2026, 1, 15, 12, 0, 0);
        let s: Scheduler<()> = Scheduler::new(tenants(10_000, EVERY_5_MIN), vec![], t0);
        assert_eq!(s.schedules().len(), 1);
        let polls = s.polls(t0 + secs(1));
        assert_eq!(polls.len(), 10_000);
        assert_eq!(polls[0].1, t0 + secs(300));
        assert_eq!(polls[5_000].1, t0 + secs(330));
        assert_eq!(s.next_start_any(t0 + secs(1)), Some(t0 + secs(300)));
        assert_eq!(s.poll_count(), 10_000);
    }

    /// The next start of any job, found per schedule, is the minimum over every job, whatever
    /// starts are pending, running or taken (checked against the job-by-job definition).
    #[test]
    fn the_next_start_per_schedule_is_the_minimum_over_every_job() {
        let t0 = utc(2026, 1, 15, 12, 0, 0);
        let mut jobs = tenants(7, EVERY_5_MIN);
        jobs.extend(
            tenants(5, "0 */2 * * * *")
                .into_iter()
                .map(|(n, c)| (format!("b{n}"), c)),
        );
        let exports = vec![("daily".to_owned(), cron("0 0 6 * * *"))];
        let mut s: Scheduler<()> = Scheduler::new(jobs, exports, t0);
        let brute = |s: &Scheduler<()>, now| {
            let mut cache = HashMap::new();
            s.jobs
                .iter()
                .map(|j| next_start_of(j, now, &mut cache))
                .min()
        };
        let mut now = t0;
        for step in 0..40 {
            now += secs(17);
            if step % 3 == 0 {
                s.tick(&tick(EVERY_5_MIN, now - secs(1)));
            }
            if step % 5 == 0 {
                s.tick(&tick("0 */2 * * * *", now));
            }
            for d in s.due(now) {
                if let Due::Start { key, .. } = d {
                    s.start(&key, (), None);
                }
            }
            if step % 2 == 0 {
                let running: Vec<JobKey> = s.running().map(|(k, _)| k.clone()).collect();
                for k in running.iter().take(3) {
                    s.finish(k);
                }
            }
            assert_eq!(s.next_start_any(now), brute(&s, now), "step {step}");
        }
        assert!(s.running().count() <= s.jobs.len());
        s.sweep(|_| true);
        assert_eq!(
            s.running().count(),
            0,
            "a sweep of ended jobs empties the running set"
        );
    }

    struct FixedClock(DateTime<Utc>);

    impl Clock for FixedClock {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }
    }

    /// Under tokio's paused clock, [`TokioClock`]'s calendar moves only with tokio's time, and a
    /// start's instant is where the calendar says.
    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_moves_with_paused_time() {
        let t0 = utc(2026, 3, 29, 0, 59, 50);
        let clock = TokioClock::starting_at(t0);
        let mut s: Scheduler<()> = Scheduler::new(tenants(2, "0 * * * * *"), vec![], t0);
        s.tick(&tick("0 * * * * *", utc(2026, 3, 29, 1, 0, 0)));
        let wake = clock.instant_at(s.next_wakeup().unwrap());
        assert_eq!(wake - clock.instant(), Duration::from_secs(10));
        tokio::time::sleep_until(wake).await;
        assert_eq!(clock.now(), utc(2026, 3, 29, 1, 0, 0));
        assert_eq!(s.due(clock.now()).len(), 1);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(s.due(clock.now()).len(), 1, "t1 at +30 s");
    }
}
