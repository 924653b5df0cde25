//! One view model for both renderings: every number formatted, every list in its order, every
//! choice (which rows, which colour, "—" for no value) made here once, so that the HTML and the
//! Markdown templates only lay it out and cannot disagree on a figure.
//!
//! Alert-supplied strings stay raw here (borrowed from the [`Analysis`]): the templates' escapers
//! make them inert, and the `shown`/`md_cell` filters cut them for display.

use super::chart::{self, Chart};
use super::figures::{Analysis, MARKDOWN_DAYS, TREND_DAYS};
use super::format::{change, human_duration, human_window, num, pct, series_colors, when};
use crate::alert::vocab::Severity;

/// The report, ready to lay out.
pub(super) struct View<'a> {
    /// `generated_at`, as printed.
    pub(crate) generated: String,
    /// The window's length, in words (`24 hours`).
    pub(crate) window: String,
    /// The window's start, as printed.
    pub(crate) window_start: String,
    /// The zone dates and days are in (`UTC`, `Europe/Berlin`).
    pub(crate) zone: String,
    /// The tenants seen, by name (Markdown lists them all).
    pub(crate) tenants: Vec<&'a str>,
    /// The first [`MAX_TENANTS_SHOWN`] of them (HTML header), and how many more there are.
    pub(crate) tenants_shown: Vec<&'a str>,
    /// See `tenants_shown`.
    pub(crate) more_tenants: usize,
    /// Alerts on record.
    pub(crate) alerts: String,
    /// New in the window.
    pub(crate) new_in_window: String,
    /// Its change from the previous window (`+3 vs the previous 24 hours`).
    pub(crate) new_change: String,
    /// Older alerts updated in the window.
    pub(crate) updated_in_window: String,
    /// Resolved in the window.
    pub(crate) resolved_in_window: String,
    /// Its change from the previous window.
    pub(crate) resolved_change: String,
    /// Open now.
    pub(crate) open_total: String,
    /// Its change since the window's start.
    pub(crate) open_change: String,
    /// Open High severity and above (a severity newer than the documented ones, `Critical`).
    pub(crate) open_high: String,
    /// That number split by severity, most severe first: `Critical 2 · High 10`.
    pub(crate) open_high_split: String,
    /// Whether there are any (the HTML marks the figure).
    pub(crate) any_open_high: bool,
    /// Mean time to resolve, or `—`.
    pub(crate) mttr: String,
    /// How many alerts that mean is over, with the noun (`1 alert`).
    pub(crate) mttr_basis: String,
    /// Open alerts by severity, then by age.
    pub(crate) shares: [ShareTable<'a>; 2],
    /// Top categories, then top devices.
    pub(crate) tops: [TopList<'a>; 2],
    /// Days of the trend (and the chart's basis).
    pub(crate) trend_days: usize,
    /// The per-day chart (HTML).
    pub(crate) chart: Chart<'a>,
    /// The open backlog at the end of each day (HTML).
    pub(crate) backlog: Chart<'static>,
    /// Alerts resolved in the last 30 days by classification: label, count, share (one
    /// decimal, without `%`), colour.
    pub(crate) classification: Vec<(&'static str, String, String, &'static str)>,
    /// How many alerts that is, with the noun (`1 alert`, `12 alerts`).
    pub(crate) classified: String,
    /// The note over the recent High table: `The 20 newest of 31 open alerts of High severity
    /// and above`.
    pub(crate) recent_note: String,
    /// Per tenant (only when several): name, alerts, open, open High and above, new, resolved.
    pub(crate) by_tenant: Vec<TenantRow<'a>>,
    /// The per-day table (Markdown): the series, then the last [`MARKDOWN_DAYS`] days newest
    /// first.
    pub(crate) day_series: Vec<&'a str>,
    /// The rows of that table.
    pub(crate) day_rows: Vec<DayRow>,
    /// The most recent open High alerts.
    pub(crate) recent_high: Vec<HighRow<'a>>,
    /// Whether the alerts come from more than one tenant (adds a Tenant column).
    pub(crate) multi_tenant: bool,
}

/// Open alerts split by one property, with shares.
pub(super) struct ShareTable<'a> {
    /// The section's title.
    pub(crate) title: &'static str,
    /// The HTML note under it.
    pub(crate) note: &'static str,
    /// The first column's header.
    pub(crate) what: &'static str,
    /// Whether the labels come from alerts (Markdown escapes them) or are ours.
    pub(crate) from_alerts: bool,
    /// Whether rows get a colour swatch (severities).
    pub(crate) swatches: bool,
    /// The rows.
    pub(crate) rows: Vec<ShareRow<'a>>,
    /// The total.
    pub(crate) total: String,
    /// `100%`, or `—` for an empty total.
    pub(crate) total_share: &'static str,
}

/// One row of a [`ShareTable`].
pub(super) struct ShareRow<'a> {
    /// The label.
    pub(crate) label: &'a str,
    /// The count.
    pub(crate) count: String,
    /// The share, one decimal, without `%`.
    pub(crate) share: String,
    /// The bar's colour.
    pub(crate) color: &'static str,
    /// Whether the count is zero (greyed out).
    pub(crate) zero: bool,
}

/// A top-10 list.
pub(super) struct TopList<'a> {
    /// The section's title.
    pub(crate) title: &'static str,
    /// The first column's header.
    pub(crate) what: &'static str,
    /// The same, lower case, for "No alerts with a … in this period."
    pub(crate) what_lower: String,
    /// The rows: rank, label, count, bar width (one decimal).
    pub(crate) rows: Vec<(usize, &'a str, String, String)>,
}

/// One day of the Markdown per-day table.
pub(super) struct DayRow {
    /// `2026-05-14 Thu`.
    pub(crate) date: String,
    /// The count per series.
    pub(crate) counts: Vec<String>,
    /// The day's total.
    pub(crate) total: String,
    /// Open alerts at the end of the day.
    pub(crate) open: String,
}

/// One tenant's row in a report over several.
pub(super) struct TenantRow<'a> {
    /// The tenant.
    pub(crate) tenant: &'a str,
    /// Alerts on record.
    pub(crate) alerts: String,
    /// Open now.
    pub(crate) open: String,
    /// Open High and above.
    pub(crate) open_high: String,
    /// Whether there are any (marked).
    pub(crate) any_open_high: bool,
    /// New in the window.
    pub(crate) new_in_window: String,
    /// Resolved in the window.
    pub(crate) resolved_in_window: String,
}

/// One row of the recent High alerts table.
pub(super) struct HighRow<'a> {
    /// Creation time (`—` when missing).
    pub(crate) created: String,
    /// Title.
    pub(crate) title: &'a str,
    /// Alert ID.
    pub(crate) id: &'a str,
    /// Device (`—` when missing).
    pub(crate) device: &'a str,
    /// Tenant.
    pub(crate) tenant: &'a str,
    /// Status.
    pub(crate) status: &'a str,
    /// Severity as sent.
    pub(crate) severity: &'a str,
    /// The alert in the Defender portal (an https link to a portal host), when stored.
    pub(crate) link: Option<&'a str>,
}

/// Tenants named in the HTML header; a long list ends with "and N more".
const MAX_TENANTS_SHOWN: usize = 12;

/// The bar colour of rows without a swatch.
const NEUTRAL: &str = "#8c959f";

impl<'a> View<'a> {
    /// The view of the analysis `a`.
    pub(super) fn new(a: &'a Analysis) -> Self {
        let f = &a.figures;
        let share =
            |title, note, what, rows: &'a [(String, usize)], colors: Option<Vec<&'static str>>| {
                let from_alerts = colors.is_some();
                ShareTable {
                    title,
                    note,
                    what,
                    from_alerts,
                    swatches: from_alerts,
                    rows: rows
                        .iter()
                        .enumerate()
                        .map(|(i, (label, n))| ShareRow {
                            label,
                            count: num(*n),
                            share: format!("{:.1}", pct(*n, a.open_total)),
                            color: colors
                                .as_ref()
                                .and_then(|c| c.get(i))
                                .copied()
                                .unwrap_or(NEUTRAL),
                            zero: *n == 0,
                        })
                        .collect(),
                    total: num(a.open_total),
                    total_share: if a.open_total > 0 { "100%" } else { "—" },
                }
            };
        let top = |title, what: &'static str, rows: &'a [(String, usize)]| {
            let max = rows.first().map(|r| r.1).unwrap_or(0);
            TopList {
                title,
                what,
                what_lower: what.to_lowercase(),
                rows: rows
                    .iter()
                    .enumerate()
                    .map(|(i, (label, n))| {
                        (
                            i + 1,
                            label.as_str(),
                            num(*n),
                            format!("{:.1}", pct(*n, max)),
                        )
                    })
                    .collect(),
            }
        };
        let days = &f.per_day[f.per_day.len().saturating_sub(MARKDOWN_DAYS)..];
        let open_days = &f.open_per_day[f.open_per_day.len().saturating_sub(MARKDOWN_DAYS)..];
        let tz = a.tz;
        let window = human_window(a.window);
        let previous = format!("the previous {window}");
        // Most severe first, down to High: what "High and above" adds up.
        let high_split: Vec<String> = f
            .open_by_severity
            .iter()
            .filter(|(s, n)| {
                let sev = Severity::parse(s);
                sev.is_high_or_above() && (*n > 0 || sev == Severity::High)
            })
            .map(|(s, n)| format!("{} {}", super::escape::shown(s), num(*n)))
            .collect();
        let c = &f.classification;
        let classified = c.true_positive + c.false_positive + c.benign + c.unknown;
        View {
            generated: when(a.generated_at, tz),
            window: window.clone(),
            window_start: when(a.window_start, tz),
            zone: tz.name().to_owned(),
            tenants: a.tenants.iter().map(String::as_str).collect(),
            tenants_shown: a
                .tenants
                .iter()
                .take(MAX_TENANTS_SHOWN)
                .map(String::as_str)
                .collect(),
            more_tenants: a.tenants.len().saturating_sub(MAX_TENANTS_SHOWN),
            alerts: num(a.alerts),
            new_in_window: num(f.new_in_window),
            new_change: change(f.new_in_window, f.new_in_previous_window, &previous),
            updated_in_window: num(f.updated_in_window),
            resolved_in_window: num(f.resolved_in_window),
            resolved_change: change(
                f.resolved_in_window,
                f.resolved_in_previous_window,
                &previous,
            ),
            open_total: num(a.open_total),
            open_change: change(a.open_total, f.open_at_window_start, "the window's start"),
            open_high: num(a.open_high),
            open_high_split: high_split.join(" · "),
            any_open_high: a.open_high > 0,
            mttr: f
                .mean_time_to_resolve
                .map(human_duration)
                .unwrap_or_else(|| "—".to_owned()),
            mttr_basis: if a.mttr_basis == 1 {
                "1 alert".to_owned()
            } else {
                format!("{} alerts", num(a.mttr_basis))
            },
            shares: [
                share(
                    "Open alerts by severity",
                    "Status is not Resolved.",
                    "Severity",
                    &f.open_by_severity,
                    Some(series_colors(
                        f.open_by_severity.iter().map(|(s, _)| s.as_str()),
                    )),
                ),
                share(
                    "Open alerts by age",
                    "Time since the alert was created.",
                    "Age",
                    &f.open_by_age,
                    None,
                ),
            ],
            tops: [
                top("Top categories", "Category", &f.top_categories),
                top("Top devices", "Device", &f.top_devices),
            ],
            trend_days: TREND_DAYS,
            chart: chart::created(&f.per_day),
            backlog: chart::backlog(&f.open_per_day),
            classification: [
                ("True positive", c.true_positive, "#d1242f"),
                ("False positive", c.false_positive, "#6c9bd2"),
                ("Benign / informational", c.benign, "#e3b341"),
                ("Not classified", c.unknown, NEUTRAL),
            ]
            .into_iter()
            .map(|(label, n, color)| (label, num(n), format!("{:.1}", pct(n, classified)), color))
            .collect(),
            classified: if classified == 1 {
                "1 alert".to_owned()
            } else {
                format!("{} alerts", num(classified))
            },
            recent_note: format!(
                "The {} newest of {} {} of High severity and above",
                num(a.recent_high.len()),
                num(a.open_high),
                if a.open_high == 1 {
                    "open alert"
                } else {
                    "open alerts"
                }
            ),
            by_tenant: if a.tenants.len() > 1 {
                f.by_tenant
                    .iter()
                    .map(|t| TenantRow {
                        tenant: &t.tenant,
                        alerts: num(t.alerts),
                        open: num(t.open),
                        open_high: num(t.open_high),
                        any_open_high: t.open_high > 0,
                        new_in_window: num(t.new_in_window),
                        resolved_in_window: num(t.resolved_in_window),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            day_series: days
                .first()
                .map(|(_, row)| row.iter().map(|(s, _)| s.as_str()).collect())
                .unwrap_or_default(),
            day_rows: days
                .iter()
                .zip(open_days)
                .rev()
                .map(|((date, row), (_, open))| DayRow {
                    date: date.format("%Y-%m-%d %a").to_string(),
                    counts: row.iter().map(|(_, n)| num(*n)).collect(),
                    total: num(row.iter().map(|(_, n)| n).sum()),
                    open: num(*open),
                })
                .collect(),
            recent_high: a
                .recent_high
                .iter()
                .map(|alert| HighRow {
                    created: alert
                        .created
                        .map(|c| c.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
                        .unwrap_or_else(|| "—".to_owned()),
                    title: &alert.title,
                    id: &alert.id,
                    device: alert.device.as_deref().unwrap_or("—"),
                    tenant: &alert.tenant,
                    status: &alert.status,
                    severity: &alert.severity,
                    link: alert.link.as_deref(),
                })
                .collect(),
            multi_tenant: a.tenants.len() > 1,
        }
    }
}
