//! Is each tenant healthy? The rules `status` applies (and exits 1 on) in one place, and the
//! report it prints as a typed, serde-derived structure: `status --json` is a file other programs
//! read, so its shape is checked by the compiler at both ends.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alert::time::ApiTime;
use crate::config::Warning;
use crate::metrics::LastRun as LastPoll;
use crate::store::{Outcome, RunRow, Store, StoreError};

/// One tenant's health, as `status --json` prints it (one object per tenant, in an array).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantStatus {
    /// The tenant's configured name.
    pub tenant: String,
    /// Whether the tenant needs no attention.
    pub healthy: bool,
    /// What is wrong (or, for a healthy tenant, worth knowing), in words.
    pub problem: Option<String>,
    /// Alerts stored.
    pub alerts: u64,
    /// Alerts by status.
    pub alerts_by_status: BTreeMap<String, u64>,
    /// Alerts by severity.
    pub alerts_by_severity: BTreeMap<String, u64>,
    /// The cursor: the newest `lastUpdateTime` stored by a poll.
    pub cursor: Option<String>,
    /// When the last poll that made progress finished.
    pub last_success: Option<String>,
    /// How long ago that was.
    pub last_success_age_secs: Option<u64>,
    /// The next scheduled poll, when the service runs.
    pub next_poll: Option<String>,
    /// Whether the service (`run`) is running.
    daemon_running: bool,
    /// The newest run of any kind.
    pub last_run: Option<RunSummary>,
    /// Elements the API sent that were not valid alerts, kept verbatim in `rejected_elements`.
    #[serde(default)]
    rejected: u64,
    /// What the admin should act on though the tenant is healthy (the MDE API's switch-off).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    /// The store's size on disk, database and WAL (the whole store: the same for every tenant).
    #[serde(default)]
    pub store_bytes: u64,
    /// Of `store_bytes`, the write-ahead log's (large while a service writes, small after a
    /// checkpoint).
    #[serde(default)]
    pub store_wal_bytes: u64,
    /// When the oldest revision still in the store was stored: how far back the history reaches
    /// after retention (the whole store).
    #[serde(default)]
    pub oldest_revision: Option<String>,
}

/// A run, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// `poll` or `import`.
    pub kind: String,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339), if it ended.
    finished_at: Option<String>,
    /// `running`, `ok`, `partial`, `stalled`, `failed`, `interrupted`.
    pub outcome: String,
    /// HTTP calls to the API.
    pub api_calls: i64,
    /// 429 answers.
    pub throttled: i64,
    /// Time spent waiting for budget, `Retry-After` and backoffs.
    waited_secs: i64,
    /// Pages committed.
    pages: i64,
    /// New alerts.
    pub new: u64,
    /// Alerts replaced by a newer version.
    pub updated: u64,
    /// Versions seen again.
    pub unchanged: u64,
    /// Older versions ignored.
    pub stale: u64,
    /// Elements that were not valid alerts.
    pub invalid: u64,
    /// The error, if it failed.
    pub error: Option<String>,
    /// What to do about the error, when there is something to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Polls this summary stands for: a streak of quiet polls is stored as one row, whose
    /// figures add up; `started_at` is then the newest poll's start.
    #[serde(default = "one")]
    pub polls: i64,
    /// When the streak's first poll began, for a streak of more than one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streak_since: Option<String>,
}

fn one() -> i64 {
    1
}

impl From<&RunRow> for RunSummary {
    fn from(r: &RunRow) -> Self {
        RunSummary {
            polls: r.polls,
            streak_since: (r.polls > 1).then(|| r.started_at.clone()),
            kind: r.kind.clone(),
            started_at: r.last_start().to_owned(),
            finished_at: r.finished_at.clone(),
            outcome: r.outcome.clone(),
            api_calls: r.api_calls,
            throttled: r.throttled,
            waited_secs: r.waited_ms / 1000,
            pages: r.pages,
            new: r.counts.new,
            updated: r.counts.updated,
            unchanged: r.counts.unchanged,
            stale: r.counts.stale,
            invalid: r.counts.invalid,
            error: r.error.clone(),
            fix: r.fix.clone(),
        }
    }
}

/// The health rules: unhealthy when no poll has run or made progress, when the last poll failed
/// or was interrupted or made no progress (`stalled`: stopped at its deadline, or inside an
/// instant it could not get past), or when the last poll that made progress is older than
/// `max_age`.
fn verdict(
    last_poll: Option<&LastPoll>,
    success_age: Option<Duration>,
    max_age: Duration,
) -> (bool, Option<String>) {
    let stalled = last_poll.is_some_and(|p| p.outcome == Some(Outcome::Stalled));
    match (last_poll, success_age) {
        (None, _) => (false, Some("no poll has run yet".to_owned())),
        (Some(p), _) if p.outcome == Some(Outcome::Failed) => (false, Some("the last poll failed".to_owned())),
        (Some(p), _) if p.outcome == Some(Outcome::Interrupted) => (
            false,
            Some("the last poll was interrupted before it finished".to_owned()),
        ),
        (_, None) if stalled => (
            false,
            Some("no poll has made progress yet: the last one stopped at its deadline without reading anything new".to_owned()),
        ),
        (_, None) => (false, Some("no poll has succeeded yet".to_owned())),
        (_, Some(age)) if age > max_age => (
            false,
            Some(format!(
                "the last successful poll is {} old (more than [health] max_age {}){}",
                crate::words::duration(age),
                crate::words::duration(max_age),
                if stalled {
                    "; the polls since made no progress"
                } else {
                    ""
                }
            )),
        ),
        // A poll that made no progress is not called healthy, however recent the last success:
        // a tenant stuck on one instant would otherwise look well while later alerts go unread.
        (Some(p), _) if stalled => (
            false,
            Some(match &p.error {
                Some(e) => format!("the last poll made no progress: {e}"),
                None => "the last poll made no progress (it stopped at its deadline without reading anything new)".to_owned(),
            }),
        ),
        _ => (true, None),
    }
}

/// The whole install at a glance: `status`'s first line, so that 1,000 tenants read in one line
/// and only the tenants that need attention follow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Tenants configured (or asked for).
    tenants: usize,
    /// Healthy tenants.
    healthy: usize,
    /// Unhealthy tenants that have polled at least once.
    unhealthy: usize,
    /// Tenants no poll has run for yet (unhealthy too, counted apart: a new customer, not a fault).
    never_polled: usize,
    /// The oldest of the tenants' last successes, and its tenant: the one the next alarm is about.
    oldest_success: Option<(String, String)>,
    /// Its age in seconds.
    oldest_success_age_secs: Option<u64>,
}

impl TenantStatus {
    /// Whether `status` shows this tenant when it lists only those that need attention: it is
    /// unhealthy, has a problem to read (a stalled poll, rejected elements), or a warning other
    /// than those every tenant of its kind shares (`shared`).
    pub fn needs_attention(&self, shared: &[Warning]) -> bool {
        !self.healthy || self.problem.is_some() || self.warnings.iter().any(|w| !shared.contains(w))
    }
}

/// Sums up `all`.
pub fn summarize(all: &[TenantStatus]) -> Summary {
    let mut s = Summary {
        tenants: all.len(),
        ..Summary::default()
    };
    for t in all {
        if t.healthy {
            s.healthy += 1;
        } else if t.last_run.is_none() {
            s.never_polled += 1;
        } else {
            s.unhealthy += 1;
        }
        if let (Some(at), Some(age)) = (&t.last_success, t.last_success_age_secs)
            && s.oldest_success_age_secs.is_none_or(|a| age > a)
        {
            s.oldest_success = Some((t.tenant.clone(), at.clone()));
            s.oldest_success_age_secs = Some(age);
        }
    }
    s
}

impl std::fmt::Display for Summary {
    /// `1000 tenants: 990 healthy, 7 unhealthy, 3 never polled; oldest success 2026-…Z (contoso, 5 minutes ago)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tenant{}: {} healthy, {} unhealthy, {} never polled",
            self.tenants,
            if self.tenants == 1 { "" } else { "s" },
            self.healthy,
            self.unhealthy,
            self.never_polled
        )?;
        if let (Some((tenant, at)), Some(age)) =
            (&self.oldest_success, self.oldest_success_age_secs)
        {
            write!(
                f,
                "; oldest success {at} ({tenant}, {} ago)",
                crate::words::duration(Duration::from_secs(age))
            )?;
        }
        Ok(())
    }
}

/// What `status` says of the whole store (its size, how far back its history reaches): read
/// once, then copied into each tenant's report rather than read again per tenant.
#[derive(Debug, Clone, Default)]
pub struct StoreFacts {
    /// Bytes on disk, WAL included.
    bytes: u64,
    /// Of those, the write-ahead log's.
    wal_bytes: u64,
    /// When the oldest revision still stored was stored.
    oldest_revision: Option<String>,
    /// What an export or `store check` found damaged in the store, until a check passes.
    damaged: Option<String>,
}

impl StoreFacts {
    /// Reads them from `store`.
    pub fn read(store: &Store) -> Result<StoreFacts, StoreError> {
        let (db, wal) = crate::store::retention::sizes_on_disk(store);
        Ok(StoreFacts {
            bytes: db + wal,
            wal_bytes: wal,
            oldest_revision: crate::store::retention::oldest_revision(store)?,
            damaged: crate::store::check::corruption_mark(store.path()),
        })
    }
}

/// Reads one tenant's status from the store. `next_poll` comes from the running service.
pub fn tenant_status(
    store: &Store,
    facts: &StoreFacts,
    tenant: &str,
    max_age: Duration,
    next_poll: Option<String>,
    daemon_running: bool,
) -> Result<TenantStatus, StoreError> {
    let now = ApiTime::now();
    let f = crate::metrics::tenant_figures(store, tenant)?;
    let success_age = f.last_success.map(|s| {
        let ticks = now.ticks().saturating_sub(s.ticks()).max(0) as u64;
        Duration::from_nanos(ticks.saturating_mul(100))
    });
    let (mut healthy, mut problem) = verdict(f.last_poll.as_ref(), success_age, max_age);
    // A damaged store is every tenant's problem: its exports are incomplete until it is repaired.
    if let Some(what) = &facts.damaged {
        healthy = false;
        let note = format!(
            "the store is corrupt ({what}); exports leave out the alerts they cannot read. Run `mde-alerts store check` for what to do; healthy again once it passes"
        );
        problem = Some(match problem {
            Some(p) => format!("{note}; {p}"),
            None => note,
        });
    }
    let rejected = store.rejected_count(tenant)?;
    if rejected > 0 {
        let note = format!(
            "{rejected} element{} the API sent {} not valid alerts (no id, or an unreadable lastUpdateTime); kept verbatim in the store's rejected_elements table, not in exports",
            if rejected == 1 { "" } else { "s" },
            if rejected == 1 { "was" } else { "were" }
        );
        problem = Some(match problem {
            Some(p) => format!("{p}; {note}"),
            None => note,
        });
    }
    let mut alerts_by_status = BTreeMap::new();
    let mut alerts_by_severity = BTreeMap::new();
    let mut alerts = 0u64;
    for ((sev, st), n) in &f.alerts {
        alerts += n;
        *alerts_by_status.entry(st.clone()).or_insert(0) += n;
        *alerts_by_severity.entry(sev.clone()).or_insert(0) += n;
    }
    let last_run = store.runs(Some(tenant), 1)?.first().map(RunSummary::from);
    Ok(TenantStatus {
        tenant: tenant.to_owned(),
        healthy,
        problem,
        alerts,
        alerts_by_status,
        alerts_by_severity,
        cursor: store.cursor(tenant)?.map(|c| c.to_api_string()),
        last_success: f.last_success.map(|s| s.to_api_string()),
        last_success_age_secs: success_age.map(|a| a.as_secs()),
        next_poll,
        daemon_running,
        last_run,
        rejected,
        warnings: Vec::new(),
        store_bytes: facts.bytes,
        store_wal_bytes: facts.wal_bytes,
        oldest_revision: facts.oldest_revision.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(outcome: Outcome) -> LastPoll {
        LastPoll {
            at: ApiTime::now(),
            outcome: Some(outcome),
            duration_secs: 1.0,
            api_calls: 1,
            throttled: 0,
            error: None,
        }
    }

    const HOUR: Duration = Duration::from_secs(3_600);

    /// Every outcome the store records reads back as itself, so the health rules see what the
    /// poll wrote; a run still going reads as none.
    #[test]
    fn every_outcome_reads_back_as_itself() {
        for o in [
            Outcome::Ok,
            Outcome::Partial,
            Outcome::Failed,
            Outcome::Stalled,
            Outcome::Interrupted,
        ] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::parse("running"), None);
    }

    #[test]
    fn the_health_rules() {
        let min = Some(Duration::from_secs(60));
        let day = Some(Duration::from_secs(86_400));
        assert!(!verdict(None, None, HOUR).0);
        assert!(verdict(Some(&poll(Outcome::Ok)), min, HOUR).0);
        assert!(verdict(Some(&poll(Outcome::Partial)), min, HOUR).0);
        assert!(!verdict(Some(&poll(Outcome::Failed)), min, HOUR).0);
        assert!(!verdict(Some(&poll(Outcome::Interrupted)), min, HOUR).0);
        assert!(!verdict(Some(&poll(Outcome::Ok)), day, HOUR).0);
        // Stalled: unhealthy however recent the last success, and said so.
        let (ok, why) = verdict(Some(&poll(Outcome::Stalled)), min, HOUR);
        assert!(!ok);
        assert!(why.unwrap().contains("no progress"));
        let (ok, why) = verdict(Some(&poll(Outcome::Stalled)), day, HOUR);
        assert!(!ok);
        assert!(why.unwrap().contains("made no progress"));
        let (ok, why) = verdict(Some(&poll(Outcome::Stalled)), None, HOUR);
        assert!(!ok);
        assert!(why.unwrap().contains("no poll has made progress"));
    }

    fn status(tenant: &str, healthy: bool, polled: bool, age: Option<u64>) -> TenantStatus {
        TenantStatus {
            tenant: tenant.into(),
            healthy,
            problem: (!healthy).then(|| "the last poll failed".into()),
            alerts: 0,
            alerts_by_status: BTreeMap::new(),
            alerts_by_severity: BTreeMap::new(),
            cursor: None,
            last_success: age.map(|a| format!("t-{a}")),
            last_success_age_secs: age,
            next_poll: None,
            daemon_running: false,
            last_run: polled.then(|| RunSummary {
                kind: "poll".into(),
                started_at: "x".into(),
                finished_at: None,
                outcome: if healthy { "ok" } else { "failed" }.into(),
                api_calls: 1,
                throttled: 0,
                waited_secs: 0,
                pages: 1,
                new: 0,
                updated: 0,
                unchanged: 0,
                stale: 0,
                invalid: 0,
                error: None,
                fix: None,
                polls: 1,
                streak_since: None,
            }),
            rejected: 0,
            warnings: vec![Warning::new("shared", "x")],
            store_bytes: 0,
            store_wal_bytes: 0,
            oldest_revision: None,
        }
    }

    #[test]
    fn the_summary_counts_each_tenant_once_and_names_the_oldest_success() {
        let all = [
            status("a", true, true, Some(60)),
            status("b", false, true, Some(7_200)),
            status("c", false, false, None),
            status("d", true, true, Some(300)),
        ];
        let s = summarize(&all);
        assert_eq!(
            (s.tenants, s.healthy, s.unhealthy, s.never_polled),
            (4, 2, 1, 1)
        );
        assert_eq!(s.oldest_success, Some(("b".into(), "t-7200".into())));
        assert_eq!(
            s.to_string(),
            "4 tenants: 2 healthy, 1 unhealthy, 1 never polled; oldest success t-7200 (b, 2 hours ago)"
        );
        let shared = [Warning::new("shared", "x")];
        let attention: Vec<_> = all
            .iter()
            .filter(|t| t.needs_attention(&shared))
            .map(|t| t.tenant.as_str())
            .collect();
        assert_eq!(attention, ["b", "c"]);
        let mut odd = status("e", true, true, Some(1));
        odd.warnings.push(Warning::new("its own", "y"));
        assert!(odd.needs_attention(&shared));
    }
}
