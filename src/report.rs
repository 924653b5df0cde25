//! The nightly report: one self-contained HTML page for a SOC manager, plus the same numbers as
//! Markdown.
//!
//! # Why this module exists
//!
//! The CSV and JSON exports answer "give me every alert"; a manager asks "what happened last night,
//! what is still open, and is it getting better?". This module turns the alerts, each in its latest
//! state, into those numbers ([`Figures`]) and two renderings of them ([`Report`]). It does no I/O:
//! the caller reads the store, builds [`AlertSummary`] values and writes the files (atomically, as
//! the exports do), so everything here is a pure function that tests can check exactly.
//!
//! # Safety of the output
//!
//! Every string that comes from an alert — title, device, category, severity, status, tenant, ID —
//! is attacker-influenced: a process on an endpoint can choose the text that ends up in a title.
//! * In HTML it is escaped for text *and* attribute context (`& < > " '`), control characters and
//!   bidirectional overrides are replaced by U+FFFD, and very long values are cut for display.
//!   The page also carries a Content-Security-Policy (`default-src 'none'`) so that, should an
//!   escaping bug ever slip through, a browser still runs no script and fetches nothing.
//! * In Markdown it is backslash-escaped (`\ ` * _ ~ [ ] < > |`, a leading `# - + =`, an `&` that
//!   could start an entity), and line breaks become spaces, so a value can neither end a table
//!   cell nor start a link, an HTML tag, a heading or a code span.
//!
//! The page makes **no external requests**: no scripts, no fonts (a system font stack), no
//! images, no `url(…)`, no links; the chart is inline SVG and the styles are one inline `<style>`.
//!
//! # Definitions (also printed in the report)
//!
//! * **Window**: `[generated_at − window, generated_at]`. Timestamps later than `generated_at`
//!   (clock skew, or bad data) are treated as `generated_at`, so they count as "now", never as
//!   negative ages.
//! * **Creation time**: `alertCreationTime`; when missing, `lastUpdateTime` stands in (the latest
//!   instant at which the alert certainly existed). This applies to "new", ages and the chart, but
//!   not to the time to resolve, which skips such alerts rather than invent a duration.
//! * **Open**: [`Status::is_open`]: status is not `Resolved` (trimmed, ignoring ASCII case).
//!   Unknown statuses are open.
//! * **Severities** are read by [`Severity::parse`]: the five documented values ignoring ASCII
//!   case, a blank value as `UnSpecified`, anything else verbatim as its own row. Every list is
//!   most severe first in that one order, so an unknown severity (`Critical`) comes before `High`,
//!   and "High" figures (the open High count, the recent High table) include unknown severities.
//! * See [`Figures`] for each number.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::fmt::{self, Display, Write as _};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};

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

/// A rendered report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// A complete, self-contained HTML document (UTF-8; no external requests).
    pub html: String,
    /// The same numbers as GitHub-flavoured Markdown tables (a per-day table instead of the chart).
    pub markdown: String,
    /// The numbers themselves.
    pub figures: Figures,
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

/// Renders the report. Never panics, whatever the input (empty, future dates, resolved before
/// created, huge windows, hostile text).
pub fn render(input: &ReportInput<'_>) -> Report {
    let analysis = analyse(input);
    let mut html = String::with_capacity(64 * 1024);
    let mut markdown = String::with_capacity(8 * 1024);
    // Writing into a `String` cannot fail; the `fmt::Result`s only exist for `?` inside.
    let _ = write_html(&mut html, input, &analysis);
    let _ = write_markdown(&mut markdown, input, &analysis);
    Report {
        html,
        markdown,
        figures: analysis.figures,
    }
}

// ---------------------------------------------------------------------------------------------
// Analysis: one pass over the alerts.
// ---------------------------------------------------------------------------------------------

/// Everything the renderers need besides the figures.
struct Analysis<'a> {
    figures: Figures,
    window_start: DateTime<Utc>,
    tenants: Vec<&'a str>,
    open_total: usize,
    /// How many alerts the mean time to resolve is over.
    mttr_basis: usize,
    /// The most recent open alerts of High severity or above, newest first.
    recent_high: Vec<&'a AlertSummary>,
    /// Open alerts of High severity or above in all (the table shows at most [`RECENT_HIGH`]).
    open_high: usize,
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

fn analyse<'a>(input: &ReportInput<'a>) -> Analysis<'a> {
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

// ---------------------------------------------------------------------------------------------
// Formatting helpers.
// ---------------------------------------------------------------------------------------------

/// Longest alert-supplied value shown, in characters (the figures keep the full text).
const MAX_SHOWN_CHARS: usize = 200;

/// Characters never shown as they are: controls (except tab and line breaks) and bidirectional
/// marks and overrides, which could hide or reorder the text around them.
fn is_hidden_hazard(c: char) -> bool {
    (c.is_control() && c != '\t' && c != '\n' && c != '\r')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// The first [`MAX_SHOWN_CHARS`] characters, and whether anything was cut.
fn shown(s: &str) -> (&str, bool) {
    match s.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((i, _)) => (&s[..i], true),
        None => (s, false),
    }
}

/// Alert-supplied text, escaped for HTML text and attribute values alike.
struct Html<'a>(&'a str);

impl Display for Html<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (text, cut) = shown(self.0);
        let mut start = 0;
        for (i, c) in text.char_indices() {
            let rep = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                c if is_hidden_hazard(c) => "\u{FFFD}",
                _ => continue,
            };
            f.write_str(&text[start..i])?;
            f.write_str(rep)?;
            start = i + c.len_utf8();
        }
        f.write_str(&text[start..])?;
        if cut {
            f.write_str("…")?;
        }
        Ok(())
    }
}

/// Alert-supplied text, escaped for inline Markdown, including inside a table cell.
struct Md<'a>(&'a str);

impl Display for Md<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (text, cut) = shown(self.0.trim());
        if text.is_empty() {
            return f.write_str("—");
        }
        let mut chars = text.chars().peekable();
        let mut prev: Option<char> = None;
        while let Some(c) = chars.next() {
            let next = chars.peek().copied();
            match c {
                // An underscore between two letters or digits can neither open nor close emphasis
                // (CommonMark's flanking rules), so `host_name` and alert IDs stay readable.
                '_' if prev.is_some_and(|p| p.is_ascii_alphanumeric())
                    && next.is_some_and(|n| n.is_ascii_alphanumeric()) =>
                {
                    f.write_char('_')?;
                }
                '\\' | '`' | '*' | '_' | '~' | '[' | ']' | '<' | '>' | '|' => {
                    f.write_char('\\')?;
                    f.write_char(c)?;
                }
                '#' | '-' | '+' | '=' if prev.is_none() => {
                    f.write_char('\\')?;
                    f.write_char(c)?;
                }
                // Only `&` followed by a name or `#` can start an entity reference.
                '&' if next.is_some_and(|n| n.is_ascii_alphanumeric() || n == '#') => {
                    f.write_str("\\&")?;
                }
                '\n' | '\r' | '\t' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}' => {
                    f.write_char(' ')?;
                }
                c if is_hidden_hazard(c) => f.write_char('\u{FFFD}')?,
                c => f.write_char(c)?,
            }
            prev = Some(c);
        }
        if cut {
            f.write_str("…")?;
        }
        Ok(())
    }
}

/// `12345` → `12,345`.
fn num(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A share as a percentage with one decimal (`0.0` for an empty total).
fn pct(n: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 * 100.0 / total as f64
    }
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A window length as people say it: `24 hours`, `7 days`, `90 minutes`.
fn human_window(d: Duration) -> String {
    let s = d.as_secs();
    let unit = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if s == 0 {
        format!("{} ms", d.as_millis())
    } else if s.is_multiple_of(86_400) && s >= 2 * 86_400 {
        unit(s / 86_400, "day", "days")
    } else if s.is_multiple_of(3_600) {
        unit(s / 3_600, "hour", "hours")
    } else if s.is_multiple_of(60) {
        unit(s / 60, "minute", "minutes")
    } else {
        unit(s, "second", "seconds")
    }
}

/// A duration to the two largest units: `3 d 4 h`, `5 h 12 min`, `42 min`, `< 1 min`.
fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    if days > 0 {
        format!("{days} d {hours} h")
    } else if hours > 0 {
        format!("{hours} h {mins} min")
    } else if mins > 0 {
        format!("{mins} min")
    } else {
        "< 1 min".to_owned()
    }
}

/// The fill colour of a severity series.
fn severity_color(name: &str, unknown_rank: usize) -> &'static str {
    match name {
        "High" => "#d1242f",
        "Medium" => "#f0883e",
        "Low" => "#e3b341",
        "Informational" => "#6c9bd2",
        "UnSpecified" => "#9aa4ae",
        _ => [
            "#6e7781", "#c4cbd2", "#57606a", "#afb8c1", "#818b95", "#424a53",
        ][unknown_rank % 6],
    }
}

/// Colours for a list of severity names (known ones fixed, unknown ones shades of grey).
fn series_colors<'s>(names: impl Iterator<Item = &'s str>) -> Vec<&'static str> {
    let mut unknown = 0;
    names
        .map(|n| {
            let c = severity_color(n, unknown);
            if !Severity::parse(n).is_known() {
                unknown += 1;
            }
            c
        })
        .collect()
}

/// Up to ~6 round tick steps covering `0..=max`: returns (axis maximum, step).
fn nice_axis(max: usize) -> (usize, usize) {
    if max == 0 {
        return (4, 1);
    }
    let raw = max.div_ceil(5).max(1);
    let mut magnitude = 1usize;
    while magnitude.saturating_mul(10) <= raw {
        magnitude *= 10;
    }
    let step = [1, 2, 5, 10]
        .iter()
        .map(|m| magnitude.saturating_mul(*m))
        .find(|s| *s >= raw)
        .unwrap_or(raw);
    (max.div_ceil(step).saturating_mul(step), step)
}

// ---------------------------------------------------------------------------------------------
// HTML.
// ---------------------------------------------------------------------------------------------

const CSS: &str = r#"
:root{--fg:#1f2328;--muted:#59636e;--line:#d8dee4;--soft:#eef1f4;--bg:#f6f8fa;--card:#fff}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue","Noto Sans","Liberation Sans",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:28px 24px 40px}
header{margin:0 0 20px}
h1{font-size:26px;line-height:1.25;margin:0 0 6px;font-weight:650;letter-spacing:-.01em}
h2{font-size:16px;margin:0 0 2px;font-weight:650}
.meta{color:var(--muted);font-size:14px;margin:0;display:flex;flex-wrap:wrap;gap:4px 22px}
.meta b{color:var(--fg);font-weight:600}
.note{color:var(--muted);font-size:13px;margin:0 0 12px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 22px;margin:0 0 18px;break-inside:avoid}
.kpis{display:grid;grid-template-columns:repeat(6,1fr);gap:12px;margin:0 0 18px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 16px;break-inside:avoid}
.kpi .n{font-size:28px;font-weight:650;line-height:1.2;font-variant-numeric:tabular-nums;white-space:nowrap}
.kpi .l{color:var(--muted);font-size:13px}
.kpi.alert .n{color:#d1242f}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:18px}
.grid2>section{margin:0 0 18px}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:6px 8px;border-bottom:1px solid var(--soft);text-align:left;vertical-align:top}
thead th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600;border-bottom:1px solid var(--line)}
tbody tr:last-child td{border-bottom:0}
tfoot td{border-top:1px solid var(--line);border-bottom:0;font-weight:600}
.num{text-align:right;white-space:nowrap}
.when{white-space:nowrap;color:var(--muted)}
.rank{color:var(--muted);width:2em}
.share{width:34%}
.bar{height:8px;margin-top:7px;background:var(--soft);border-radius:4px;overflow:hidden}
.bar>span{display:block;height:100%;border-radius:4px;background:#8c959f}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:8px;vertical-align:0}
.wrap{overflow-wrap:anywhere}
table.fixed{table-layout:fixed}
.c-when{width:150px}.c-dev{width:22%}.c-tenant{width:11%}.c-status{width:96px}
.id{display:block;color:var(--muted);font-size:12px;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace}
.zero td{color:var(--muted)}
.empty{color:var(--muted);font-style:italic;margin:6px 0 0}
.legend{display:flex;flex-wrap:wrap;gap:4px 18px;font-size:13px;margin:0 0 6px}
.chart svg{display:block;width:100%;height:auto}
.chart text{font-size:11px;fill:var(--muted)}
.chart .axis-title{font-size:12px;fill:var(--fg)}
.chart .grid{stroke:var(--soft);stroke-width:1}
.chart .base{stroke:#8c959f;stroke-width:1}
.chart .weekend{fill:#f6f8fa}
.chart .hover{fill:transparent}
.chart .hover:hover{fill:rgba(31,35,40,.06)}
footer{color:var(--muted);font-size:12px;margin:8px 2px 0}
footer p{margin:0 0 4px}
@media (max-width:900px){.kpis{grid-template-columns:repeat(3,1fr)}.grid2{grid-template-columns:1fr}}
@media print{
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 @page{size:A4;margin:12mm}
 body{background:#fff;font-size:11px}
 main{max-width:none;padding:0}
 h1{font-size:19px}
 h2{font-size:13px}
 .meta,.legend{font-size:11px}
 .note{font-size:10px;margin-bottom:6px}
 section{padding:10px 14px;margin-bottom:10px;border-color:#c8d0d8}
 .kpis{grid-template-columns:repeat(6,1fr);gap:8px;margin-bottom:10px}
 .kpi{padding:8px 10px;border-color:#c8d0d8}
 .kpi .n{font-size:20px}
 .kpi .l{font-size:10px}
 .grid2{grid-template-columns:1fr 1fr;gap:10px}
 .grid2>section{margin-bottom:10px}
 th,td{padding:3px 6px}
 thead th{font-size:9px}
 .share{width:24%}
 .bar{margin-top:4px;height:6px}
 .id{font-size:9px}
 .c-when{width:106px}.c-status{width:72px}
 .chart .hover{display:none}
 footer{font-size:9px}
}
"#;

fn write_html(out: &mut String, input: &ReportInput<'_>, a: &Analysis<'_>) -> fmt::Result {
    let f = &a.figures;
    let now = input.generated_at;
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    // Belt and braces: even if some text escaped its escaping, nothing runs and nothing loads.
    out.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
    );
    writeln!(
        out,
        "<title>Defender alerts report — {}</title>",
        now.format("%Y-%m-%d %H:%M UTC")
    )?;
    writeln!(out, "<style>{CSS}</style>\n</head>\n<body>\n<main>")?;

    // Header.
    out.push_str(
        "<header>\n<h1>Microsoft Defender for Endpoint — alert report</h1>\n<p class=\"meta\">",
    );
    write!(
        out,
        "<span>Generated <b>{}</b></span><span>Window <b>last {}</b> (since {})</span>",
        when(now),
        human_window(input.window),
        when(a.window_start)
    )?;
    write!(out, "<span>Tenants <b>")?;
    write_tenants_html(out, &a.tenants)?;
    writeln!(
        out,
        "</b></span><span>Alerts on record <b>{}</b></span></p>\n</header>",
        num(input.alerts.len())
    )?;

    // Headline numbers.
    out.push_str("<div class=\"kpis\">\n");
    let window = human_window(input.window);
    let kpi = |out: &mut String, n: &str, label: &str, class: &str| {
        let _ = writeln!(
            out,
            "<div class=\"kpi{class}\"><div class=\"n\">{n}</div><div class=\"l\">{label}</div></div>"
        );
    };
    kpi(
        out,
        &num(f.new_in_window),
        &format!("New in the last {window}"),
        "",
    );
    kpi(out, &num(f.updated_in_window), "Older alerts updated", "");
    kpi(out, &num(f.resolved_in_window), "Resolved in window", "");
    kpi(out, &num(a.open_total), "Open now", "");
    kpi(
        out,
        &num(a.open_high),
        "Open High severity",
        if a.open_high > 0 { " alert" } else { "" },
    );
    let mttr = f
        .mean_time_to_resolve
        .map(human_duration)
        .unwrap_or_else(|| "—".to_owned());
    kpi(out, &mttr, "Mean time to resolve (30 d)", "");
    out.push_str("</div>\n");

    // Open by severity and by age.
    out.push_str("<div class=\"grid2\">\n<section>\n<h2>Open alerts by severity</h2>\n");
    out.push_str("<p class=\"note\">Status is not Resolved.</p>\n");
    let colors = series_colors(f.open_by_severity.iter().map(|(s, _)| s.as_str()));
    write_share_table(
        out,
        "Severity",
        &f.open_by_severity,
        a.open_total,
        Some(&colors),
    )?;
    out.push_str("</section>\n<section>\n<h2>Open alerts by age</h2>\n");
    out.push_str("<p class=\"note\">Time since the alert was created.</p>\n");
    write_share_table(out, "Age", &f.open_by_age, a.open_total, None)?;
    out.push_str("</section>\n</div>\n");

    // Chart.
    write_chart(out, f)?;

    // Top lists.
    out.push_str("<div class=\"grid2\">\n");
    for (title, rows, what) in [
        ("Top categories", &f.top_categories, "Category"),
        ("Top devices", &f.top_devices, "Device"),
    ] {
        writeln!(out, "<section>\n<h2>{title}</h2>")?;
        writeln!(
            out,
            "<p class=\"note\">Alerts updated in the last {TREND_DAYS} days, open or resolved.</p>"
        )?;
        write_top_table(out, what, rows)?;
        out.push_str("</section>\n");
    }
    out.push_str("</div>\n");

    // Recent open High alerts.
    write_recent_high(out, a)?;

    // Footer with the definitions.
    write!(
        out,
        "<footer>\n<p><b>Definitions.</b> Window: {} to {}. New: created in the window. Updated: \
         last updated in the window but created before it. Resolved: resolved time in the window. \
         Open: status other than Resolved. High: High, or a severity newer than the documented \
         ones (ranked above High). Mean time to resolve: mean of resolved − created over \
         the {} alerts resolved in the last {TREND_DAYS} days. Timestamps after the report time \
         count as the report time; an alert without a creation time counts as created at its last \
         update.</p>\n<p>Produced by mde-alerts. This page is self-contained: it loads nothing and \
         runs no script.</p>\n</footer>\n</main>\n</body>\n</html>\n",
        when(a.window_start),
        when(now),
        num(a.mttr_basis)
    )?;
    Ok(())
}

fn write_tenants_html(out: &mut String, tenants: &[&str]) -> fmt::Result {
    const MAX: usize = 12;
    if tenants.is_empty() {
        out.push_str("none");
    }
    for (i, t) in tenants.iter().take(MAX).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write!(out, "{}", Html(t))?;
    }
    if tenants.len() > MAX {
        write!(out, " and {} more", tenants.len() - MAX)?;
    }
    Ok(())
}

/// A table of label, count, share with a bar; `colors` gives a swatch per row.
fn write_share_table(
    out: &mut String,
    what: &str,
    rows: &[(String, usize)],
    total: usize,
    colors: Option<&[&str]>,
) -> fmt::Result {
    writeln!(
        out,
        "<table>\n<thead><tr><th>{what}</th><th class=\"num\">Open</th><th class=\"num\">Share</th>\
         <th class=\"share\"></th></tr></thead>\n<tbody>"
    )?;
    for (i, (label, n)) in rows.iter().enumerate() {
        let color = colors.and_then(|c| c.get(i)).copied().unwrap_or("#8c959f");
        let share = pct(*n, total);
        let zero = if *n == 0 { " class=\"zero\"" } else { "" };
        write!(out, "<tr{zero}><td class=\"wrap\">")?;
        if colors.is_some() {
            write!(
                out,
                "<span class=\"sw\" style=\"background:{color}\"></span>"
            )?;
        }
        writeln!(
            out,
            "{}</td><td class=\"num\">{}</td><td class=\"num\">{share:.1}%</td>\
             <td><div class=\"bar\"><span style=\"width:{share:.1}%;background:{color}\"></span></div></td></tr>",
            Html(label),
            num(*n)
        )?;
    }
    writeln!(
        out,
        "</tbody>\n<tfoot><tr><td>Total</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td></td></tr></tfoot>\n</table>",
        num(total),
        if total > 0 { "100%" } else { "—" }
    )
}

fn write_top_table(out: &mut String, what: &str, rows: &[(String, usize)]) -> fmt::Result {
    if rows.is_empty() {
        return writeln!(
            out,
            "<p class=\"empty\">No alerts with a {} in this period.</p>",
            what.to_lowercase()
        );
    }
    let max = rows.first().map(|r| r.1).unwrap_or(0);
    writeln!(
        out,
        "<table>\n<thead><tr><th class=\"rank\">#</th><th>{what}</th><th class=\"num\">Alerts</th>\
         <th class=\"share\"></th></tr></thead>\n<tbody>"
    )?;
    for (i, (label, n)) in rows.iter().enumerate() {
        writeln!(
            out,
            "<tr><td class=\"rank\">{}</td><td class=\"wrap\">{}</td><td class=\"num\">{}</td>\
             <td><div class=\"bar\"><span style=\"width:{:.1}%;background:#57606a\"></span></div></td></tr>",
            i + 1,
            Html(label),
            num(*n),
            pct(*n, max)
        )?;
    }
    out.push_str("</tbody>\n</table>\n");
    Ok(())
}

fn write_chart(out: &mut String, f: &Figures) -> fmt::Result {
    const W: f64 = 1040.0;
    const H: f64 = 300.0;
    const LEFT: f64 = 56.0;
    const RIGHT: f64 = 12.0;
    const TOP: f64 = 14.0;
    const BOTTOM: f64 = 52.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let base_y = TOP + plot_h;

    let names: Vec<&str> = f
        .per_day
        .first()
        .map(|(_, row)| row.iter().map(|(s, _)| s.as_str()).collect())
        .unwrap_or_default();
    let colors = series_colors(names.iter().copied());
    let totals: Vec<usize> = f
        .per_day
        .iter()
        .map(|(_, row)| row.iter().map(|(_, n)| n).sum())
        .collect();
    let grand: usize = totals.iter().sum();
    let max = totals.iter().copied().max().unwrap_or(0);
    let (axis_max, step) = nice_axis(max);

    out.push_str("<section class=\"chart\">\n<h2>Alerts created per day</h2>\n");
    writeln!(
        out,
        "<p class=\"note\">Last {} days by creation date (UTC), {} alerts; today is partial. \
         Shaded columns are weekends; hover a day for its numbers.</p>",
        f.per_day.len(),
        num(grand)
    )?;
    out.push_str("<div class=\"legend\">");
    for (name, color) in names.iter().zip(&colors) {
        let total: usize = f
            .per_day
            .iter()
            .filter_map(|(_, row)| row.iter().find(|(s, _)| s == name).map(|(_, n)| *n))
            .sum();
        write!(
            out,
            "<span><span class=\"sw\" style=\"background:{color}\"></span>{} ({})</span>",
            Html(name),
            num(total)
        )?;
    }
    out.push_str("</div>\n");

    writeln!(
        out,
        "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"Stacked bar chart of alerts created per day over the last {} days, by severity\">",
        f.per_day.len()
    )?;
    let slot = plot_w / f.per_day.len().max(1) as f64;
    let bar_w = (slot * 0.72).max(1.0);

    // Weekend shading.
    for (i, (date, _)) in f.per_day.iter().enumerate() {
        if date.weekday().number_from_monday() >= 6 {
            writeln!(
                out,
                "<rect class=\"weekend\" x=\"{:.1}\" y=\"{TOP}\" width=\"{slot:.1}\" height=\"{plot_h}\"/>",
                LEFT + i as f64 * slot
            )?;
        }
    }
    // Grid lines and y labels.
    let mut tick = 0;
    while tick <= axis_max {
        let y = base_y - tick as f64 / axis_max as f64 * plot_h;
        if tick > 0 {
            writeln!(
                out,
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>",
                W - RIGHT
            )?;
        }
        writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 8.0,
            y + 4.0,
            num(tick)
        )?;
        match tick.checked_add(step) {
            Some(t) => tick = t,
            None => break,
        }
    }
    // Bars.
    for (i, ((date, row), total)) in f.per_day.iter().zip(&totals).enumerate() {
        let x = LEFT + i as f64 * slot + (slot - bar_w) / 2.0;
        let mut y = base_y;
        for ((_, n), color) in row.iter().zip(&colors) {
            if *n == 0 {
                continue;
            }
            let h = *n as f64 / axis_max as f64 * plot_h;
            y -= h;
            writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.2}\" width=\"{bar_w:.1}\" height=\"{h:.2}\" fill=\"{color}\"/>"
            )?;
        }
        // One hover target per day with the breakdown as its tooltip.
        write!(
            out,
            "<rect class=\"hover\" x=\"{:.1}\" y=\"{TOP}\" width=\"{slot:.1}\" height=\"{plot_h}\"><title>{}: {} alert{}",
            LEFT + i as f64 * slot,
            date.format("%a %d %b %Y"),
            num(*total),
            if *total == 1 { "" } else { "s" }
        )?;
        for (name, n) in row.iter().filter(|(_, n)| *n > 0) {
            write!(out, "\n{}: {}", Html(name), num(*n))?;
        }
        out.push_str("</title></rect>\n");
        // Date labels: every 3rd day counted back from today, so today is always labelled.
        if (f.per_day.len() - 1 - i).is_multiple_of(3) {
            writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x + bar_w / 2.0,
                base_y + 16.0,
                date.format("%b %-d")
            )?;
        }
    }
    writeln!(
        out,
        "<line class=\"base\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{base_y}\" y2=\"{base_y}\"/>",
        W - RIGHT
    )?;
    // Axis titles.
    writeln!(
        out,
        "<text class=\"axis-title\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">Creation date (UTC)</text>",
        LEFT + plot_w / 2.0,
        H - 10.0
    )?;
    writeln!(
        out,
        "<text class=\"axis-title\" transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">Alerts per day</text>",
        TOP + plot_h / 2.0
    )?;
    out.push_str("</svg>\n</section>\n");
    Ok(())
}

fn write_recent_high(out: &mut String, a: &Analysis<'_>) -> fmt::Result {
    let multi_tenant = a.tenants.len() > 1;
    out.push_str("<section>\n<h2>Most recent open High alerts</h2>\n");
    if a.recent_high.is_empty() {
        out.push_str("<p class=\"empty\">No open High severity alerts.</p>\n</section>\n");
        return Ok(());
    }
    writeln!(
        out,
        "<p class=\"note\">The {} newest of {} open High alerts, by creation time.</p>",
        a.recent_high.len(),
        num(a.open_high)
    )?;
    out.push_str(
        "<table class=\"fixed\">\n<thead><tr><th class=\"c-when\">Created (UTC)</th><th>Title</th>\
         <th class=\"c-dev\">Device</th>",
    );
    if multi_tenant {
        out.push_str("<th class=\"c-tenant\">Tenant</th>");
    }
    out.push_str("<th class=\"c-status\">Status</th></tr></thead>\n<tbody>\n");
    for alert in &a.recent_high {
        let created = alert
            .created
            .map(|c| c.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|| "—".to_owned());
        write!(
            out,
            "<tr><td class=\"when\">{created}</td><td class=\"wrap\">{}<span class=\"id\">{}</span></td><td class=\"wrap\">{}</td>",
            Html(&alert.title),
            Html(&alert.id),
            Html(alert.device.as_deref().unwrap_or("—"))
        )?;
        if multi_tenant {
            write!(out, "<td class=\"wrap\">{}</td>", Html(&alert.tenant))?;
        }
        writeln!(out, "<td class=\"wrap\">{}</td></tr>", Html(&alert.status))?;
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Markdown.
// ---------------------------------------------------------------------------------------------

fn write_markdown(out: &mut String, input: &ReportInput<'_>, a: &Analysis<'_>) -> fmt::Result {
    let f = &a.figures;
    let now = input.generated_at;
    let window = human_window(input.window);
    writeln!(out, "# Microsoft Defender for Endpoint — alert report\n")?;
    write!(
        out,
        "Generated **{}** · window: **last {window}** (since {}) · tenants: ",
        when(now),
        when(a.window_start)
    )?;
    if a.tenants.is_empty() {
        out.push_str("none");
    }
    for (i, t) in a.tenants.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write!(out, "{}", Md(t))?;
    }
    writeln!(out, " · alerts on record: {}\n", num(input.alerts.len()))?;

    writeln!(out, "## Headline\n\n| Measure | Value |\n| --- | ---: |")?;
    writeln!(
        out,
        "| New in the last {window} | {} |",
        num(f.new_in_window)
    )?;
    writeln!(
        out,
        "| Older alerts updated in window | {} |",
        num(f.updated_in_window)
    )?;
    writeln!(
        out,
        "| Resolved in window | {} |",
        num(f.resolved_in_window)
    )?;
    writeln!(out, "| Open now | {} |", num(a.open_total))?;
    writeln!(out, "| Open High severity | {} |", num(a.open_high))?;
    let mttr = f
        .mean_time_to_resolve
        .map(human_duration)
        .unwrap_or_else(|| "—".to_owned());
    writeln!(
        out,
        "| Mean time to resolve (last {TREND_DAYS} days, {} alerts) | {mttr} |\n",
        num(a.mttr_basis)
    )?;

    // Severities may be anything the API sent; the age labels are ours and shown as they are.
    for (title, what, rows, from_alerts) in [
        (
            "Open alerts by severity",
            "Severity",
            &f.open_by_severity,
            true,
        ),
        ("Open alerts by age", "Age", &f.open_by_age, false),
    ] {
        writeln!(
            out,
            "## {title}\n\n| {what} | Open | Share |\n| --- | ---: | ---: |"
        )?;
        for (label, n) in rows {
            if from_alerts {
                write!(out, "| {} ", Md(label))?;
            } else {
                write!(out, "| {label} ")?;
            }
            writeln!(out, "| {} | {:.1}% |", num(*n), pct(*n, a.open_total))?;
        }
        writeln!(out, "| **Total** | **{}** | |\n", num(a.open_total))?;
    }

    for (title, what, rows) in [
        ("Top categories", "Category", &f.top_categories),
        ("Top devices", "Device", &f.top_devices),
    ] {
        writeln!(
            out,
            "## {title}\n\nAlerts updated in the last {TREND_DAYS} days, open or resolved.\n"
        )?;
        if rows.is_empty() {
            writeln!(out, "_None._\n")?;
            continue;
        }
        writeln!(out, "| # | {what} | Alerts |\n| ---: | --- | ---: |")?;
        for (i, (label, n)) in rows.iter().enumerate() {
            writeln!(out, "| {} | {} | {} |", i + 1, Md(label), num(*n))?;
        }
        out.push('\n');
    }

    let days = &f.per_day[f.per_day.len().saturating_sub(MARKDOWN_DAYS)..];
    writeln!(
        out,
        "## Alerts created per day\n\nThe last {} days by creation date (UTC); today is partial.\n",
        days.len()
    )?;
    let names: Vec<&str> = days
        .first()
        .map(|(_, row)| row.iter().map(|(s, _)| s.as_str()).collect())
        .unwrap_or_default();
    out.push_str("| Date |");
    for name in &names {
        write!(out, " {} |", Md(name))?;
    }
    out.push_str(" Total |\n| --- |");
    for _ in &names {
        out.push_str(" ---: |");
    }
    out.push_str(" ---: |\n");
    for (date, row) in days.iter().rev() {
        write!(out, "| {} |", date.format("%Y-%m-%d %a"))?;
        for (_, n) in row {
            write!(out, " {} |", num(*n))?;
        }
        writeln!(out, " {} |", num(row.iter().map(|(_, n)| n).sum()))?;
    }
    out.push('\n');

    writeln!(out, "## Most recent open High alerts\n")?;
    if a.recent_high.is_empty() {
        writeln!(out, "_None._\n")?;
    } else {
        writeln!(
            out,
            "The {} newest of {} open High alerts.\n",
            a.recent_high.len(),
            num(a.open_high)
        )?;
        let multi = a.tenants.len() > 1;
        out.push_str("| Created (UTC) | Title | Device |");
        if multi {
            out.push_str(" Tenant |");
        }
        out.push_str(" Status | ID |\n| --- | --- | --- |");
        if multi {
            out.push_str(" --- |");
        }
        out.push_str(" --- | --- |\n");
        for alert in &a.recent_high {
            let created = alert
                .created
                .map(|c| c.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|| "—".to_owned());
            write!(
                out,
                "| {created} | {} | {} |",
                Md(&alert.title),
                Md(alert.device.as_deref().unwrap_or(""))
            )?;
            if multi {
                write!(out, " {} |", Md(&alert.tenant))?;
            }
            writeln!(out, " {} | {} |", Md(&alert.status), Md(&alert.id))?;
        }
        out.push('\n');
    }
    writeln!(
        out,
        "_Window: {} to {}. New: created in the window; updated: last updated in the window but \
         created before it; open: status other than Resolved; High: High or a severity newer than \
         the documented ones; top lists: alerts updated in the \
         last {TREND_DAYS} days; mean time to resolve: resolved − created over alerts resolved in \
         the last {TREND_DAYS} days._",
        when(a.window_start),
        when(now)
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 14, 6, 0, 0).unwrap()
    }

    fn hours(h: i64) -> DateTime<Utc> {
        now() - TimeDelta::hours(h)
    }

    fn day(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, m, d).unwrap()
    }

    #[allow(clippy::too_many_arguments)]
    fn alert(
        id: &str,
        severity: &str,
        status: &str,
        created: Option<DateTime<Utc>>,
        updated: DateTime<Utc>,
        resolved: Option<DateTime<Utc>>,
        category: Option<&str>,
        device: Option<&str>,
    ) -> AlertSummary {
        AlertSummary {
            tenant: "contoso".into(),
            id: id.into(),
            title: format!("Alert {id}"),
            severity: severity.into(),
            status: status.into(),
            category: category.map(Into::into),
            device: device.map(Into::into),
            created,
            updated,
            resolved,
        }
    }

    /// Eleven alerts covering every rule; the expected figures are worked out by hand in comments.
    fn handcrafted() -> Vec<AlertSummary> {
        let ws1 = Some("WS1.contoso.com");
        vec![
            // New in window, open High, < 1 day, created today.
            alert(
                "a1",
                "High",
                "New",
                Some(hours(2)),
                hours(1),
                None,
                Some("Malware"),
                ws1,
            ),
            // Created 3 days ago, updated in window: "updated"; open Medium, 1–7 days.
            alert(
                "a2",
                "Medium",
                "InProgress",
                Some(hours(72)),
                hours(5),
                None,
                Some("Malware"),
                Some("ws1.contoso.com"),
            ),
            // Updated and resolved in window; time to resolve 38 h.
            alert(
                "a3",
                "Low",
                "Resolved",
                Some(hours(48)),
                hours(10),
                Some(hours(10)),
                Some("Execution"),
                Some("ws2"),
            ),
            // Everything older than 30 days: counted nowhere but the record count.
            alert(
                "a4",
                "High",
                "Resolved",
                Some(hours(40 * 24)),
                hours(35 * 24),
                Some(hours(35 * 24)),
                Some("Malware"),
                Some("ws3"),
            ),
            // Open Informational, 7–30 days, no category or device.
            alert(
                "a5",
                "Informational",
                "New",
                Some(hours(240)),
                hours(240),
                None,
                None,
                None,
            ),
            // Unknown severity, open, > 30 days; updated 2 days ago so in the top lists.
            alert(
                "a6",
                "Critical",
                "New",
                Some(hours(45 * 24)),
                hours(48),
                None,
                Some("Execution"),
                Some("ws2"),
            ),
            // Blank severity → UnSpecified; no creation time → its update time (30 min ago) → new.
            alert(
                "a7",
                " ",
                "New",
                None,
                now() - TimeDelta::minutes(30),
                None,
                Some("Persistence"),
                Some("ws4"),
            ),
            // Resolved 25 h ago: just outside the window; time to resolve 95 h.
            alert(
                "a8",
                "Medium",
                "Resolved",
                Some(hours(120)),
                hours(25),
                Some(hours(25)),
                Some("Execution"),
                Some("ws2"),
            ),
            // Created 30 h in the future (bad clock or data): counts as now → new, open High, < 1 day, today.
            alert(
                "a9",
                "High",
                "New",
                Some(now() + TimeDelta::hours(30)),
                now() + TimeDelta::hours(30),
                None,
                Some("Malware"),
                ws1,
            ),
            // Resolved before it was created: resolved in window, but no time to resolve.
            alert(
                "a10",
                "Low",
                "Resolved",
                Some(hours(1)),
                hours(1),
                Some(hours(3)),
                Some("Discovery"),
                None,
            ),
            // Unknown severity, resolved: in the per-day series but not among open severities.
            alert(
                "a11",
                "Bogus",
                "Resolved",
                Some(hours(26)),
                hours(20),
                Some(hours(20)),
                Some("Execution"),
                Some("WS2"),
            ),
        ]
    }

    fn input(alerts: &[AlertSummary]) -> ReportInput<'_> {
        ReportInput {
            generated_at: now(),
            window: Duration::from_secs(24 * 3600),
            alerts,
        }
    }

    fn pairs(v: &[(&str, usize)]) -> Vec<(String, usize)> {
        v.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect()
    }

    #[test]
    fn figures_on_a_handcrafted_set() {
        let alerts = handcrafted();
        let f = render(&input(&alerts)).figures;
        assert_eq!(f.new_in_window, 4, "a1, a7, a9, a10");
        assert_eq!(f.updated_in_window, 3, "a2, a3, a11");
        assert_eq!(f.resolved_in_window, 3, "a3, a10, a11");
        assert_eq!(
            f.open_by_severity,
            pairs(&[
                // Unknown severities rank above High (issue 9 #22).
                ("Critical", 1),
                ("High", 2),
                ("Medium", 1),
                ("Low", 0),
                ("Informational", 1),
                ("UnSpecified", 1),
            ])
        );
        assert_eq!(
            f.open_by_age,
            pairs(&[
                ("< 1 day", 3),
                ("1–7 days", 1),
                ("7–30 days", 1),
                ("> 30 days", 1)
            ])
        );
        assert_eq!(
            f.top_categories,
            pairs(&[
                ("Execution", 4),
                ("Malware", 3),
                ("Discovery", 1),
                ("Persistence", 1)
            ])
        );
        assert_eq!(
            f.top_devices,
            pairs(&[("ws2", 4), ("ws1.contoso.com", 3), ("ws4", 1)])
        );
        // (38 h + 95 h + 6 h) / 3 = 46 h 20 min.
        assert_eq!(
            f.mean_time_to_resolve,
            Some(Duration::from_secs(46 * 3600 + 20 * 60))
        );

        assert_eq!(f.per_day.len(), TREND_DAYS);
        assert_eq!(f.per_day[0].0, day(4, 15));
        assert_eq!(f.per_day[29].0, day(5, 14));
        assert!(
            f.per_day
                .windows(2)
                .all(|w| w[0].0.succ_opt() == Some(w[1].0))
        );
        let series: Vec<&str> = f.per_day[0].1.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            series,
            [
                "Bogus",
                "High",
                "Medium",
                "Low",
                "Informational",
                "UnSpecified"
            ]
        );
        assert!(f.per_day.iter().all(|(_, row)| row.len() == series.len()));
        let counts = |d: NaiveDate| -> Vec<usize> {
            f.per_day
                .iter()
                .find(|(date, _)| *date == d)
                .map(|(_, row)| row.iter().map(|(_, n)| *n).collect())
                .unwrap()
        };
        assert_eq!(counts(day(5, 14)), [0, 2, 0, 1, 0, 1]);
        assert_eq!(counts(day(5, 13)), [1, 0, 0, 0, 0, 0]);
        assert_eq!(counts(day(5, 12)), [0, 0, 0, 1, 0, 0]);
        assert_eq!(counts(day(5, 11)), [0, 0, 1, 0, 0, 0]);
        assert_eq!(counts(day(5, 9)), [0, 0, 1, 0, 0, 0]);
        assert_eq!(counts(day(5, 4)), [0, 0, 0, 0, 1, 0]);
        let total: usize = f
            .per_day
            .iter()
            .flat_map(|(_, row)| row.iter().map(|(_, n)| n))
            .sum();
        assert_eq!(total, 9, "all but a4 and a6, created over 30 days ago");
    }

    #[test]
    fn html_and_markdown_show_the_handcrafted_numbers() {
        let alerts = handcrafted();
        let r = render(&input(&alerts));
        // The most recent open High alerts: a9 (clamped to now) before a1.
        let a9 = r.html.find("Alert a9").unwrap();
        let a1 = r.html.find("Alert a1<").unwrap();
        assert!(a9 < a1);
        assert!(!r.html.contains("Alert a4"), "a4 is resolved");
        assert!(r.html.contains("<div class=\"n\">1 d 22 h</div>"));
        assert!(r.markdown.contains("| New in the last 24 hours | 4 |"));
        assert!(
            r.markdown
                .contains("| Older alerts updated in window | 3 |")
        );
        assert!(r.markdown.contains("| Resolved in window | 3 |"));
        assert!(r.markdown.contains("| Open now | 6 |"));
        assert!(
            r.markdown
                .contains("| Mean time to resolve (last 30 days, 3 alerts) | 1 d 22 h |")
        );
        assert!(r.markdown.contains("| < 1 day | 3 | 50.0% |"));
        assert!(r.markdown.contains("| 1 | Execution | 4 |"));
        // The Markdown per-day table: 14 days, newest first, with the unknown series as a column.
        assert!(r.markdown.contains(
            "| Date | Bogus | High | Medium | Low | Informational | UnSpecified | Total |"
        ));
        assert!(
            r.markdown
                .contains("| 2026-05-14 Thu | 0 | 2 | 0 | 1 | 0 | 1 | 4 |")
        );
        assert_eq!(
            r.markdown.matches("| 2026-").count(),
            MARKDOWN_DAYS + 3,
            "14 days + 3 recent High (a6's unknown severity counts as above High)"
        );
        assert!(
            !r.markdown.contains("| 2026-04-30"),
            "only the last 14 days"
        );
    }

    #[test]
    fn unknown_severities_are_shown_not_dropped() {
        let mut alerts = handcrafted();
        alerts.push(alert(
            "x",
            "Catastrophic",
            "New",
            Some(hours(1)),
            hours(1),
            None,
            None,
            None,
        ));
        let r = render(&input(&alerts));
        for s in ["Critical", "Catastrophic"] {
            assert!(
                r.figures
                    .open_by_severity
                    .iter()
                    .any(|(k, n)| k == s && *n == 1)
            );
            assert!(
                r.html.contains(&format!("{s}</td>")),
                "{s} in the severity table"
            );
            assert!(
                r.markdown.contains(&format!("| {s} | 1 |")),
                "{s} in Markdown"
            );
        }
        // In the chart's legend too, and case variants of known severities are not unknown.
        assert!(r.html.contains("Catastrophic (1)"));
        alerts.push(alert(
            "y",
            "HIGH",
            "New",
            Some(hours(1)),
            hours(1),
            None,
            None,
            None,
        ));
        let f = render(&input(&alerts)).figures;
        // Unknown ones first (above High), alphabetically; then High, whatever its case.
        assert_eq!(f.open_by_severity[0].0, "Catastrophic");
        assert_eq!(f.open_by_severity[1].0, "Critical");
        assert_eq!(f.open_by_severity[2], ("High".to_owned(), 3));
        assert!(!f.open_by_severity.iter().any(|(k, _)| k == "HIGH"));
    }

    #[test]
    fn many_unknown_severities_are_folded_in_the_chart_only() {
        let alerts: Vec<AlertSummary> = (0..20)
            .map(|i| {
                alert(
                    &format!("u{i}"),
                    &format!("Sev{i:02}"),
                    "New",
                    Some(hours(1)),
                    hours(1),
                    None,
                    None,
                    None,
                )
            })
            .collect();
        let f = render(&input(&alerts)).figures;
        assert_eq!(
            f.open_by_severity.len(),
            5 + 20,
            "every unknown severity has a row"
        );
        let row = &f.per_day[TREND_DAYS - 1].1;
        assert_eq!(row.len(), 5 + MAX_EXTRA_SERIES + 1);
        assert_eq!(row[0].0, "Sev00");
        assert_eq!(row[MAX_EXTRA_SERIES], (OTHER_SEVERITIES.to_owned(), 15));
        assert_eq!(row.last().unwrap().0, "UnSpecified");
    }

    const XSS_TITLE: &str = "<script>alert(1)</script>";
    const PIPE_DEVICE: &str = "| injected |";

    fn hostile() -> Vec<AlertSummary> {
        let mut a = alert(
            "id\"'><b>",
            "High",
            "New<i>",
            Some(hours(1)),
            hours(1),
            None,
            Some("\"><img src=x onerror=alert(1)> https://evil.example/x.png"),
            Some(PIPE_DEVICE),
        );
        a.title = XSS_TITLE.to_owned();
        a.tenant = "O'Brien & <Co>".to_owned();
        let mut b = a.clone();
        b.id = "b".into();
        b.title = "# Heading\n| a | b |\n[click](javascript:alert(1)) `code` <https://evil.example> &lt; *x* _y_ ~z~ \\".into();
        b.device = Some("host\r\nname".into());
        b.category = Some("url(https://evil.example/) @import".into());
        let mut c = b.clone();
        c.id = "c".into();
        c.severity = "<svg onload=alert(1)>".into();
        vec![a, b, c]
    }

    /// Every tag in the HTML, as (name, attribute names). Panics on a `<` that starts no tag.
    fn tags(html: &str) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        let mut rest = html;
        while let Some(i) = rest.find('<') {
            rest = &rest[i + 1..];
            let end = rest.find('>').expect("unclosed tag");
            let inner = rest[..end].trim_start_matches('/').trim_end_matches('/');
            rest = &rest[end + 1..];
            if inner.starts_with("!DOCTYPE") {
                continue;
            }
            let mut parts = inner.split_whitespace();
            let name = parts.next().unwrap().to_owned();
            // Attribute values here never contain spaces except inside quotes: collect names only.
            let attrs = inner
                .split('"')
                .step_by(2)
                .flat_map(|chunk| chunk.split_whitespace())
                .filter_map(|t| t.strip_suffix('='))
                .map(str::to_owned)
                .collect();
            out.push((name, attrs));
        }
        out
    }

    /// Tags and attributes the renderer writes; anything else came from alert text.
    fn assert_only_our_markup(html: &str) {
        const TAGS: &[&str] = &[
            "html", "head", "meta", "title", "style", "body", "main", "header", "h1", "h2", "p",
            "span", "b", "div", "section", "table", "thead", "tbody", "tfoot", "tr", "th", "td",
            "svg", "rect", "line", "text", "footer",
        ];
        const ATTRS: &[&str] = &[
            "lang",
            "charset",
            "http-equiv",
            "content",
            "name",
            "class",
            "style",
            "viewBox",
            "role",
            "aria-label",
            "x",
            "y",
            "width",
            "height",
            "fill",
            "x1",
            "x2",
            "y1",
            "y2",
            "text-anchor",
            "transform",
        ];
        // The CSS is the one place with `<`-free but brace-heavy text; skip it.
        let body = &html[html.find("</style>").unwrap()..];
        let head = &html[..html.find("<style>").unwrap()];
        for part in [head, body] {
            for (name, attrs) in tags(part) {
                assert!(TAGS.contains(&name.as_str()), "unexpected tag <{name}>");
                for a in attrs {
                    assert!(
                        ATTRS.contains(&a.as_str()),
                        "unexpected attribute {a} on <{name}>"
                    );
                }
            }
        }
    }

    #[test]
    fn hostile_text_is_inert_in_html() {
        let alerts = hostile();
        let html = render(&input(&alerts)).html;
        assert!(!html.contains(XSS_TITLE));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("| injected |"), "pipes mean nothing in HTML");
        assert!(html.contains("O&#39;Brien &amp; &lt;Co&gt;"));
        assert!(html.contains("id&quot;&#39;&gt;&lt;b&gt;"));
        assert!(!html.contains("<img"));
        assert!(!html.contains("<svg onload"));
        assert!(!html.contains("<i>"));
        assert_only_our_markup(&html);
        // The CSP is there as a second line of defence.
        assert!(html.contains("default-src 'none'"));
    }

    /// The cells of a Markdown table row, split on unescaped pipes.
    fn cells(line: &str) -> usize {
        let mut pipes: usize = 0;
        let mut escaped = false;
        for c in line.chars() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '|' {
                pipes += 1;
            }
        }
        pipes.saturating_sub(1)
    }

    #[test]
    fn hostile_text_is_inert_in_markdown() {
        let alerts = hostile();
        let md = render(&input(&alerts)).markdown;
        assert!(!md.contains(XSS_TITLE));
        assert!(md.contains("\\<script\\>alert(1)\\</script\\>"));
        assert!(md.contains("\\| injected \\|"));
        assert!(!md.contains("[click]"));
        assert!(md.contains("\\[click\\](javascript:alert(1))"));
        assert!(md.contains("\\`code\\`"));
        assert!(md.contains("\\<https://evil.example\\>"), "no autolink");
        assert!(md.contains("\\&lt;"), "an entity stays literal text");
        assert!(md.contains("\\*x\\* \\_y\\_ \\~z\\~ \\\\"));
        assert!(
            md.contains("| \\# Heading \\| a \\| b \\|"),
            "leading # escaped, newline → space"
        );
        assert!(md.contains("host  name"));
        assert!(md.contains("O'Brien & \\<Co\\>"));
        // Every row of every table has as many cells as its header.
        let mut expected = None;
        for line in md.lines() {
            if line.starts_with('|') {
                let n = cells(line);
                let want = *expected.get_or_insert(n);
                assert_eq!(n, want, "cell count changed in: {line}");
            } else {
                expected = None;
            }
            assert!(!line.starts_with('#') || line.starts_with("# ") || line.starts_with("## "));
        }
        // No raw HTML tag at all: every `<` is escaped (our own "< 1 day" label aside).
        for line in md.lines().filter(|l| !l.starts_with("| < 1 day")) {
            assert!(!line.replace("\\<", "").contains('<'), "raw < in: {line}");
        }
    }

    #[test]
    fn html_makes_no_external_requests() {
        let alerts = handcrafted();
        let html = render(&input(&alerts)).html;
        for needle in [
            "http://",
            "https://",
            "src=",
            "href=",
            "@import",
            "url(",
            "<script",
            "<link",
            "<img",
            "<iframe",
            "<object",
            "<embed",
            "xlink",
            "@font-face",
        ] {
            assert!(!html.contains(needle), "found {needle}");
        }
        assert_only_our_markup(&html);
        // With hostile data, URLs appear only as escaped text: still no attribute can hold one.
        let alerts = hostile();
        let html = render(&input(&alerts)).html;
        assert!(html.contains("https://evil.example"));
        assert_only_our_markup(&html);
        assert!(
            html.contains("url(https://evil.example/) @import"),
            "shown as text"
        );
        let css = &html[html.find("<style>").unwrap()..html.find("</style>").unwrap()];
        assert!(!css.contains("url(") && !css.contains("@import") && !css.contains("http"));
    }

    #[test]
    fn html_is_a_complete_document() {
        let alerts = handcrafted();
        let html = render(&input(&alerts)).html;
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("<title>Defender alerts report — 2026-05-14 06:00 UTC</title>"));
        assert!(html.trim_end().ends_with("</html>"));
        for h in [
            "Open alerts by severity",
            "Open alerts by age",
            "Alerts created per day",
            "Top categories",
            "Top devices",
            "Most recent open High alerts",
        ] {
            assert!(html.contains(&format!("<h2>{h}</h2>")), "{h}");
        }
        // 30 days in the chart, each with a tooltip; legend and axis titles present.
        assert_eq!(html.matches("<rect class=\"hover\"").count(), TREND_DAYS);
        assert!(html.contains("High (2)"));
        assert!(html.contains("Creation date (UTC)"));
        assert!(html.contains("Alerts per day"));
        // Every opened element of these kinds is closed.
        for t in [
            "section", "table", "svg", "div", "tr", "td", "span", "title", "p",
        ] {
            let open =
                html.matches(&format!("<{t}>")).count() + html.matches(&format!("<{t} ")).count();
            let close = html.matches(&format!("</{t}>")).count();
            assert_eq!(open, close, "<{t}>");
        }
    }

    #[test]
    fn empty_input_renders() {
        let r = render(&input(&[]));
        let f = &r.figures;
        assert_eq!(
            (f.new_in_window, f.updated_in_window, f.resolved_in_window),
            (0, 0, 0)
        );
        assert_eq!(f.open_by_severity.len(), 5);
        assert!(f.open_by_severity.iter().all(|(_, n)| *n == 0));
        assert_eq!(f.open_by_age.len(), 4);
        assert!(f.top_categories.is_empty() && f.top_devices.is_empty());
        assert_eq!(f.mean_time_to_resolve, None);
        assert_eq!(f.per_day.len(), TREND_DAYS);
        assert!(
            f.per_day
                .iter()
                .all(|(_, row)| row.len() == 5 && row.iter().all(|(_, n)| *n == 0))
        );
        assert!(r.html.contains("No open High severity alerts."));
        assert!(r.html.contains("Tenants <b>none</b>"));
        assert!(
            r.markdown
                .contains("| Mean time to resolve (last 30 days, 0 alerts) | — |")
        );
        assert_only_our_markup(&r.html);
    }

    #[test]
    fn extreme_input_does_not_panic() {
        let max = DateTime::<Utc>::MAX_UTC;
        let min = DateTime::<Utc>::MIN_UTC;
        let long = "x".repeat(100_000);
        let alerts = vec![
            alert(
                "far-future",
                "High",
                "New",
                Some(max),
                max,
                Some(max),
                Some(&long),
                Some(&long),
            ),
            alert(
                "far-past",
                "Low",
                "Resolved",
                Some(min),
                min,
                Some(max),
                None,
                None,
            ),
            alert(
                "backwards",
                "Medium",
                "Resolved",
                Some(max),
                min,
                Some(min),
                None,
                None,
            ),
            alert(
                "\u{0}\u{202E}ctrl\u{7}",
                "\u{1b}[31m",
                "",
                None,
                now(),
                None,
                None,
                None,
            ),
        ];
        for generated_at in [now(), max, min] {
            for window in [Duration::ZERO, Duration::from_secs(1), Duration::MAX] {
                let r = render(&ReportInput {
                    generated_at,
                    window,
                    alerts: &alerts,
                });
                assert_eq!(r.figures.per_day.len(), TREND_DAYS);
                assert!(r.html.ends_with("</html>\n"));
            }
        }
        let r = render(&input(&alerts));
        // Long values are cut for display, control and bidi characters neutralised.
        assert!(r.html.len() < 100_000);
        assert!(
            r.html
                .contains(&format!("{}…", "x".repeat(MAX_SHOWN_CHARS)))
        );
        assert!(
            !r.html.contains('\u{0}') && !r.html.contains('\u{202E}') && !r.html.contains('\u{1b}')
        );
        assert!(!r.markdown.contains('\u{0}') && !r.markdown.contains('\u{202E}'));
        // A huge time to resolve saturates rather than overflowing.
        assert!(r.figures.mean_time_to_resolve.is_some());
    }

    #[test]
    fn window_boundaries() {
        let start = hours(24);
        let alerts = vec![
            alert(
                "at-start",
                "Low",
                "New",
                Some(start),
                start,
                Some(start),
                None,
                None,
            ),
            alert(
                "just-before",
                "Low",
                "New",
                Some(start - TimeDelta::seconds(1)),
                start,
                None,
                None,
                None,
            ),
            alert(
                "stale",
                "Low",
                "New",
                Some(start - TimeDelta::seconds(1)),
                start - TimeDelta::seconds(1),
                None,
                None,
                None,
            ),
        ];
        let f = render(&input(&alerts)).figures;
        assert_eq!(f.new_in_window, 1, "the window's start is inside it");
        assert_eq!(f.updated_in_window, 1);
        assert_eq!(f.resolved_in_window, 1);
        // Exactly one day old is "1–7 days"; exactly 30 days is "> 30 days".
        let alerts = vec![
            alert("d1", "Low", "New", Some(hours(24)), now(), None, None, None),
            alert(
                "d30",
                "Low",
                "New",
                Some(hours(30 * 24)),
                now(),
                None,
                None,
                None,
            ),
        ];
        let f = render(&input(&alerts)).figures;
        assert_eq!(
            f.open_by_age,
            pairs(&[
                ("< 1 day", 0),
                ("1–7 days", 1),
                ("7–30 days", 0),
                ("> 30 days", 1)
            ])
        );
    }

    #[test]
    fn top_lists_keep_ten_with_ties_by_name() {
        let alerts: Vec<AlertSummary> = (0..15)
            .flat_map(|i: usize| {
                // Category Cnn appears 1 + i / 2 times: pairs of ties.
                (0..=i / 2).map(move |k| {
                    let cat = format!("C{i:02}");
                    let dev = format!("d{i:02}");
                    alert(
                        &format!("{i}-{k}"),
                        "Low",
                        "Resolved",
                        Some(hours(1)),
                        hours(1),
                        None,
                        Some(&cat),
                        Some(&dev),
                    )
                })
            })
            .collect();
        let f = render(&input(&alerts)).figures;
        let names: Vec<&str> = f.top_categories.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "C14", "C12", "C13", "C10", "C11", "C08", "C09", "C06", "C07", "C04"
            ]
        );
        assert_eq!(f.top_categories[0].1, 8);
        assert_eq!(f.top_devices.len(), TOP_N);
        assert_eq!(f.top_devices[9], ("d04".to_owned(), 3));
    }

    #[test]
    fn recent_high_table_keeps_the_twenty_newest() {
        let alerts: Vec<AlertSummary> = (0..30)
            .map(|i| {
                alert(
                    &format!("h{i:02}"),
                    "High",
                    "New",
                    Some(hours(i)),
                    hours(i),
                    None,
                    None,
                    None,
                )
            })
            .collect();
        let r = render(&input(&alerts));
        assert!(r.html.contains("The 20 newest of 30 open High alerts"));
        assert!(r.html.contains("Alert h00<") && r.html.contains("Alert h19<"));
        assert!(!r.html.contains("Alert h20<"));
        assert!(r.html.find("Alert h00<").unwrap() < r.html.find("Alert h19<").unwrap());
        assert_eq!(r.markdown.matches("| Alert h").count(), RECENT_HIGH);
    }

    #[test]
    fn escaping_functions() {
        assert_eq!(
            Html("a&b<c>d\"e'f").to_string(),
            "a&amp;b&lt;c&gt;d&quot;e&#39;f"
        );
        assert_eq!(
            Html("tab\tok\u{202E}x\u{0}").to_string(),
            "tab\tok\u{FFFD}x\u{FFFD}"
        );
        assert_eq!(Md("a|b").to_string(), "a\\|b");
        assert_eq!(Md("# h").to_string(), "\\# h");
        assert_eq!(Md("a # b").to_string(), "a # b", "only a leading # matters");
        assert_eq!(Md("-x").to_string(), "\\-x");
        assert_eq!(
            Md("host_name_1").to_string(),
            "host_name_1",
            "intraword _ is inert"
        );
        assert_eq!(Md("_x_ a_").to_string(), "\\_x\\_ a\\_");
        assert_eq!(Md("a\nb\r\nc").to_string(), "a b  c");
        assert_eq!(
            Md("AT&T &amp; &#60; & x").to_string(),
            "AT\\&T \\&amp; \\&#60; & x"
        );
        assert_eq!(Md("  ").to_string(), "—");
        assert_eq!(
            Md("[a](b) `c` <d> *e* ~f~ \\").to_string(),
            "\\[a\\](b) \\`c\\` \\<d\\> \\*e\\* \\~f\\~ \\\\"
        );
    }

    #[test]
    fn human_formats() {
        assert_eq!(num(0), "0");
        assert_eq!(num(999), "999");
        assert_eq!(num(1000), "1,000");
        assert_eq!(num(1_234_567), "1,234,567");
        assert_eq!(human_window(Duration::from_secs(86_400)), "24 hours");
        assert_eq!(human_window(Duration::from_secs(3_600)), "1 hour");
        assert_eq!(human_window(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(human_window(Duration::from_secs(90 * 60)), "90 minutes");
        assert_eq!(human_window(Duration::from_secs(61)), "61 seconds");
        assert_eq!(
            human_duration(Duration::from_secs(3 * 86_400 + 4 * 3600 + 59)),
            "3 d 4 h"
        );
        assert_eq!(
            human_duration(Duration::from_secs(5 * 3600 + 12 * 60)),
            "5 h 12 min"
        );
        assert_eq!(human_duration(Duration::from_secs(42 * 60)), "42 min");
        assert_eq!(human_duration(Duration::from_secs(59)), "< 1 min");
        assert_eq!(nice_axis(0), (4, 1));
        assert_eq!(nice_axis(3), (3, 1));
        assert_eq!(nice_axis(393), (400, 100));
        assert_eq!(nice_axis(1234), (1500, 500));
        assert!(nice_axis(usize::MAX).1 > 0);
    }
}
