//! The "alerts created per day" chart: a stacked bar chart as inline SVG (the page loads
//! nothing, so no chart library). This module does the geometry and formats every coordinate;
//! the template only writes the elements out.

use chrono::Datelike;

use super::figures::Figures;
use super::format::{num, series_colors};

const W: f64 = 1040.0;
const H: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 52.0;

/// The chart, every number formatted as the SVG wants it.
pub(super) struct Chart<'a> {
    /// Days shown.
    pub days: usize,
    /// Alerts in them.
    pub total: String,
    /// The legend: series name, colour, total.
    pub legend: Vec<(&'a str, &'static str, String)>,
    /// `viewBox` width and height.
    pub width: String,
    /// See `width`.
    pub height: String,
    /// The plot's left edge, right edge, top, height, bottom (the base line) and one day's width.
    pub left: String,
    /// See `left`.
    pub right: String,
    /// See `left`.
    pub top: String,
    /// See `left`.
    pub plot_height: String,
    /// See `left`.
    pub base: String,
    /// See `left`.
    pub slot: String,
    /// The x of each weekend day's shading.
    pub weekends: Vec<String>,
    /// The y axis: a grid line's y (none for 0), the label's x and y, the label.
    pub ticks: Vec<Tick>,
    /// The days, oldest first.
    pub bars: Vec<DayBars<'a>>,
    /// The x-axis title's x and y, the y-axis title's translation.
    pub x_title: (String, String),
    /// See `x_title`.
    pub y_title: String,
}

/// One step of the y axis.
pub(super) struct Tick {
    /// The grid line's y, except at 0.
    pub grid: Option<String>,
    /// The label's x.
    pub x: String,
    /// The label's y.
    pub y: String,
    /// The label.
    pub label: String,
}

/// One day's column.
pub(super) struct DayBars<'a> {
    /// The stacked segments: x, y, width, height, colour.
    pub segments: Vec<(String, String, String, String, &'static str)>,
    /// The hover target's x.
    pub x: String,
    /// The tooltip's first line: `Thu 14 May 2026: 4 alerts`.
    pub title: String,
    /// The tooltip's other lines: series and count, for the series with alerts.
    pub breakdown: Vec<(&'a str, String)>,
    /// The date label under the bar (every third day back from today): x, y, text.
    pub label: Option<(String, String, String)>,
}

/// Lays out the chart of `f.per_day`.
pub(super) fn chart(f: &Figures) -> Chart<'_> {
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

    let legend = names
        .iter()
        .zip(&colors)
        .map(|(name, color)| {
            let total: usize = f
                .per_day
                .iter()
                .filter_map(|(_, row)| row.iter().find(|(s, _)| s == name).map(|(_, n)| *n))
                .sum();
            (*name, *color, num(total))
        })
        .collect();

    let slot = plot_w / f.per_day.len().max(1) as f64;
    let bar_w = (slot * 0.72).max(1.0);

    let weekends = f
        .per_day
        .iter()
        .enumerate()
        .filter(|(_, (date, _))| date.weekday().number_from_monday() >= 6)
        .map(|(i, _)| format!("{:.1}", LEFT + i as f64 * slot))
        .collect();

    let mut ticks = Vec::new();
    let mut tick = 0;
    while tick <= axis_max {
        let y = base_y - tick as f64 / axis_max as f64 * plot_h;
        ticks.push(Tick {
            grid: (tick > 0).then(|| format!("{y:.1}")),
            x: format!("{:.1}", LEFT - 8.0),
            y: format!("{:.1}", y + 4.0),
            label: num(tick),
        });
        match tick.checked_add(step) {
            Some(t) => tick = t,
            None => break,
        }
    }

    let mut bars = Vec::with_capacity(f.per_day.len());
    for (i, ((date, row), total)) in f.per_day.iter().zip(&totals).enumerate() {
        let x = LEFT + i as f64 * slot + (slot - bar_w) / 2.0;
        let mut y = base_y;
        let mut segments = Vec::new();
        for ((_, n), color) in row.iter().zip(&colors) {
            if *n == 0 {
                continue;
            }
            let h = *n as f64 / axis_max as f64 * plot_h;
            y -= h;
            segments.push((
                format!("{x:.1}"),
                format!("{y:.2}"),
                format!("{bar_w:.1}"),
                format!("{h:.2}"),
                *color,
            ));
        }
        // Date labels: every 3rd day counted back from today, so today is always labelled.
        let label = (f.per_day.len() - 1 - i).is_multiple_of(3).then(|| {
            (
                format!("{:.1}", x + bar_w / 2.0),
                format!("{:.1}", base_y + 16.0),
                date.format("%b %-d").to_string(),
            )
        });
        bars.push(DayBars {
            segments,
            x: format!("{:.1}", LEFT + i as f64 * slot),
            title: format!(
                "{}: {} alert{}",
                date.format("%a %d %b %Y"),
                num(*total),
                if *total == 1 { "" } else { "s" }
            ),
            breakdown: row
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(name, n)| (name.as_str(), num(*n)))
                .collect(),
            label,
        });
    }

    Chart {
        days: f.per_day.len(),
        total: num(grand),
        legend,
        width: format!("{W}"),
        height: format!("{H}"),
        left: format!("{LEFT}"),
        right: format!("{:.1}", W - RIGHT),
        top: format!("{TOP}"),
        plot_height: format!("{plot_h}"),
        base: format!("{base_y}"),
        slot: format!("{slot:.1}"),
        weekends,
        ticks,
        bars,
        x_title: (
            format!("{:.1}", LEFT + plot_w / 2.0),
            format!("{:.1}", H - 10.0),
        ),
        y_title: format!("{:.1}", TOP + plot_h / 2.0),
    }
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
