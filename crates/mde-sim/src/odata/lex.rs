//! Tokens of a `$filter`, and the unquoted datetime literal's forms.

use chrono::{DateTime, Utc};

use super::FilterError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok<'a> {
    LParen,
    RParen,
    /// Only valid in function calls, which are not supported; lexed so that
    /// they can be reported as such.
    Comma,
    /// A keyword or property name.
    Word(&'a str),
    Str(String),
    Int(i64),
    DateTime(DateTime<Utc>),
    End,
}

#[derive(Debug, Clone)]
pub(super) struct Token<'a> {
    pub(super) kind: Tok<'a>,
    /// Byte offset of the token in the filter.
    pub(super) pos: usize,
    /// The token as written, for error messages.
    pub(super) text: &'a str,
}

impl Token<'_> {
    pub(super) fn describe(&self) -> String {
        match self.kind {
            Tok::End => "end of filter".to_owned(),
            Tok::Str(_) => format!("string literal {}", self.text),
            Tok::Int(_) => format!("integer literal {}", self.text),
            Tok::DateTime(_) => format!("datetime literal {}", self.text),
            Tok::LParen | Tok::RParen | Tok::Comma | Tok::Word(_) => format!("'{}'", self.text),
        }
    }
}

/// Whitespace between tokens; `+` counts because it may not have been decoded.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'+')
}

/// Bytes that end an unquoted literal.
fn is_delimiter(b: u8) -> bool {
    is_space(b) || matches!(b, b'(' | b')' | b'\'' | b',')
}

/// Whether `HH:MM` (digits only, not validated) starts at `at`.
fn is_hh_mm(bytes: &[u8], at: usize) -> bool {
    matches!(
        bytes.get(at..at + 5),
        Some([a, b, b':', c, d]) if [a, b, c, d].iter().all(|x| x.is_ascii_digit())
    )
}

pub(super) fn lex(input: &str) -> Result<Vec<Token<'_>>, FilterError> {
    let bytes = input.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    loop {
        while bytes.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        let start = i;
        let Some(&b) = bytes.get(i) else {
            tokens.push(Token {
                kind: Tok::End,
                pos: i,
                text: "",
            });
            return Ok(tokens);
        };
        let kind = match b {
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'\'' => {
                let (s, end) = lex_string(input, start)?;
                i = end;
                Tok::Str(s)
            }
            b'0'..=b'9' | b'-' => {
                let (tok, end) = lex_number(input, start)?;
                i = end;
                tok
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                while bytes
                    .get(i)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                {
                    i += 1;
                }
                Tok::Word(&input[start..i])
            }
            _ => {
                let c = input[start..].chars().next().unwrap_or('?');
                return Err(FilterError::at(
                    start,
                    format!("unexpected character {c:?}"),
                ));
            }
        };
        tokens.push(Token {
            kind,
            pos: start,
            text: &input[start..i],
        });
    }
}

/// Lexes the string literal whose opening quote is at `start`; returns the
/// unescaped string and the offset just past the closing quote.
fn lex_string(input: &str, start: usize) -> Result<(String, usize), FilterError> {
    let bytes = input.as_bytes();
    let mut out = String::new();
    let mut segment = start + 1;
    let mut i = segment;
    loop {
        match bytes.get(i) {
            None => {
                return Err(FilterError::at(
                    start,
                    "unterminated string literal (a quote inside a string is written '')",
                ));
            }
            Some(b'\'') => {
                out.push_str(&input[segment..i]);
                if bytes.get(i + 1) == Some(&b'\'') {
                    out.push('\'');
                    i += 2;
                    segment = i;
                } else {
                    return Ok((out, i + 1));
                }
            }
            Some(_) => i += 1,
        }
    }
}

/// Lexes the integer or datetime literal starting at `start`.
fn lex_number(input: &str, start: usize) -> Result<(Tok<'static>, usize), FilterError> {
    let bytes = input.as_bytes();
    let looks_like_date = matches!(
        bytes.get(start..start + 5),
        Some([a, b, c, d, b'-']) if [a, b, c, d].iter().all(|x| x.is_ascii_digit())
    );
    if looks_like_date {
        // A `+` followed by `HH:MM` is an offset sign, not whitespace.
        let mut end = start;
        while let Some(&b) = bytes.get(end) {
            if b == b'+' && is_hh_mm(bytes, end + 1) {
                end += 1;
            } else if is_delimiter(b) {
                break;
            } else {
                end += 1;
            }
        }
        // `...T10:00:00 02:00`: the offset's `+` was decoded to a space.
        let spaced_end = end + 6;
        if bytes.get(end) == Some(&b' ')
            && is_hh_mm(bytes, end + 1)
            && bytes.get(spaced_end).is_none_or(|&b| is_delimiter(b))
            && let Some(t) = parse_datetime_literal(&input[start..spaced_end])
        {
            return Ok((Tok::DateTime(t), spaced_end));
        }
        if let Some(t) = parse_datetime_literal(&input[start..end]) {
            return Ok((Tok::DateTime(t), end));
        }
        // Name the whole malformed literal, including any `+0200`-like tail.
        while bytes
            .get(end)
            .is_some_and(|&b| b == b'+' || !is_delimiter(b))
        {
            end += 1;
        }
        let text = &input[start..end];
        return Err(FilterError::at(
            start,
            format!(
                "malformed datetime literal {text}; expected e.g. 2019-11-22T00:00:00Z, \
                 2021-01-26T20:33:57.7220239Z, 2019-11-22T00:00:00+02:00 or 2018-08-01"
            ),
        ));
    }
    let mut end = start;
    while bytes.get(end).is_some_and(|&b| !is_delimiter(b)) {
        end += 1;
    }
    let text = &input[start..end];
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() {
        return Err(FilterError::at(start, "unexpected character '-'"));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FilterError::at(
            start,
            format!("invalid numeric literal {text}; only integers are supported"),
        ));
    }
    match text.parse::<i64>() {
        Ok(n) => Ok((Tok::Int(n), end)),
        Err(_) => Err(FilterError::at(
            start,
            format!("integer literal {text} is out of range"),
        )),
    }
}

/// Parses an unquoted datetime literal of a filter (see the module
/// documentation for the accepted forms).
///
/// OData admits forms RFC 3339 lacks: a bare date, `HH:MM` without seconds,
/// and a space where URL decoding ate the offset's `+`. This rewrites them
/// into RFC 3339 and lets chrono judge the calendar, the clock and the offset
/// (a second parser with its own calendar would only drift from chrono). It
/// checks only what chrono's reader accepts but the filter grammar does not:
/// a leap second, more than nine fraction digits, and any offset other than
/// `Z` or `±HH:MM`.
pub(super) fn parse_datetime_literal(s: &str) -> Option<DateTime<Utc>> {
    let date = s.get(..10)?;
    let rest = &s[10..];
    let (time, zone) = match rest.as_bytes().first() {
        Some(b'T' | b't') => {
            let rest = &rest[1..];
            rest.split_at(rest.find(['Z', 'z', '+', '-', ' ']).unwrap_or(rest.len()))
        }
        // A bare date is midnight, in UTC unless an offset follows.
        _ => ("00:00", if rest.is_empty() { "Z" } else { rest }),
    };
    let seconds = if time.len() == 5 { ":00" } else { "" };
    if let Some((_, fraction)) = time.split_once('.')
        && !(1..=9).contains(&fraction.len())
    {
        return None;
    }
    let zone = match zone.as_bytes() {
        [b'Z' | b'z'] => "Z".to_owned(),
        [sign @ (b'+' | b' ' | b'-'), ..] if zone.len() == 6 && is_hh_mm(zone.as_bytes(), 1) => {
            format!("{}{}", if *sign == b'-' { '-' } else { '+' }, &zone[1..])
        }
        _ => return None,
    };
    let t = DateTime::parse_from_rfc3339(&format!("{date}T{time}{seconds}{zone}")).ok()?;
    // chrono reads `:60` as a leap second (nanoseconds past 10^9); the filter grammar does not.
    (t.timestamp_subsec_nanos() < 1_000_000_000).then(|| t.with_timezone(&Utc))
}
