//! The Markdown twin: `templates/report.md`, rendered by askama with
//! [`MarkdownText`](super::escape::MarkdownText) applied to every value by default. The two
//! `|safe` in it are our own texts that would otherwise gain backslashes (`< 1 day`, `< 1 min`).

use askama::Template;

use super::view::View;

/// The Markdown template.
#[derive(Template)]
#[template(path = "report.md")]
struct Page<'v, 'a> {
    v: &'v View<'a>,
}

/// The template's filters.
mod filters {
    /// An alert-supplied value as a table cell ([`md_cell`](super::super::escape::md_cell)):
    /// trimmed, cut, `—` when blank; the escaper still runs on the result.
    #[askama::filter_fn]
    pub(crate) fn md_cell(
        s: impl std::fmt::Display,
        _: &dyn askama::Values,
    ) -> askama::Result<String> {
        Ok(super::super::escape::md_cell(&s.to_string()))
    }
}

/// GitHub-flavoured Markdown tables with the same numbers (a per-day table instead of the chart).
pub(super) fn render(v: &View<'_>) -> String {
    // Rendering into a `String` can only fail on a `Display` error, and ours have none.
    Page { v }.render().unwrap_or_default()
}
