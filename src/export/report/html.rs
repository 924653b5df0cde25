//! The HTML page: `templates/report.html` (and its inline `report.css`), rendered by askama with
//! [`HtmlText`](super::escape::HtmlText) applied to every value by default; `|safe` would be the
//! visible exception, and the template has none.

use askama::Template;

use super::view::View;

/// The page's template.
#[derive(Template)]
#[template(path = "report.html")]
struct Page<'v, 'a> {
    v: &'v View<'a>,
}

/// The template's filters.
mod filters {
    /// An alert-supplied value cut for display ([`shown`](super::super::escape::shown)); the
    /// escaper still runs on the result.
    #[askama::filter_fn]
    pub(crate) fn shown(
        s: impl std::fmt::Display,
        _: &dyn askama::Values,
    ) -> askama::Result<String> {
        Ok(super::super::escape::shown(&s.to_string()))
    }
}

/// The complete, self-contained HTML document.
pub(super) fn render(v: &View<'_>) -> String {
    // Rendering into a `String` can only fail on a `Display` error, and ours have none.
    Page { v }.render().unwrap_or_default()
}
