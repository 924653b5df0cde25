//! How the report writes numbers, instants, durations and colours: shared by the view model and
//! the chart, so both renderings say "1,234", "24 hours" and "1 d 22 h" the same way.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::alert::vocab::Severity;

/// `12345` → `12,345`.
pub(super) fn num(n: usize) -> String {
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
pub(super) fn pct(n: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 * 100.0 / total as f64
    }
}

/// An instant as the report prints it, in its zone: `2026-05-14 06:00 UTC`,
/// `2026-05-14 08:00 CEST`.
pub(super) fn when(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string()
}

/// A figure's change from an earlier one, said in full: `+3 vs the previous 24 hours`,
/// `−2 vs …`, `no change vs …`.
pub(super) fn change(now: usize, before: usize, vs: &str) -> String {
    match now.cmp(&before) {
        std::cmp::Ordering::Greater => format!("+{} vs {vs}", num(now - before)),
        std::cmp::Ordering::Less => format!("−{} vs {vs}", num(before - now)),
        std::cmp::Ordering::Equal => format!("no change vs {vs}"),
    }
}

/// A window length as people say it: `24 hours`, `7 days`, `90 minutes`.
pub(super) fn human_window(d: Duration) -> String {
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
pub(super) fn human_duration(d: Duration) -> String {
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
pub(super) fn severity_color(name: &str, unknown_rank: usize) -> &'static str {
    match name {
        // Not a documented severity, but the one newer severity people meet: darker than High.
        "Critical" => "#82071e",
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
pub(super) fn series_colors<'s>(names: impl Iterator<Item = &'s str>) -> Vec<&'static str> {
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
