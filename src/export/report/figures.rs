//! The report's numbers: one pass over the alerts, no formatting and no I/O, so every figure is
//! a pure function of the input that the tests check exactly (the definitions are in the
//! [module docs](super) and on [`Figures`]).
//!
//! # Memory
//!
//! The pass is a [`Tally`] fed one alert at a time, so the caller never holds a list of every
//! alert (a store of 1,000,000 alerts made the report keep ~400 bytes per alert). Everything the
//! report shows is a counter or a bounded list, and the tally keeps only that: counters, the
//! [`RECENT_HIGH`] newest open High alerts in a bounded heap, and maps keyed by open unknown
//! severity, tenant, category and device (a key is copied once, when it is first seen). The
//! last two grow with the number of *distinct* categories and devices updated in the last
//! [`TREND_DAYS`] days: bounded by the estate (its machines and Defender's category list), not
//! by the number of alerts or of their versions.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::alert::vocab::{KNOWN_SEVERITIES, Severity, Status};

/// One alert, as the report needs it, for the tests' in-memory reports (an export reads each
/// stored alert as an [`AlertRef`] instead).
#[cfg(test)]
#[derive(Debug, Clone)]
pub(crate) struct AlertSummary {
    /// The tenant's configured name.
    pub(crate) tenant: String,
    /// Defender's alert ID.
    pub(crate) id: String,
    /// `title`.
    pub(crate) title: String,
    /// `severity`: `High`, `Medium`, `Low`, `Informational`, `UnSpecified` or anything newer
    /// (unknown values are shown, never dropped).
    pub(crate) severity: String,
    /// `status`: `New`, `InProgress`, `Resolved` or anything newer (anything but `Resolved` is open).
    pub(crate) status: String,
    /// `category`.
    pub(crate) category: Option<String>,
    /// `computerDnsName`.
    pub(crate) device: Option<String>,
    /// `alertCreationTime`.
    pub(crate) created: Option<DateTime<Utc>>,
    /// `lastUpdateTime`.
    pub(crate) updated: DateTime<Utc>,
    /// `resolvedTime`.
    pub(crate) resolved: Option<DateTime<Utc>>,
    /// `alertWebUrl`: the alert in the Defender portal, as stored (shown only when it is an
    /// https link to the portal, see [`portal_link`]).
    pub(crate) web_url: Option<String>,
    /// `classification`: `TruePositive`, `FalsePositive`, `InformationalExpectedActivity`, …
    pub(crate) classification: Option<String>,
}

/// What to report on.
#[cfg(test)]
pub(crate) struct ReportInput<'a> {
    /// The report's "now": every window and age is measured back from it.
    pub(crate) generated_at: DateTime<Utc>,
    /// The headline window, e.g. 24 h for "what happened in the last 24 hours".
    pub(crate) window: std::time::Duration,
    /// Every alert in its latest state (tested up to 100,000).
    pub(crate) alerts: &'a [AlertSummary],
    /// The time zone dates and days are shown in (UTC when `None`).
    pub(crate) timezone: Option<Tz>,
}

/// The numbers, so tests (and the caller's log line) can check them without parsing HTML.
///
/// "Window" below is `[generated_at − window, generated_at]`; "the last 30 days" is
/// `[generated_at − 30 × 24 h, generated_at]`. Timestamps after `generated_at` count as
/// `generated_at` (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figures {
    /// Alerts created within the window (a missing creation time falls back to the last update).
    pub(crate) new_in_window: usize,
    /// Alerts updated within the window but created before it (disjoint from `new_in_window`).
    pub(crate) updated_in_window: usize,
    /// Alerts whose `resolvedTime` is within the window, whatever their status now.
    pub(crate) resolved_in_window: usize,
    /// Open alerts (status not `Resolved`) by severity, most severe first: unknown severities
    /// alphabetically (only those with open alerts; they rank above `High`), then `High`,
    /// `Medium`, `Low`, `Informational`, `UnSpecified` (always present, possibly zero).
    pub(crate) open_by_severity: Vec<(String, usize)>,
    /// Open alerts by age since creation, always the four rows of [`AGE_BUCKETS`]: `< 1 day` is
    /// under 24 h, `1–7 days` is 24 h up to 7 × 24 h, and so on; exactly 30 days is `> 30 days`.
    pub(crate) open_by_age: Vec<(String, usize)>,
    /// The 10 most frequent categories among alerts **updated within the last 30 days** (open or
    /// not: the basis is "what kept the SOC busy this month", not only today's backlog), most
    /// frequent first, ties by name. Alerts without a category are not counted.
    pub(crate) top_categories: Vec<(String, usize)>,
    /// The 10 most frequent devices on the same basis as `top_categories`. DNS names are
    /// case-insensitive, so names are compared and shown in lower case; alerts without a device
    /// (e.g. identity or cloud-app alerts) are not counted.
    pub(crate) top_devices: Vec<(String, usize)>,
    /// Mean of `resolvedTime − alertCreationTime` over alerts whose `resolvedTime` is within the
    /// last 30 days (30 days rather than the window: one night has too few resolutions for a
    /// stable mean). Alerts without a creation time, or resolved before they were created, are
    /// skipped. `None` if no alert qualifies.
    pub(crate) mean_time_to_resolve: Option<std::time::Duration>,
    /// The last 30 UTC dates (oldest first, today last and partial, every day present), each with
    /// the number of alerts **created** that day by severity. Every day lists the same severities
    /// in the same order, most severe first: unknown ones seen in these 30 days alphabetically
    /// (past [`MAX_EXTRA_SERIES`] of them, the rest are summed as [`OTHER_SEVERITIES`]), then the
    /// five known ones.
    pub(crate) per_day: Vec<(NaiveDate, Vec<(String, usize)>)>,
    /// Alerts created in the window of the same length just before this one (the change on
    /// the "new" tile).
    pub(crate) new_in_previous_window: usize,
    /// Alerts resolved in the previous window of the same length.
    pub(crate) resolved_in_previous_window: usize,
    /// Alerts open at the window's start (created before it, not resolved by then; a resolved
    /// alert without `resolvedTime` counts as resolved at its last update).
    pub(crate) open_at_window_start: usize,
    /// The open backlog at the end of each of the days of `per_day` (at the report's time for
    /// today), by the same rule as `open_at_window_start`.
    pub(crate) open_per_day: Vec<(NaiveDate, usize)>,
    /// Classification of the alerts resolved in the last 30 days.
    pub(crate) classification: Classification,
    /// Per tenant, by name: what the tiles say, for a report over several tenants.
    pub(crate) by_tenant: Vec<TenantFigures>,
}

/// How the alerts resolved in the last 30 days were classified.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Classification {
    /// `TruePositive`.
    pub(crate) true_positive: usize,
    /// `FalsePositive`.
    pub(crate) false_positive: usize,
    /// `InformationalExpectedActivity` (Graph's `informationalExpectedActivity`) or a benign
    /// positive: real activity, no threat.
    pub(crate) benign: usize,
    /// Not classified (`Unknown`, empty, or a value newer than these).
    pub(crate) unknown: usize,
}

/// One tenant's figures in a report over several.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TenantFigures {
    /// The tenant's configured name.
    pub(crate) tenant: String,
    /// Alerts on record.
    pub(crate) alerts: usize,
    /// Open now.
    pub(crate) open: usize,
    /// Open, High severity or above.
    pub(crate) open_high: usize,
    /// New in the window.
    pub(crate) new_in_window: usize,
    /// Resolved in the window.
    pub(crate) resolved_in_window: usize,
}

/// The hosts of the Defender portal (commercial, GCC High, DoD) an alert's link may point to.
const PORTAL_HOSTS: &[&str] = &[
    "security.microsoft.com",
    "security.microsoft.us",
    "security.apps.mil",
];

/// `alertWebUrl` when it is an `https://` link to a Defender portal host, else `None`: the
/// stored value is attacker-influenced only as far as Microsoft lets it be, and a link in a
/// manager's mail must never be `javascript:` or point anywhere else.
pub(crate) fn portal_link(url: &str) -> Option<&str> {
    let url = url.trim();
    url.get(..8)
        .filter(|p| p.eq_ignore_ascii_case("https://"))?;
    let after = &url[8..];
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let host = &after[..end];
    let ok_host = PORTAL_HOSTS.iter().any(|h| host.eq_ignore_ascii_case(h));
    let clean = url
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '<' | '>' | '\\' | '`'));
    (ok_host && clean && url.len() <= 2048).then_some(url)
}

/// What a `classification` value counts as.
fn classify(c: Option<&str>) -> usize {
    match c.map(|c| c.trim().to_ascii_lowercase()).as_deref() {
        Some("truepositive") => 0,
        Some("falsepositive") => 1,
        Some("informationalexpectedactivity" | "benignpositive" | "benign") => 2,
        _ => 3,
    }
}

/// The age buckets of [`Figures::open_by_age`], youngest first.
const AGE_BUCKETS: [&str; 4] = ["< 1 day", "1–7 days", "7–30 days", "> 30 days"];
/// How many unknown severities get their own series in [`Figures::per_day`] and the chart.
pub(crate) const MAX_EXTRA_SERIES: usize = 5;
/// The series that sums the unknown severities past [`MAX_EXTRA_SERIES`].
pub(crate) const OTHER_SEVERITIES: &str = "(other severities)";
/// Length of the top lists.
pub(crate) const TOP_N: usize = 10;
/// Days in the chart, in [`Figures::per_day`], and in the basis of the top lists and MTTR.
pub(crate) const TREND_DAYS: usize = 30;
/// Days in the Markdown per-day table (the most recent ones).
pub(crate) const MARKDOWN_DAYS: usize = 14;
/// Rows in the "most recent open High alerts" table.
pub(crate) const RECENT_HIGH: usize = 20;

#[cfg(test)]
impl AlertSummary {
    /// This alert as the [`Tally`] reads it.
    pub(super) fn borrowed(&self) -> AlertRef<'_> {
        AlertRef {
            tenant: &self.tenant,
            id: &self.id,
            title: &self.title,
            severity: &self.severity,
            status: &self.status,
            category: self.category.as_deref(),
            device: self.device.as_deref(),
            created: self.created,
            updated: self.updated,
            resolved: self.resolved,
            web_url: self.web_url.as_deref(),
            classification: self.classification.as_deref(),
        }
    }
}

/// One alert as the [`Tally`] reads it: its fields borrowed, so that the store's
/// reader can hand over text straight from the row without a `String` per field and per alert.
#[derive(Debug, Clone, Copy)]
pub(super) struct AlertRef<'a> {
    pub(super) tenant: &'a str,
    pub(super) id: &'a str,
    pub(super) title: &'a str,
    pub(super) severity: &'a str,
    pub(super) status: &'a str,
    pub(super) category: Option<&'a str>,
    pub(super) device: Option<&'a str>,
    pub(super) created: Option<DateTime<Utc>>,
    pub(super) updated: DateTime<Utc>,
    pub(super) resolved: Option<DateTime<Utc>>,
    pub(super) web_url: Option<&'a str>,
    pub(super) classification: Option<&'a str>,
}

/// Everything the renderers need: the figures and what the views show besides them. It owns its
/// data (the input alerts can be gone by the time it is rendered).
pub(super) struct Analysis {
    pub(super) figures: Figures,
    /// The report's "now".
    pub(super) generated_at: DateTime<Utc>,
    /// The headline window's length.
    pub(super) window: Duration,
    /// The zone dates are shown in.
    pub(super) tz: Tz,
    pub(super) window_start: DateTime<Utc>,
    /// Alerts on record (every alert fed to the tally).
    pub(super) alerts: usize,
    /// The tenants seen, by name, sorted.
    pub(super) tenants: Vec<String>,
    pub(super) open_total: usize,
    /// How many alerts the mean time to resolve is over.
    pub(super) mttr_basis: usize,
    /// The most recent open alerts of High severity or above, newest first.
    pub(super) recent_high: Vec<HighAlert>,
    /// Open alerts of High severity or above in all (the table shows at most [`RECENT_HIGH`]).
    pub(super) open_high: usize,
}

/// An open High (or above) alert, as the "most recent" table shows it: copied from the input
/// only when it enters the [`RECENT_HIGH`] newest.
#[derive(Debug, Clone)]
pub(super) struct HighAlert {
    /// The ordering's instant: the creation time, else the last update (as given, not clamped).
    at: DateTime<Utc>,
    /// `alertCreationTime`, shown as it is (`—` when missing).
    pub(super) created: Option<DateTime<Utc>>,
    pub(super) tenant: String,
    pub(super) id: String,
    pub(super) title: String,
    pub(super) device: Option<String>,
    pub(super) status: String,
    /// The severity as sent (the table says which of High and above it is).
    pub(super) severity: String,
    /// The alert in the Defender portal, when its stored link is one ([`portal_link`]).
    pub(super) link: Option<String>,
    /// The position in the input: the last tie-break, so that the table is a function of the
    /// input even for two alerts with the same tenant and ID (a store holds no such pair).
    seq: u64,
}

/// The order of the "most recent open High" table, smallest first: newest first, then by tenant,
/// then by ID, then in input order.
type HighKey<'a> = (Reverse<DateTime<Utc>>, &'a str, &'a str, u64);

fn high_key<'a>(a: &AlertRef<'a>, seq: u64) -> HighKey<'a> {
    (Reverse(a.created.unwrap_or(a.updated)), a.tenant, a.id, seq)
}

impl HighAlert {
    fn of(a: &AlertRef<'_>, seq: u64) -> Self {
        HighAlert {
            at: a.created.unwrap_or(a.updated),
            created: a.created,
            tenant: a.tenant.to_owned(),
            id: a.id.to_owned(),
            title: a.title.to_owned(),
            device: a.device.map(str::to_owned),
            status: a.status.to_owned(),
            severity: a.severity.to_owned(),
            link: a.web_url.and_then(portal_link).map(str::to_owned),
            seq,
        }
    }

    fn key(&self) -> HighKey<'_> {
        (Reverse(self.at), &self.tenant, &self.id, self.seq)
    }
}

impl PartialEq for HighAlert {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for HighAlert {}

impl PartialOrd for HighAlert {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for HighAlert {
    /// [`HighKey`]'s order: in a max-heap, the top is the entry the table would show last.
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
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

/// Adds one to `map[key]`, copying `key` only when it is new.
fn bump(map: &mut HashMap<String, usize>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n += 1;
    } else {
        map.insert(key.to_owned(), 1);
    }
}

/// The report's one pass, one alert at a time ([`Tally::add`]), in any order: what it keeps is
/// bounded (see the [module docs](self)), whatever the number of alerts.
pub(super) struct Tally {
    now: DateTime<Utc>,
    window: Duration,
    window_start: DateTime<Utc>,
    trend_start: DateTime<Utc>,
    today: NaiveDate,
    first_day: NaiveDate,
    alerts: usize,
    new_in_window: usize,
    updated_in_window: usize,
    resolved_in_window: usize,
    open_total: usize,
    open_known: [usize; 5],
    open_unknown: HashMap<String, usize>,
    open_by_age: [usize; 4],
    categories: HashMap<String, usize>,
    devices: HashMap<String, usize>,
    /// A device name in lower case, reused so that looking one up allocates nothing.
    lower: String,
    mttr_sum: u128,
    mttr_n: usize,
    /// Per day: counts of the known severities, and of unknown ones by name.
    day_known: [[usize; 5]; TREND_DAYS],
    day_unknown: HashMap<String, [usize; TREND_DAYS]>,
    tenants: BTreeSet<String>,
    tz: Tz,
    previous_start: DateTime<Utc>,
    new_previous: usize,
    resolved_previous: usize,
    open_at_start: usize,
    /// Per day, the change in the open backlog at its start ([`Tally::backlog`]).
    backlog_delta: [i64; TREND_DAYS + 1],
    classification: [usize; 4],
    by_tenant: BTreeMap<String, TenantFigures>,
    /// At most [`RECENT_HIGH`] entries; the top is the one that leaves first.
    high: BinaryHeap<HighAlert>,
    open_high: usize,
}

impl Tally {
    /// An empty tally for a report generated at `generated_at` with the headline `window`.
    pub(super) fn new(generated_at: DateTime<Utc>, window: Duration, tz: Tz) -> Self {
        let today = generated_at.with_timezone(&tz).date_naive();
        let window_start = minus(generated_at, window);
        Tally {
            now: generated_at,
            window,
            window_start,
            tz,
            previous_start: minus(window_start, window),
            new_previous: 0,
            resolved_previous: 0,
            open_at_start: 0,
            backlog_delta: [0; TREND_DAYS + 1],
            classification: [0; 4],
            by_tenant: BTreeMap::new(),
            trend_start: minus(
                generated_at,
                Duration::from_secs(TREND_DAYS as u64 * 86_400),
            ),
            today,
            first_day: today
                .checked_sub_days(chrono::Days::new(TREND_DAYS as u64 - 1))
                .unwrap_or(NaiveDate::MIN),
            alerts: 0,
            new_in_window: 0,
            updated_in_window: 0,
            resolved_in_window: 0,
            open_total: 0,
            open_known: [0; 5],
            open_unknown: HashMap::new(),
            open_by_age: [0; 4],
            categories: HashMap::new(),
            devices: HashMap::new(),
            lower: String::new(),
            mttr_sum: 0,
            mttr_n: 0,
            day_known: [[0; 5]; TREND_DAYS],
            day_unknown: HashMap::new(),
            tenants: BTreeSet::new(),
            high: BinaryHeap::with_capacity(RECENT_HIGH + 1),
            open_high: 0,
        }
    }

    /// Counts one alert.
    pub(super) fn add(&mut self, a: &AlertRef<'_>) {
        let seq = self.alerts as u64;
        self.alerts += 1;
        if !self.tenants.contains(a.tenant) {
            self.tenants.insert(a.tenant.to_owned());
        }
        let now = self.now;
        let clamp = |t: DateTime<Utc>| t.min(now);
        let updated = clamp(a.updated);
        let created = clamp(a.created.unwrap_or(a.updated));
        let sev = classify_severity(a.severity);

        let open = Status::parse(a.status).is_open();
        let is_new = created >= self.window_start;
        let resolved_in_window = a.resolved.is_some_and(|r| clamp(r) >= self.window_start);
        self.count_tenant(a.tenant, |row| {
            row.alerts += 1;
            row.open += usize::from(open);
            row.open_high += usize::from(open && sev.is_high_or_above());
            row.new_in_window += usize::from(is_new);
            row.resolved_in_window += usize::from(resolved_in_window);
        });
        if is_new {
            self.new_in_window += 1;
        } else if updated >= self.window_start {
            self.updated_in_window += 1;
        }
        if created >= self.previous_start && created < self.window_start {
            self.new_previous += 1;
        }
        // When it stopped being open: a resolved alert without `resolvedTime` at its update.
        let closed = (!open).then(|| a.resolved.map(clamp).unwrap_or(updated));
        if created < self.window_start && closed.is_none_or(|c| c > self.window_start) {
            self.open_at_start += 1;
        }
        self.backlog(created, closed);
        if let Some(r) = a.resolved.map(clamp) {
            if r >= self.window_start {
                self.resolved_in_window += 1;
            } else if r >= self.previous_start {
                self.resolved_previous += 1;
            }
            if r >= self.trend_start {
                self.classification[classify(a.classification)] += 1;
            }
            if r >= self.trend_start
                && let Some(c) = a.created.map(clamp)
                && let Ok(d) = r.signed_duration_since(c).to_std()
            {
                self.mttr_sum = self.mttr_sum.saturating_add(d.as_nanos());
                self.mttr_n += 1;
            }
        }

        if open {
            self.open_total += 1;
            match sev {
                Sev::Known(i) => self.open_known[i] += 1,
                Sev::Unknown(s) => bump(&mut self.open_unknown, s),
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
            self.open_by_age[bucket] += 1;
            if sev.is_high_or_above() {
                self.open_high += 1;
                if self.high.len() < RECENT_HIGH {
                    self.high.push(HighAlert::of(a, seq));
                } else if let Some(mut last) = self.high.peek_mut()
                    && high_key(a, seq) < last.key()
                {
                    // Replacing the top through `PeekMut` restores the heap when it drops.
                    *last = HighAlert::of(a, seq);
                }
            }
        }

        if updated >= self.trend_start {
            if let Some(c) = a.category.map(str::trim)
                && !c.is_empty()
            {
                bump(&mut self.categories, c);
            }
            if let Some(d) = a.device.map(str::trim)
                && !d.is_empty()
            {
                if d.bytes().any(|b| b.is_ascii_uppercase()) {
                    self.lower.clear();
                    self.lower.push_str(d);
                    self.lower.make_ascii_lowercase();
                    bump(&mut self.devices, &self.lower);
                } else {
                    bump(&mut self.devices, d);
                }
            }
        }

        let day = self.day_of(created);
        if day >= self.first_day && day <= self.today {
            let idx = (day - self.first_day).num_days();
            if let Ok(idx) = usize::try_from(idx)
                && idx < TREND_DAYS
            {
                match sev {
                    Sev::Known(i) => self.day_known[idx][i] += 1,
                    Sev::Unknown(s) => {
                        if let Some(days) = self.day_unknown.get_mut(s) {
                            days[idx] += 1;
                        } else {
                            let mut days = [0; TREND_DAYS];
                            days[idx] = 1;
                            self.day_unknown.insert(s.to_owned(), days);
                        }
                    }
                }
            }
        }
    }

    /// Applies `f` to `tenant`'s row, copying the name only when the row is new.
    fn count_tenant(&mut self, tenant: &str, f: impl FnOnce(&mut TenantFigures)) {
        if let Some(row) = self.by_tenant.get_mut(tenant) {
            f(row);
            return;
        }
        let mut row = TenantFigures {
            tenant: tenant.to_owned(),
            ..TenantFigures::default()
        };
        f(&mut row);
        self.by_tenant.insert(tenant.to_owned(), row);
    }

    /// The date of `t` in the report's zone.
    fn day_of(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    /// The index of `day` among the trend's days: `Err(0)` before the first, `Err(1)` after
    /// today.
    fn day_index(&self, day: NaiveDate) -> Result<usize, u8> {
        if day < self.first_day {
            return Err(0);
        }
        match usize::try_from((day - self.first_day).num_days()) {
            Ok(i) if i < TREND_DAYS => Ok(i),
            _ => Err(1),
        }
    }

    /// Counts an alert created at `created` and closed at `closed` (`None`: still open) in the
    /// backlog at the end of each day: open from its creation day, up to the day before the
    /// one it was closed on.
    fn backlog(&mut self, created: DateTime<Utc>, closed: Option<DateTime<Utc>>) {
        let from = match self.day_index(self.day_of(created)) {
            Ok(i) => i,
            Err(0) => 0,
            Err(_) => return,
        };
        let to = match closed.map(|c| self.day_index(self.day_of(c))) {
            None | Some(Err(1)) => TREND_DAYS,
            Some(Ok(i)) => i,
            Some(Err(_)) => return,
        };
        if from < to {
            self.backlog_delta[from] += 1;
            self.backlog_delta[to] -= 1;
        }
    }

    /// The figures and the rest of what the views show.
    pub(super) fn finish(self) -> Analysis {
        // Severity rows, most severe first: unknown ones (above High), then the known ones always.
        let mut unknown: Vec<&str> = self.open_unknown.keys().map(String::as_str).collect();
        most_severe_first(&mut unknown);
        let mut open_by_severity: Vec<(String, usize)> = unknown
            .into_iter()
            .map(|s| (s.to_owned(), self.open_unknown[s]))
            .collect();
        open_by_severity.extend(
            KNOWN_SEVERITIES
                .iter()
                .zip(self.open_known)
                .map(|(k, n)| (k.as_str().to_owned(), n)),
        );

        // Per-day series: up to MAX_EXTRA_SERIES unknown ones, then "other", then the known ones.
        let mut extra: Vec<&str> = self.day_unknown.keys().map(String::as_str).collect();
        extra.sort_unstable();
        most_severe_first(&mut extra);
        let folded = extra.len() > MAX_EXTRA_SERIES;
        let shown_extra = &extra[..extra.len().min(MAX_EXTRA_SERIES)];
        let mut per_day = Vec::with_capacity(TREND_DAYS);
        for (idx, known) in self.day_known.iter().enumerate() {
            let date = self
                .first_day
                .checked_add_days(chrono::Days::new(idx as u64))
                .unwrap_or(NaiveDate::MAX);
            let mut row: Vec<(String, usize)> = Vec::with_capacity(KNOWN_SEVERITIES.len() + 6);
            for s in shown_extra {
                row.push(((*s).to_owned(), self.day_unknown[*s][idx]));
            }
            if folded {
                let n = extra[MAX_EXTRA_SERIES..]
                    .iter()
                    .map(|s| self.day_unknown[*s][idx])
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

        let mean_time_to_resolve = (self.mttr_n > 0).then(|| {
            let mean = self.mttr_sum / self.mttr_n as u128;
            let secs = u64::try_from(mean / 1_000_000_000).unwrap_or(u64::MAX);
            Duration::new(secs, (mean % 1_000_000_000) as u32)
        });

        let mut open = 0i64;
        let open_per_day = per_day
            .iter()
            .zip(self.backlog_delta)
            .map(|((date, _), delta)| {
                open = open.saturating_add(delta);
                (*date, usize::try_from(open).unwrap_or(0))
            })
            .collect();
        let [true_positive, false_positive, benign, unknown] = self.classification;
        let figures = Figures {
            new_in_previous_window: self.new_previous,
            resolved_in_previous_window: self.resolved_previous,
            open_at_window_start: self.open_at_start,
            open_per_day,
            classification: Classification {
                true_positive,
                false_positive,
                benign,
                unknown,
            },
            by_tenant: self.by_tenant.into_values().collect(),
            new_in_window: self.new_in_window,
            updated_in_window: self.updated_in_window,
            resolved_in_window: self.resolved_in_window,
            open_by_severity,
            open_by_age: AGE_BUCKETS
                .iter()
                .zip(self.open_by_age)
                .map(|(b, n)| ((*b).to_owned(), n))
                .collect(),
            top_categories: sort_counts(self.categories, TOP_N),
            top_devices: sort_counts(self.devices, TOP_N),
            mean_time_to_resolve,
            per_day,
        };
        Analysis {
            figures,
            generated_at: self.now,
            window: self.window,
            tz: self.tz,
            window_start: self.window_start,
            alerts: self.alerts,
            tenants: self.tenants.into_iter().collect(),
            open_total: self.open_total,
            mttr_basis: self.mttr_n,
            // Ascending in `HighAlert`'s order: newest first.
            recent_high: self.high.into_sorted_vec(),
            open_high: self.open_high,
        }
    }
}
