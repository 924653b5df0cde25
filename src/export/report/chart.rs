//! The per-day charts (alerts created per day, stacked by severity; the open backlog) as plain
//! HTML: one table cell per day holding blocks whose heights and colours are inline styles.
//!
//! Not SVG, and no script: the report is also a mail body, and Outlook on Windows renders mail
//! with Word, which shows no inline SVG; table cells with inline sizes are what every mail
//! client and every browser draws alike. This module does the arithmetic (whole pixels, so no
//! client rounds a bar away) and the template only writes the cells out.

use chrono::{Datelike, NaiveDate};

use super::format::{num, series_colors};

/// The created-per-day chart's plot height, in pixels.
pub(super) const CREATED_HEIGHT: u32 = 180;
/// The backlog chart's plot height, in pixels.
pub(super) const BACKLOG_HEIGHT: u32 = 110;
/// The backlog's colour.
const BACKLOG_COLOR: &str = "#57606a";

/// A chart, every number formatted as the template writes it.
pub(super) struct Chart<'a> {
    /// Days shown.
    pub(crate) days: usize,
    /// What the chart counts, in total, said with its unit (`1,234 alerts`, `1 open alert`):
    /// alerts created, or the backlog today.
    pub(crate) total: String,
    /// The legend: series name, colour, total.
    pub(crate) legend: Vec<(&'a str, &'static str, String)>,
    /// The plot's height in pixels.
    pub(crate) height: u32,
    /// The y axis, top down: each step's label and height in pixels (they add up to
    /// `height`).
    pub(crate) ticks: Vec<(String, u32)>,
    /// The days, oldest first.
    pub(crate) columns: Vec<DayColumn>,
}

/// One day's cell.
pub(super) struct DayColumn {
    /// The tooltip: `Thu 14 May 2026: 4 alerts (High 2, Medium 2)`.
    pub(crate) title: String,
    /// Whether the day is a Saturday or Sunday (shaded).
    pub(crate) weekend: bool,
    /// The stacked blocks, top down: height in pixels and colour.
    pub(crate) blocks: Vec<(u32, &'static str)>,
    /// The date under the column (every third day back from today), or empty.
    pub(crate) label: String,
}

/// One day to lay out: its date and its series (name, count, colour), most severe first.
type Day<'a> = (NaiveDate, Vec<(&'a str, usize, &'static str)>);

/// The created-per-day chart of `per_day` (each day's counts by series, the same series every
/// day, most severe first).
pub(super) fn created(per_day: &[(NaiveDate, Vec<(String, usize)>)]) -> Chart<'_> {
    let names: Vec<&str> = per_day
        .first()
        .map(|(_, row)| row.iter().map(|(s, _)| s.as_str()).collect())
        .unwrap_or_default();
    let colors = series_colors(names.iter().copied());
    let legend = names
        .iter()
        .zip(&colors)
        .map(|(name, color)| {
            let total: usize = per_day
                .iter()
                .filter_map(|(_, row)| row.iter().find(|(s, _)| s == name).map(|(_, n)| *n))
                .sum();
            (*name, *color, num(total))
        })
        .collect();
    let days: Vec<Day<'_>> = per_day
        .iter()
        .map(|(date, row)| {
            let series = row
                .iter()
                .zip(&colors)
                .map(|((name, n), color)| (name.as_str(), *n, *color))
                .collect();
            (*date, series)
        })
        .collect();
    let grand: usize = per_day
        .iter()
        .flat_map(|(_, row)| row.iter().map(|(_, n)| n))
        .sum();
    layout(&days, CREATED_HEIGHT, legend, grand, ("alert", "alerts"), 3)
}

/// The backlog chart: open alerts at the end of each day.
pub(super) fn backlog(open_per_day: &[(NaiveDate, usize)]) -> Chart<'static> {
    let days: Vec<Day<'static>> = open_per_day
        .iter()
        .map(|(date, n)| (*date, vec![("Open", *n, BACKLOG_COLOR)]))
        .collect();
    let today = open_per_day.last().map(|(_, n)| *n).unwrap_or(0);
    layout(
        &days,
        BACKLOG_HEIGHT,
        Vec::new(),
        today,
        ("open alert", "open alerts"),
        // Half the page wide: a date every week, or the labels run into each other.
        7,
    )
}

/// Lays out `days` (each day's series: name, count, colour; most severe first, drawn at the
/// bottom) in a plot `height` pixels high, a date under every `label_every`th day.
fn layout<'a>(
    days: &[Day<'a>],
    height: u32,
    legend: Vec<(&'a str, &'static str, String)>,
    total: usize,
    unit: (&str, &str),
    label_every: usize,
) -> Chart<'a> {
    let totals: Vec<usize> = days
        .iter()
        .map(|(_, row)| row.iter().map(|(_, n, _)| n).sum())
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0);
    let (axis_max, step) = nice_axis(max);
    let px = |n: usize| -> u32 {
        // Whole pixels, at least one for any count, so a day with one alert still shows.
        let h = (n as f64 / axis_max.max(1) as f64 * f64::from(height)).round() as u32;
        if n > 0 { h.max(1) } else { 0 }
    };

    let steps = (axis_max / step.max(1)).max(1);
    let step_px = height / u32::try_from(steps).unwrap_or(u32::MAX).max(1);
    let mut ticks: Vec<(String, u32)> = (0..steps)
        .map(|i| (num(axis_max - i * step), step_px))
        .collect();
    // The last step takes what integer division left over, so the steps add up to `height`.
    if let Some(last) = ticks.last_mut() {
        last.1 = height - step_px * (u32::try_from(steps).unwrap_or(1) - 1);
    }

    let columns = days
        .iter()
        .zip(&totals)
        .enumerate()
        .map(|(i, ((date, row), total))| {
            let mut blocks: Vec<(u32, &'static str)> = row
                .iter()
                .filter(|(_, n, _)| *n > 0)
                .map(|(_, n, color)| (px(*n), *color))
                .collect();
            // The bar never outgrows the plot, whatever rounding up to a pixel added.
            let mut over = blocks
                .iter()
                .map(|b| b.0)
                .sum::<u32>()
                .saturating_sub(height);
            for b in blocks.iter_mut().rev() {
                let cut = over.min(b.0.saturating_sub(1));
                b.0 -= cut;
                over -= cut;
            }
            blocks.reverse();
            let breakdown: Vec<(&str, String)> = row
                .iter()
                .filter(|(_, n, _)| *n > 0)
                .map(|(name, n, _)| (*name, num(*n)))
                .collect();
            let detail = if row.len() > 1 && !breakdown.is_empty() {
                let parts: Vec<String> =
                    breakdown.iter().map(|(s, n)| format!("{s} {n}")).collect();
                format!(" ({})", parts.join(", "))
            } else {
                String::new()
            };
            DayColumn {
                title: format!(
                    "{}: {}{detail}",
                    date.format("%a %d %b %Y"),
                    counted(*total, unit)
                ),
                weekend: date.weekday().number_from_monday() >= 6,
                blocks,
                // Counted back from today, so today is always labelled.
                label: if (days.len() - 1 - i).is_multiple_of(label_every.max(1)) {
                    date.format("%b %-d").to_string()
                } else {
                    String::new()
                },
            }
        })
        .collect();

    Chart {
        days: days.len(),
        total: counted(total, unit),
        legend,
        height,
        ticks,
        columns,
    }
}

/// `n` with its unit agreeing: `1 alert`, `1,234 alerts`.
fn counted(n: usize, (one, many): (&str, &str)) -> String {
    format!("{} {}", num(n), if n == 1 { one } else { many })
}

/// Up to ~6 round tick steps covering `0..=max`: returns (axis maximum, step).
pub(super) fn nice_axis(max: usize) -> (usize, usize) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 5, d).unwrap()
    }

    /// Bars are whole pixels within the plot, one at least for any count, most severe at the
    /// bottom (last, since blocks are written top down), and the axis adds up to the height.
    #[test]
    fn bars_are_whole_pixels_inside_the_plot() {
        let per_day = vec![
            (day(1), vec![("High".to_owned(), 1), ("Low".to_owned(), 0)]),
            (
                day(2),
                vec![("High".to_owned(), 3), ("Low".to_owned(), 997)],
            ),
        ];
        let c = created(&per_day);
        assert_eq!(c.ticks.iter().map(|t| t.1).sum::<u32>(), CREATED_HEIGHT);
        assert_eq!(c.ticks[0].0, "1,000");
        assert_eq!(c.columns[0].blocks.len(), 1);
        assert!(c.columns[0].blocks[0].0 >= 1);
        let bar: u32 = c.columns[1].blocks.iter().map(|b| b.0).sum();
        assert!(bar <= CREATED_HEIGHT, "{bar}");
        assert_eq!(
            c.columns[1].blocks.last().unwrap().1,
            "#d1242f",
            "High at the bottom"
        );
        assert_eq!(
            c.columns[1].title,
            "Sat 02 May 2026: 1,000 alerts (High 3, Low 997)"
        );
        assert_eq!(c.total, "1,001 alerts");
        assert!(c.columns[1].weekend && !c.columns[0].weekend);
        assert_eq!(
            (c.columns[1].label.as_str(), c.columns[0].label.as_str()),
            ("May 2", "")
        );
    }

    #[test]
    fn the_backlog_chart_says_open_alerts() {
        let c = backlog(&[(day(1), 0), (day(2), 1)]);
        assert_eq!(c.columns[1].title, "Sat 02 May 2026: 1 open alert");
        assert!(c.columns[0].blocks.is_empty());
        assert_eq!(c.total, "1 open alert");
    }
}
