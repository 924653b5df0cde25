//! The nightly report: one self-contained HTML page for a SOC manager, plus the same numbers as
//! Markdown.
//!
//! # Why this module exists
//!
//! The CSV and JSON exports answer "give me every alert"; a manager asks "what happened last night,
//! what is still open, and is it getting better?". This module turns the alerts, each in its latest
//! state, into those numbers ([`Figures`], in `figures`) and two renderings of them ([`Report`]).
//! Rendering does no I/O: `from_store` reads the store and feeds each alert to the same
//! one-pass tally as it goes (nothing is kept per alert), and the export writes the files
//! (atomically, as every export does), so the rest is a pure function that tests can check
//! exactly.
//!
//! # Safety of the output
//!
//! Every string that comes from an alert — title, device, category, severity, status, tenant, ID —
//! is attacker-influenced: a process on an endpoint can choose the text that ends up in a title.
//! Both renderings come from templates (`templates/report.html`, `templates/report.md`) over one
//! view model (`view`), and the template engine (askama) escapes **every** value by default
//! with our escapers (`escape`), so safety is by construction, not by each call remembering:
//! * In HTML it is escaped for text *and* attribute context (`& < > " '`), control characters and
//!   bidirectional overrides are replaced by U+FFFD, and very long values are cut for display.
//!   The page also carries a Content-Security-Policy (`default-src 'none'`) so that, should an
//!   escaping bug ever slip through, a browser still runs no script and fetches nothing.
//! * In Markdown it is backslash-escaped (`\ ` * _ ~ [ ] < > |`, a leading `# - + =`, an `&` that
//!   could start an entity), and line breaks become spaces, so a value can neither end a table
//!   cell nor start a link, an HTML tag, a heading or a code span.
//!
//! The page makes **no external requests**: no scripts, no fonts (a system font stack), no
//! images, no `url(…)`; its only links are each alert's own page in the Defender portal (an
//! `https://` link to a portal host, [`portal_link`](figures::portal_link), never anything else). The styles are one
//! inline `<style>`, and the charts are HTML tables with inline sizes and colours, **not SVG**:
//! the same page is a mail body, and Outlook on Windows (Word's renderer) shows no inline SVG
//! and runs no script, so the page uses neither.
//!
//! # Definitions (also printed in the report)
//!
//! * **Window**: `[generated_at − window, generated_at]`. Timestamps later than `generated_at`
//!   (clock skew, or bad data) are treated as `generated_at`, so they count as "now", never as
//!   negative ages.
//! * **Creation time**: `alertCreationTime`; when missing, `lastUpdateTime` stands in (the latest
//!   instant at which the alert certainly existed). This applies to "new", ages and the chart, but
//!   not to the time to resolve, which skips such alerts rather than invent a duration.
//! * **Open**: [`Status::is_open`](crate::alert::vocab::Status::is_open): status is not `Resolved` (trimmed, ignoring ASCII case).
//!   Unknown statuses are open.
//! * **Severities** are read by [`Severity::parse`](crate::alert::vocab::Severity::parse): the five documented values ignoring ASCII
//!   case, a blank value as `UnSpecified`, anything else verbatim as its own row. Every list is
//!   most severe first in that one order, so an unknown severity (`Critical`) comes before `High`,
//!   and "High" figures (the open High count, the recent High table) include unknown severities:
//!   the page says so ("High and above", split by severity), never silently.
//! * **Previous window**: the window of the same length just before it; the tiles compare with
//!   it. Only what the store still knows can be compared: creation and resolution times (an
//!   older update is overwritten by the next), and the backlog at the window's start.
//! * **Time zone**: dates, days and instants are shown in the report's `timezone` (UTC by
//!   default); the window is a length back from the report's time whatever the zone.
//! * See [`Figures`] for each number.

mod chart;
pub(crate) mod escape;
mod figures;
mod format;
mod html;
mod markdown;
mod view;

use std::borrow::Cow;
use std::io;

use serde_json::value::RawValue;

use super::error::{json_io, store_io};
use super::table::pick;
use crate::alert::time::ApiTime;
use crate::config::ExportConfig;
use crate::store::{Selection, Store};
use figures::{AlertRef, Analysis, Tally};

use figures::Figures;
#[cfg(test)]
use figures::{
    AlertSummary, Classification, MARKDOWN_DAYS, MAX_EXTRA_SERIES, OTHER_SEVERITIES, RECENT_HIGH,
    ReportInput, TOP_N, TREND_DAYS, TenantFigures, portal_link,
};

/// A rendered report.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    /// A complete, self-contained HTML document (UTF-8; no external requests).
    pub(crate) html: String,
    /// The same numbers as GitHub-flavoured Markdown tables (a per-day table instead of the chart).
    pub(crate) markdown: String,
    /// The numbers themselves.
    figures: Figures,
}

/// Renders the report from alerts held in memory, the tests' way in (an export streams them from
/// the store through [`from_store`]). Never panics, whatever the input (empty, future dates,
/// resolved before created, huge windows, hostile text).
#[cfg(test)]
fn render(input: &ReportInput<'_>) -> Report {
    let tz = input.timezone.unwrap_or(chrono_tz::Tz::UTC);
    let mut tally = Tally::new(input.generated_at, input.window, tz);
    for a in input.alerts {
        tally.add(&a.borrowed());
    }
    report_of(tally.finish())
}

/// Both renderings of an analysis.
fn report_of(analysis: Analysis) -> Report {
    let view = view::View::new(&analysis);
    let html = html::render(&view);
    let markdown = markdown::render(&view);
    drop(view);
    Report {
        html,
        markdown,
        figures: analysis.figures,
    }
}

/// Reads the selected alerts and renders the report (and how many alerts it covers).
///
/// Each row is read into a summary that borrows from it and is counted at once ([`Tally`]):
/// memory does not grow with the number of alerts (a 1,000,000-alert store made the report
/// that kept every summary peak at 385 MiB). The report's "now" is therefore taken before the
/// first row (the tally needs the window's bounds), i.e. when the store starts to be read.
pub(crate) fn from_store(
    store: &Store,
    e: &ExportConfig,
    sel: &Selection,
) -> io::Result<(Report, u64)> {
    let tz = e.timezone.unwrap_or(chrono_tz::Tz::UTC);
    let mut tally = Tally::new(chrono::Utc::now(), e.report_window, tz);
    let mut n = 0u64;
    super::rows::for_each(store, sel, super::rows::Want::Mde, |row| {
        add_row(&mut tally, row.mde.tenant, row.mde.raw).map_err(json_io)?;
        n += 1;
        Ok(())
    })
    .map_err(store_io)?;
    Ok((report_of(tally.finish()), n))
}

/// Counts one stored alert (its API JSON) in `tally`: what the nightly report needs of it.
fn add_row(tally: &mut Tally, tenant: &str, raw: &str) -> Result<(), serde_json::Error> {
    const FIELDS: &[&str] = &[
        "id",
        "title",
        "severity",
        "status",
        "category",
        "computerDnsName",
        "alertCreationTime",
        "lastUpdateTime",
        "resolvedTime",
        "alertWebUrl",
        "classification",
    ];
    let v = pick(raw, FIELDS)?;
    let text: [Option<Cow<'_, str>>; FIELDS.len()] =
        std::array::from_fn(|i| v.get(i).copied().flatten().and_then(text_of));
    let time = |i: usize| {
        text[i]
            .as_deref()
            .and_then(|t| ApiTime::parse(t).ok())
            .map(ApiTime::to_chrono)
    };
    tally.add(&AlertRef {
        tenant,
        id: text[0].as_deref().unwrap_or_default(),
        title: text[1].as_deref().unwrap_or_default(),
        severity: text[2].as_deref().unwrap_or("UnSpecified"),
        status: text[3].as_deref().unwrap_or("Unknown"),
        category: text[4].as_deref(),
        device: text[5].as_deref(),
        created: time(6),
        updated: time(7).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC),
        resolved: time(8),
        web_url: text[9].as_deref(),
        classification: text[10].as_deref(),
    });
    Ok(())
}

/// A JSON string value's text: borrowed from the row when it has no escapes (nearly always),
/// unescaped into a `String` otherwise; `None` for `null` or a value that is not a string.
fn text_of(v: &RawValue) -> Option<Cow<'_, str>> {
    crate::alert::canonical::string_value(v.get())
}

#[cfg(test)]
mod tests;
