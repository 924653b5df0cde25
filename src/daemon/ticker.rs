//! tokio-cron-scheduler fires the daemon's schedules: one cron job per distinct expression (not
//! one per tenant: its loop looks at every job every 500 ms, so that cost must not grow with
//! tenants), each firing sending a [`Tick`] into the daemon's loop, which applies our rules
//! ([`super::scheduler`]).
//!
//! Its parser differs from our config's in two ways, so each expression is rewritten for it and
//! the rewrite is tested to fire at exactly the same instants:
//! - it requires the seconds field: a five-field expression gets `0` seconds, as croner gives it;
//! - it joins day-of-month and day-of-week with AND (`dom_and_dow`), where ours (and Vixie cron)
//!   fire on either: such an expression becomes two cron jobs, one per day field, and the
//!   scheduler ignores the second tick of an instant both fire for.
//!
//! Only UTC constructors are used (its time-zone ones run an hour off after a DST change,
//! mvniekerk/tokio-cron-scheduler#107).

use std::collections::HashMap;

use chrono::Utc;
use croner::Cron;
use tokio::sync::mpsc::UnboundedSender;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

use super::scheduler::{Tick, schedule_key, tick_instant};

/// The cron jobs firing ticks into the loop.
pub(crate) struct Ticker {
    scheduler: JobScheduler,
    /// Our schedule key → its cron jobs.
    jobs: HashMap<String, Vec<Job>>,
    ticks: UnboundedSender<Tick>,
}

impl Ticker {
    /// Starts tokio-cron-scheduler with no jobs.
    pub(crate) async fn start(ticks: UnboundedSender<Tick>) -> Result<Ticker, JobSchedulerError> {
        let scheduler = JobScheduler::new().await?;
        scheduler.start().await?;
        Ok(Ticker {
            scheduler,
            jobs: HashMap::new(),
            ticks,
        })
    }

    /// Fires exactly `schedules`: adds cron jobs for new expressions, removes those no longer
    /// used (a reload).
    pub(crate) async fn set(&mut self, schedules: &[Cron]) -> Result<(), JobSchedulerError> {
        let wanted: HashMap<String, &Cron> =
            schedules.iter().map(|c| (schedule_key(c), c)).collect();
        let gone: Vec<String> = self
            .jobs
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            for job in self.jobs.remove(&key).unwrap_or_default() {
                self.scheduler.remove(&job.guid()).await?;
            }
        }
        for (key, cron) in wanted {
            if self.jobs.contains_key(&key) {
                continue;
            }
            let mut jobs = Vec::new();
            for pattern in patterns(cron) {
                let (tx, cron, key) = (self.ticks.clone(), cron.clone(), key.clone());
                let job = Job::new(pattern.as_str(), move |_, _| {
                    let at = tick_instant(&cron, Utc::now());
                    // The loop is gone only while the daemon stops.
                    let _ = tx.send(Tick {
                        schedule: key.clone(),
                        at,
                    });
                })?;
                self.scheduler.add(job.clone()).await?;
                jobs.push(job);
            }
            self.jobs.insert(key, jobs);
        }
        Ok(())
    }

    /// Stops firing.
    pub(crate) async fn stop(mut self) {
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::debug!(error = %e, "tokio-cron-scheduler did not shut down cleanly.");
        }
    }
}

/// The expressions for tokio-cron-scheduler that fire together exactly when `cron` does.
pub(crate) fn patterns(cron: &Cron) -> Vec<String> {
    let mut fields: Vec<String> = cron
        .as_str()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if fields.len() == 5 {
        fields.insert(0, "0".into());
    }
    for i in [3, 5] {
        if let Some(f) = fields.get_mut(i) {
            *f = f.replace('?', "*");
        }
    }
    let (dom, dow) = (fields.get(3).cloned(), fields.get(5).cloned());
    match (dom, dow) {
        (Some(dom), Some(dow)) if dom != "*" && dow != "*" && !dow.starts_with('+') => {
            let mut by_dom = fields.clone();
            by_dom[5] = "*".into();
            let mut by_dow = fields;
            by_dow[3] = "*".into();
            vec![by_dom.join(" "), by_dow.join(" ")]
        }
        _ => vec![fields.join(" ")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone};

    /// tokio-cron-scheduler's own parser settings (`Job::new` and its stored-job reader).
    fn theirs(pattern: &str) -> Cron {
        croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(pattern)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
    }

    fn firings(cron: &Cron, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        cron.iter_after(from).take(n).collect()
    }

    /// Every kind of expression the config accepts fires at the same instants through
    /// tokio-cron-scheduler's parser as through ours, for two years (leap day and DST dates
    /// included), or for its next 2,000 firings.
    #[test]
    fn the_rewritten_expressions_fire_exactly_when_ours_do() {
        let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for text in [
            "* * * * * *",
            "*/10 * * * * *",
            "0 */5 * * * *",
            "*/5 * * * *",
            "0 0 0 * * *",
            "30 15 6,18 * * MON-FRI",
            "0 0 0 1 * MON",
            "0 0 12 13 * FRI",
            "0 0 0 */10 * SUN",
            "0 0 0 L * *",
            "0 0 0 ? * 5#2",
            "0 0 0 15 * ?",
            "0 0 0 29 2 *",
            "0 0 0 1 1 * 2027",
            "@daily",
            "@hourly",
        ] {
            let ours = crate::config::parse_cron(text).unwrap();
            let pats = patterns(&ours);
            for p in &pats {
                Job::new(p.as_str(), |_, _| {}).unwrap_or_else(|e| panic!("{p}: {e:?}"));
            }
            let n = 2_000;
            let want = firings(&ours, from, n);
            let mut got: Vec<DateTime<Utc>> = pats
                .iter()
                .flat_map(|p| firings(&theirs(p), from, n))
                .collect();
            got.sort();
            got.dedup();
            got.truncate(want.len());
            assert!(!want.is_empty(), "{text}");
            assert_eq!(got, want, "{text} as {pats:?}");
        }
    }

    #[test]
    fn either_day_field_becomes_two_jobs() {
        let c = crate::config::parse_cron("0 0 1 * MON").unwrap();
        assert_eq!(patterns(&c), ["0 0 0 1 * *", "0 0 0 * * 1"]);
        let c = crate::config::parse_cron("0 */5 * * * *").unwrap();
        assert_eq!(patterns(&c), ["0 */5 * * * *"]);
    }

    /// A cron job really fires through tokio-cron-scheduler, with the tick's cron time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tokio_cron_scheduler_sends_ticks() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut ticker = Ticker::start(tx).await.unwrap();
        let every = crate::config::parse_cron("* * * * * *").unwrap();
        ticker.set(std::slice::from_ref(&every)).await.unwrap();
        let tick = tokio::time::timeout(std::time::Duration::from_secs(3), rx.recv())
            .await
            .expect("a tick within 3 s")
            .unwrap();
        assert_eq!(tick.schedule, schedule_key(&every));
        assert_eq!(
            tick.at.timestamp_subsec_nanos(),
            0,
            "the cron time, whole seconds"
        );
        ticker.set(&[]).await.unwrap();
        assert!(ticker.jobs.is_empty());
        ticker.stop().await;
    }
}
