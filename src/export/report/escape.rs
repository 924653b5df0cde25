//! How alert text is made inert, in one place: the template engine's escapers (applied to every
//! `{{ value }}` by default, so forgetting is not possible) and the display rules (`shown`).
//!
//! Every string that comes from an alert — title, device, category, severity, status, tenant,
//! ID — is attacker-influenced: a process on an endpoint can choose the text of a title.
//!
//! - [`HtmlText`] escapes for HTML text *and* attribute context (`& < > " '`, as named or
//!   decimal entities, the ones the report always used) and replaces control characters and
//!   bidirectional marks and overrides by U+FFFD. askama's own HTML escaper writes `&#60;`-style
//!   entities and keeps control characters, hence ours (configured in `askama.toml`).
//! - [`MarkdownText`] backslash-escapes (`\ ` * _ ~ [ ] < > |`, a leading `# - + =`, an `&` that
//!   could start an entity), turns line breaks into spaces and hazards into U+FFFD, so a value
//!   can neither end a table cell nor start a link, an HTML tag, a heading or a code span. Its
//!   rules look at the neighbouring characters, so it must see a value whole: the Markdown view
//!   hands it strings only (one `write_str` each).
//! - [`shown`] (HTML) and [`md_cell`] (Markdown) cut a value to [`MAX_SHOWN_CHARS`] characters
//!   with `…`, the Markdown one after trimming and with `—` for a blank value.
//!
//! [`Html`] and [`Md`] apply both steps at once, as the report did before its templates.

use std::fmt::{self, Write};

/// Longest alert-supplied value shown, in characters (the figures keep the full text).
pub(crate) const MAX_SHOWN_CHARS: usize = 200;

/// Characters never shown as they are: controls (except tab and line breaks) and bidirectional
/// marks and overrides, which could hide or reorder the text around them.
fn is_hidden_hazard(c: char) -> bool {
    (c.is_control() && c != '\t' && c != '\n' && c != '\r')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// The first [`MAX_SHOWN_CHARS`] characters, and whether anything was cut.
fn cut(s: &str) -> (&str, bool) {
    match s.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((i, _)) => (&s[..i], true),
        None => (s, false),
    }
}

/// An alert-supplied value as the HTML page shows it: cut to [`MAX_SHOWN_CHARS`] with `…`.
pub(crate) fn shown(s: &str) -> String {
    match cut(s) {
        (text, true) => format!("{text}…"),
        (text, false) => text.to_owned(),
    }
}

/// An alert-supplied value as a Markdown cell shows it: trimmed, cut like [`shown`], and `—`
/// when blank (an empty cell reads as a mistake).
pub(crate) fn md_cell(s: &str) -> String {
    match cut(s.trim()) {
        ("", _) => "—".to_owned(),
        (text, true) => format!("{text}…"),
        (text, false) => text.to_owned(),
    }
}

/// The HTML escaper of the report's templates (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HtmlText;

impl askama::filters::Escaper for HtmlText {
    fn write_escaped_str<W: Write>(&self, mut f: W, text: &str) -> fmt::Result {
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
        f.write_str(&text[start..])
    }
}

/// The Markdown escaper of the report's templates (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MarkdownText;

impl askama::filters::Escaper for MarkdownText {
    fn write_escaped_str<W: Write>(&self, mut f: W, text: &str) -> fmt::Result {
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
        Ok(())
    }
}

/// Alert-supplied text, cut and escaped for HTML text and attribute values alike.
#[cfg(test)]
pub(crate) struct Html<'a>(pub(crate) &'a str);

#[cfg(test)]
impl fmt::Display for Html<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        askama::filters::Escaper::write_escaped_str(&HtmlText, f, &shown(self.0))
    }
}

/// Alert-supplied text, cut and escaped for inline Markdown, including inside a table cell.
#[cfg(test)]
pub(crate) struct Md<'a>(pub(crate) &'a str);

#[cfg(test)]
impl fmt::Display for Md<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        askama::filters::Escaper::write_escaped_str(&MarkdownText, f, &md_cell(self.0))
    }
}
