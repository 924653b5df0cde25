//! The report's numbers: one pass over the alerts, no formatting and no I/O, so every figure is
//! a pure function of the input that the tests check exactly (the definitions are in the
//! [module docs](super) and on [`Figures`]).

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::alert::vocab::{KNOWN_SEVERITIES, Severity, Status};

/// One alert, as the report needs it (the caller extracts these from the stored API JSON).
#[derive(Debug, Clone)]
pub struct AlertSummary {
    /// The tenant's configured name.
    pub tenant: String,
    /// Defender's alert ID.
    pub id: String,
    /// `title`.
    pub title: String,
    /// `severity`: `High`, `Medium`, `Low`, `Informational`, `UnSpecified` or anything newer
    /// (unknown values are shown, never dropped).
    pub severity: String,
    /// `status`: `New`, `InProgress`, `Resolved` or anything newer (anything but `Resolved` is open).
    pub status: String,
    /// `category`.
    pub category: Option<String>,
    /// `computerDnsName`.
    pub device: Option<String>,
    /// `alertCreationTime`.
    pub created: Option<DateTime<Utc>>,
    /// `lastUpdateTime`.
    pub updated: DateTime<Utc>,
    /// `resolvedTime`.
    pub resolved: Option<DateTime<Utc>>,
}

/// What to report on.
pub struct ReportInput<'a> {
    /// The report's "now": every window and age is measured back from it.
    pub generated_at: DateTime<Utc>,
    /// The headline window, e.g. 24 h for "what happened in the last 24 hours".
    pub window: std::time::Duration,
    /// Every alert in its latest state (tested up to 100,000).
    pub alerts: &'a [AlertSummary],
}

/// The numbers, so tests (and the caller's log line) can check them without parsing HTML.
///
/// "Window" below is `[generated_at − window, generated_at]`; "the last 30 days" is
/// `[generated_at − 30 × 24 h, generated_at]`. Timestamps after `generated_at` count as
/// `generated_at` (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Alerts created within the window (a missing creation time falls back to the last update).
    pub new_in_window: usize,
    /// Alerts updated within the window but created before it (disjoint from `new_in_window`).
    pub updated_in_window: usize,
    /// Alerts whose `resolvedTime` is within the window, whatever their status now.
    pub resolved_in_window: usize,
    /// Open alerts (status not `Resolved`) by severity, most severe first: unknown severities
    /// alphabetically (only those with open alerts; they rank above `High`), then `High`,
    /// `Medium`, `Low`, `Informational`, `UnSpecified` (always present, possibly zero).
    pub open_by_severity: Vec<(String, usize)>,
    /// Open alerts by age since creation, always the four rows of [`AGE_BUCKETS`]: `< 1 day` is
    /// under 24 h, `1–7 days` is 24 h up to 7 × 24 h, and so on; exactly 30 days is `> 30 days`.
    pub open_by_age: Vec<(String, usize)>,
    /// The 10 most frequent categories among alerts **updated within the last 30 days** (open or
    /// not: the basis is "what kept the SOC busy this month", not only today's backlog), most
    /// frequent first, ties by name. Alerts without a category are not counted.
    pub top_categories: Vec<(String, usize)>,
    /// The 10 most frequent devices on the same basis as `top_categories`. DNS names are
    /// case-insensitive, so names are compared and shown in lower case; alerts without a device
    /// (e.g. identity or cloud-app alerts) are not counted.
    pub top_devices: Vec<(String, usize)>,
    /// Mean of `resolvedTime − alertCreationTime` over alerts whose `resolvedTime` is within the
    /// last 30 days (30 days rather than the window: one night has too few resolutions for a
    /// stable mean). Alerts without a creation time, or resolved before they were created, are
    /// skipped. `None` if no alert qualifies.
    pub mean_time_to_resolve: Option<std::time::Duration>,
    /// The last 30 UTC dates (oldest first, today last and partial, every day present), each with
    /// the number of alerts **created** that day by severity. Every day lists the same severities
    /// in the same order, most severe first: unknown ones seen in these 30 days alphabetically
    /// (past [`MAX_EXTRA_SERIES`] of them, the rest are summed as [`OTHER_SEVERITIES`]), then the
    /// five known ones.
    pub per_day: Vec<(NaiveDate, Vec<(String, usize)>)>,
}

/// The age buckets of [`Figures::open_by_age`], youngest first.
pub const AGE_BUCKETS: [&str; 4] = ["< 1 day", "1–7 days", "7–30 days", "> 30 days"];
/// How many unknown severities get their own series in [`Figures::per_day`] and the chart.
pub const MAX_EXTRA_SERIES: usize = 5;
/// The series that sums the unknown severities past [`MAX_EXTRA_SERIES`].
pub const OTHER_SEVERITIES: &str = "(other severities)";
/// Length of the top lists.
pub const TOP_N: usize = 10;
/// Days in the chart, in [`Figures::per_day`], and in the basis of the top lists and MTTR.
pub const TREND_DAYS: usize = 30;
/// Days in the Markdown per-day table (the most recent ones).
pub const MARKDOWN_DAYS: usize = 14;
/// Rows in the "most recent open High alerts" table.
pub const RECENT_HIGH: usize = 20;

/// Everything the renderers need besides the figures.
pub(super) struct Analysis<'a> {
    pub(super) figures: Figures,
    pub(super) window_start: DateTime<Utc>,
    pub(super) tenants: Vec<&'a str>,
    pub(super) open_total: usize,
    /// How many alerts the mean time to resolve is over.
    pub(super) mttr_basis: usize,
    /// The most recent open alerts of High severity or above, newest first.
    pub(super) recent_high: Vec<&'a AlertSummary>,
    /// Open alerts of High severity or above in all (the table shows at most [`RECENT_HIGH`]).
    pub(super) open_high: usize,
}

/// A severity as counted: one of the known ones (by index in [`KNOWN_SEVERITIES`]) or an
/// unknown text (trimmed, borrowed from the alert).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Sev<'a> {
    Known(usize),
    Unknown(&'a str),
}

fn classify_severity(s: &str) -> Sev<'_> {
    let sev = Severity::parse(s);
    match KNOWN_SEVERITIES.iter().position(|k| *k == sev) {
        Some(i) => Sev::Known(i),
        None => Sev::Unknown(s.trim()),
    }
}

impl Sev<'_> {
    /// `High` or above ([`Severity::is_high_or_above`]): unknown severities rank above `High`.
    fn is_high_or_above(self) -> bool {
        match self {
            Sev::Known(i) => KNOWN_SEVERITIES[i].is_high_or_above(),
            Sev::Unknown(_) => true,
        }
    }
}

/// Unknown severities in the one order, most severe first ([`Severity`]'s order, descending).
fn most_severe_first(names: &mut [&str]) {
    names.sort_unstable_by_key(|s| std::cmp::Reverse(Severity::parse(s)));
}

/// `t − d`, saturating at the earliest representable instant.
fn minus(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn sort_counts(map: HashMap<String, usize>, n: usize) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = map.into_iter().collect();
    let cmp = |a: &(String, usize), b: &(String, usize)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    if n > 0 && v.len() > n {
        // Partial selection first: 100,000 distinct devices need not be fully sorted.
        v.select_nth_unstable_by(n - 1, cmp);
    }
    v.truncate(n);
    v.sort_by(cmp);
    v
}

/// One pass over the alerts: the figures and what the views need besides them.
pub(super) fn analyse<'a>(input: &ReportInput<'a>) -> Analysis<'a> {
    let now = input.generated_at;
    let window_start = minus(now, input.window);
    let trend_start = minus(now, Duration::from_secs(TREND_DAYS as u64 * 86_400));
    let today = now.date_naive();
    let first_day = today
        .checked_sub_days(chrono::Days::new(TREND_DAYS as u64 - 1))
        .unwrap_or(NaiveDate::MIN);
    let clamp = |t: DateTime<Utc>| t.min(now);

    let mut new_in_window = 0;
    let mut updated_in_window = 0;
    let mut resolved_in_window = 0;
    let mut open_known = [0usize; 5];
    let mut open_unknown: HashMap<&str, usize> = HashMap::new();
    let mut open_by_age = [0usize; 4];
    let mut categories: HashMap<&str, usize> = HashMap::new();
    let mut devices: HashMap<String, usize> = HashMap::new();
    let mut mttr_sum: u128 = 0;
    let mut mttr_n: usize = 0;
    // Per day: counts of the known severities, and of unknown ones by name.
    let mut day_known = vec![[0usize; 5]; TREND_DAYS];
    let mut day_unknown: HashMap<(usize, &str), usize> = HashMap::new();
    let mut tenants: BTreeSet<&str> = BTreeSet::new();
    let mut high: Vec<&AlertSummary> = Vec::new();
    let mut open_total = 0;

    for a in input.alerts {
        tenants.insert(a.tenant.as_str());
        let updated = clamp(a.updated);
        let created = clamp(a.created.unwrap_or(a.updated));
        let sev = classify_severity(&a.severity);

        if created >= window_start {
            new_in_window += 1;
        } else if updated >= window_start {
            updated_in_window += 1;
        }
        if let Some(r) = a.resolved.map(clamp) {
            if r >= window_start {
                resolved_in_window += 1;
            }
            if r >= trend_start
                && let Some(c) = a.created.map(clamp)
                && let Ok(d) = r.signed_duration_since(c).to_std()
            {
                mttr_sum = mttr_sum.saturating_add(d.as_nanos());
                mttr_n += 1;
            }
        }

        if Status::parse(&a.status).is_open() {
            open_total += 1;
            match sev {
                Sev::Known(i) => open_known[i] += 1,
                Sev::Unknown(s) => *open_unknown.entry(s).or_default() += 1,
            }
            let age = now.signed_duration_since(created);
            let bucket = if age < TimeDelta::days(1) {
                0
            } else if age < TimeDelta::days(7) {
                1
            } else if age < TimeDelta::days(30) {
                2
            } else {
                3
            };
            open_by_age[bucket] += 1;
            if sev.is_high_or_above() {
                high.push(a);
            }
        }

        if updated >= trend_start {
            if let Some(c) = a.category.as_deref().map(str::trim)
                && !c.is_empty()
            {
                *categories.entry(c).or_default() += 1;
            }
            if let Some(d) = a.device.as_deref().map(str::trim)
                && !d.is_empty()
            {
                if d.bytes().any(|b| b.is_ascii_uppercase()) {
                    *devices.entry(d.to_ascii_lowercase()).or_default() += 1;
                } else if let Some(n) = devices.get_mut(d) {
                    *n += 1;
                } else {
                    devices.insert(d.to_owned(), 1);
                }
            }
        }

        let day = created.date_naive();
        if day >= first_day && day <= today {
            let idx = (day - first_day).num_days();
            if let Ok(idx) = usize::try_from(idx)
                && idx < TREND_DAYS
            {
                match sev {
                    Sev::Known(i) => day_known[idx][i] += 1,
                    Sev::Unknown(s) => *day_unknown.entry((idx, s)).or_default() += 1,
                }
            }
        }
    }

    // Severity rows, most severe first: unknown ones (above High), then the known ones always.
    let mut unknown: Vec<&str> = open_unknown.keys().copied().collect();
    most_severe_first(&mut unknown);
    let mut open_by_severity: Vec<(String, usize)> = unknown
        .into_iter()
        .map(|s| (s.to_owned(), open_unknown[s]))
        .collect();
    open_by_severity.extend(
        KNOWN_SEVERITIES
            .iter()
            .zip(open_known)
            .map(|(k, n)| (k.as_str().to_owned(), n)),
    );

    // Per-day series: up to MAX_EXTRA_SERIES unknown ones, then "other", then the known ones.
    let mut extra: Vec<&str> = day_unknown.keys().map(|(_, s)| *s).collect();
    extra.sort_unstable();
    extra.dedup();
    most_severe_first(&mut extra);
    let folded = extra.len() > MAX_EXTRA_SERIES;
    let shown_extra = &extra[..extra.len().min(MAX_EXTRA_SERIES)];
    let mut per_day = Vec::with_capacity(TREND_DAYS);
    for (idx, known) in day_known.iter().enumerate() {
        let date = first_day
            .checked_add_days(chrono::Days::new(idx as u64))
            .unwrap_or(NaiveDate::MAX);
        let mut row: Vec<(String, usize)> = Vec::with_capacity(KNOWN_SEVERITIES.len() + 6);
        for s in shown_extra {
            let n = day_unknown.get(&(idx, *s)).copied().unwrap_or(0);
            row.push(((*s).to_owned(), n));
        }
        if folded {
            let n = extra[MAX_EXTRA_SERIES..]
                .iter()
                .map(|s| day_unknown.get(&(idx, *s)).copied().unwrap_or(0))
                .sum();
            row.push((OTHER_SEVERITIES.to_owned(), n));
        }
        row.extend(
            KNOWN_SEVERITIES
                .iter()
                .zip(known)
                .map(|(k, n)| (k.as_str().to_owned(), *n)),
        );
        per_day.push((date, row));
    }

    // The most recent open High alerts.
    let open_high = high.len();
    let newest_first = |a: &&AlertSummary, b: &&AlertSummary| -> Ordering {
        let ca = a.created.unwrap_or(a.updated);
        let cb = b.created.unwrap_or(b.updated);
        cb.cmp(&ca)
            .then_with(|| a.tenant.cmp(&b.tenant))
            .then_with(|| a.id.cmp(&b.id))
    };
    if high.len() > RECENT_HIGH {
        high.select_nth_unstable_by(RECENT_HIGH - 1, newest_first);
        high.truncate(RECENT_HIGH);
    }
    high.sort_by(newest_first);

    let mean_time_to_resolve = (mttr_n > 0).then(|| {
        let mean = mttr_sum / mttr_n as u128;
        let secs = u64::try_from(mean / 1_000_000_000).unwrap_or(u64::MAX);
        Duration::new(secs, (mean % 1_000_000_000) as u32)
    });

    let figures = Figures {
        new_in_window,
        updated_in_window,
        resolved_in_window,
        open_by_severity,
        open_by_age: AGE_BUCKETS
            .iter()
            .zip(open_by_age)
            .map(|(b, n)| ((*b).to_owned(), n))
            .collect(),
        top_categories: sort_counts(
            categories
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            TOP_N,
        ),
        top_devices: sort_counts(devices, TOP_N),
        mean_time_to_resolve,
        per_day,
    };
    Analysis {
        figures,
        window_start,
        tenants: tenants.into_iter().collect(),
        open_total,
        mttr_basis: mttr_n,
        recent_high: high,
        open_high,
    }
}
