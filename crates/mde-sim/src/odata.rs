//! The `$filter` language of the simulated Defender for Endpoint alerts API.
//!
//! The simulator serves `GET /api/alerts?$filter=...` the way Microsoft's
//! service does, so that the exporter's incremental queries (typically
//! `lastUpdateTime ge <watermark>`) can be exercised end to end without a
//! tenant. This module parses the filter once per request into an [`Expr`] and
//! then evaluates it cheaply against every stored alert with
//! [`Expr::matches`]; evaluation does not allocate.
//!
//! # Supported subset of OData v4 `$filter`
//!
//! * Comparisons `property op literal` with `eq ne gt ge lt le`, combined with
//!   `and`, `or`, prefix `not` and parentheses. Precedence, tightest first:
//!   `not`, comparisons, `and`, `or`. `not` negates the comparison or
//!   parenthesised group that follows it, so `not status eq 'New' and x`
//!   means `(not (status eq 'New')) and x`: no alert property is boolean, so
//!   this is the only well-typed reading.
//! * Keywords (operators, `null`, `true`, `false`) and property names are
//!   case-insensitive. Tokens are separated by any amount of whitespace; a
//!   literal `+` outside a string also counts as whitespace, because URLs such
//!   as Microsoft's own example `lastUpdateTime+ge+2019-11-22T00:00:00Z` may
//!   reach the server without `+` having been decoded to a space.
//! * Properties: `alertCreationTime`, `lastUpdateTime`, `lastEventTime`,
//!   `firstEventTime`, `resolvedTime` (datetimes); `incidentId`,
//!   `investigationId` (integers); `id`, `assignedTo` (also its documented
//!   misspelling `asssignedTo`), `detectionSource`, `status`, `severity`,
//!   `category` (strings).
//! * Literals: `'strings'` with `''` for a quote; optionally negative
//!   integers; `null`; `true`/`false` (accepted by the grammar, but no
//!   property is boolean, so they always fail the type check); unquoted
//!   datetimes such as `2019-11-22T00:00:00Z`, `2021-01-26T20:33:57.7220239Z`
//!   (0 to 9 fraction digits), `2019-11-22T00:00:00+02:00` (the offset's `+`
//!   may also arrive decoded to a single space), `2019-11-22T10:30Z` and the
//!   date-only forms `2018-08-01Z` / `2018-08-01` (midnight UTC).
//! * Type rules, checked at parse time: datetime properties take datetime
//!   literals, integer properties integer literals, string properties string
//!   literals. Any property may be compared with `null`, but only with `eq` or
//!   `ne`. Strings may be ordered with `gt ge lt le`; the order is ordinal
//!   (byte-wise on UTF-8), as in OData.
//! * Nesting of parentheses and `not` is limited to [`MAX_DEPTH`] levels so
//!   that a hostile filter cannot overflow the stack.
//!
//! Not supported: functions (`contains`, `startswith`, ...), lambdas,
//! arithmetic, `in`/`has`, property-to-property comparisons, literals on the
//! left-hand side and typed literals such as `datetime'...'`. They are
//! rejected with a [`FilterError`], whose message is meant for the `message`
//! of the 400 `ODataError` body and names the offending token and its byte
//! position (0-based) in the filter.
//!
//! # Evaluation
//!
//! * Datetimes are compared as instants with nanosecond precision, never as
//!   strings: `2021-01-26T20:33:59.2Z` equals `2021-01-26T20:33:59.2000000Z`.
//!   Alert values are parsed by a small RFC 3339 parser, falling back to
//!   chrono for anything it does not recognise.
//! * Strings compare case-sensitively (`status eq 'new'` does not match
//!   `"New"`); integers compare numerically.
//! * Nulls follow OData: a missing key and JSON `null` are both null; null
//!   equals only null, so `eq null` matches them, `ne null` matches every
//!   other value and `ne 'x'` matches them; ordering comparisons involving
//!   null are false.
//! * A value that is present but of the wrong JSON type or unparseable as a
//!   datetime is unknown: it satisfies `ne null` and no other comparison
//!   (not even `ne`).

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// The deepest nesting of parentheses and `not` that [`parse_filter`]
/// accepts. Parsing and evaluation recurse once per level, so this bounds
/// their stack use.
pub const MAX_DEPTH: usize = 128;

/// A parsed `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `property op value`, type-checked by [`parse_filter`].
    Compare {
        /// The alert property on the left-hand side.
        property: Property,
        /// The comparison operator.
        op: CmpOp,
        /// The literal on the right-hand side.
        value: Literal,
    },
    /// `not expr`.
    Not(Box<Expr>),
    /// `a and b and ...`: a chain of `and` is kept flat (two or more
    /// operands from the parser) so that long filters do not build deep trees.
    And(Vec<Expr>),
    /// `a or b or ...`, flat like [`Expr::And`].
    Or(Vec<Expr>),
}

/// An alert property that a filter may refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Property {
    /// `alertCreationTime` (datetime).
    AlertCreationTime,
    /// `lastUpdateTime` (datetime).
    LastUpdateTime,
    /// `lastEventTime` (datetime).
    LastEventTime,
    /// `firstEventTime` (datetime).
    FirstEventTime,
    /// `resolvedTime` (datetime).
    ResolvedTime,
    /// `incidentId` (integer).
    IncidentId,
    /// `investigationId` (integer).
    InvestigationId,
    /// `id` (string).
    Id,
    /// `assignedTo` (string); `asssignedTo` is accepted as an alias.
    AssignedTo,
    /// `detectionSource` (string).
    DetectionSource,
    /// `status` (string).
    Status,
    /// `severity` (string).
    Severity,
    /// `category` (string).
    Category,
}

/// The type of a [`Property`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    DateTime,
    Integer,
    String,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::DateTime => "datetime",
            Kind::Integer => "integer",
            Kind::String => "string",
        }
    }
}

impl Property {
    const ALL: [Property; 13] = [
        Property::AlertCreationTime,
        Property::LastUpdateTime,
        Property::LastEventTime,
        Property::FirstEventTime,
        Property::ResolvedTime,
        Property::IncidentId,
        Property::InvestigationId,
        Property::Id,
        Property::AssignedTo,
        Property::DetectionSource,
        Property::Status,
        Property::Severity,
        Property::Category,
    ];

    /// The key under which the property is stored in an alert's JSON object.
    #[must_use]
    pub fn json_key(self) -> &'static str {
        match self {
            Property::AlertCreationTime => "alertCreationTime",
            Property::LastUpdateTime => "lastUpdateTime",
            Property::LastEventTime => "lastEventTime",
            Property::FirstEventTime => "firstEventTime",
            Property::ResolvedTime => "resolvedTime",
            Property::IncidentId => "incidentId",
            Property::InvestigationId => "investigationId",
            Property::Id => "id",
            Property::AssignedTo => "assignedTo",
            Property::DetectionSource => "detectionSource",
            Property::Status => "status",
            Property::Severity => "severity",
            Property::Category => "category",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Property::AlertCreationTime
            | Property::LastUpdateTime
            | Property::LastEventTime
            | Property::FirstEventTime
            | Property::ResolvedTime => Kind::DateTime,
            Property::IncidentId | Property::InvestigationId => Kind::Integer,
            Property::Id
            | Property::AssignedTo
            | Property::DetectionSource
            | Property::Status
            | Property::Severity
            | Property::Category => Kind::String,
        }
    }

    /// Looks a property up by name, case-insensitively.
    fn from_name(name: &str) -> Option<Property> {
        if name.eq_ignore_ascii_case("asssignedTo") {
            return Some(Property::AssignedTo);
        }
        Property::ALL
            .into_iter()
            .find(|p| p.json_key().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.json_key())
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `eq`
    Eq,
    /// `ne`
    Ne,
    /// `gt`
    Gt,
    /// `ge`
    Ge,
    /// `lt`
    Lt,
    /// `le`
    Le,
}

impl CmpOp {
    fn from_keyword(word: &str) -> Option<CmpOp> {
        [
            CmpOp::Eq,
            CmpOp::Ne,
            CmpOp::Gt,
            CmpOp::Ge,
            CmpOp::Lt,
            CmpOp::Le,
        ]
        .into_iter()
        .find(|op| op.keyword().eq_ignore_ascii_case(word))
    }

    /// The operator's OData keyword, such as `"ge"`.
    #[must_use]
    pub fn keyword(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
        }
    }

    /// Whether `left op right` holds when `left.cmp(right) == ord`.
    fn holds(self, ord: Ordering) -> bool {
        match self {
            CmpOp::Eq => ord == Ordering::Equal,
            CmpOp::Ne => ord != Ordering::Equal,
            CmpOp::Gt => ord == Ordering::Greater,
            CmpOp::Ge => ord != Ordering::Less,
            CmpOp::Lt => ord == Ordering::Less,
            CmpOp::Le => ord != Ordering::Greater,
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `null`
    Null,
    /// A quoted string, unescaped (`'O''Brien'` is `O'Brien`).
    String(String),
    /// An integer.
    Integer(i64),
    /// A datetime, normalised to UTC.
    DateTime(DateTime<Utc>),
}

/// Why a filter was rejected. Its `Display` text is the message for the 400
/// `ODataError` body.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterError {
    /// A human-readable explanation, naming the offending token and its
    /// 0-based byte position in the filter where there is one.
    pub message: String,
}

impl FilterError {
    fn new(message: impl Into<String>) -> FilterError {
        FilterError {
            message: message.into(),
        }
    }

    fn at(pos: usize, what: impl fmt::Display) -> FilterError {
        FilterError::new(format!("Invalid $filter at position {pos}: {what}"))
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FilterError {}

/// Parses and type-checks a `$filter` expression (already percent-decoded).
///
/// # Errors
///
/// Returns a [`FilterError`] for an empty filter, a syntax error, an unknown
/// property, a malformed literal, a type mismatch or nesting deeper than
/// [`MAX_DEPTH`].
pub fn parse_filter(input: &str) -> Result<Expr, FilterError> {
    let tokens = lex(input)?;
    let mut parser = Parser {
        tokens: tokens.into_iter(),
        end: input.len(),
        depth: 0,
    };
    if parser.peek_is(|k| matches!(k, Tok::End)) {
        return Err(FilterError::new("The $filter expression is empty."));
    }
    let expr = parser.parse_or()?;
    let tok = parser.advance();
    match tok.kind {
        Tok::End => Ok(expr),
        Tok::RParen => Err(FilterError::at(tok.pos, "')' without a matching '('")),
        _ => Err(FilterError::at(
            tok.pos,
            format!(
                "unexpected {}; expected 'and', 'or' or the end of the filter",
                tok.describe()
            ),
        )),
    }
}

impl Expr {
    /// Whether `alert` satisfies the filter. Does not allocate.
    #[must_use]
    pub fn matches(&self, alert: &Map<String, Value>) -> bool {
        match self {
            Expr::Compare {
                property,
                op,
                value,
            } => compare(alert.get(property.json_key()), *op, value),
            Expr::Not(inner) => !inner.matches(alert),
            Expr::And(all) => all.iter().all(|e| e.matches(alert)),
            Expr::Or(any) => any.iter().any(|e| e.matches(alert)),
        }
    }
}

/// Evaluates `value op literal` with the null rules described in the module
/// documentation.
fn compare(value: Option<&Value>, op: CmpOp, literal: &Literal) -> bool {
    let value = match value {
        None | Some(Value::Null) => {
            return match literal {
                Literal::Null => op == CmpOp::Eq,
                _ => op == CmpOp::Ne,
            };
        }
        Some(value) => value,
    };
    let ord = match literal {
        Literal::Null => return op == CmpOp::Ne,
        Literal::String(s) => value.as_str().map(|v| v.cmp(s.as_str())),
        Literal::Integer(n) => compare_integer(value, *n),
        Literal::DateTime(t) => value
            .as_str()
            .and_then(parse_alert_timestamp)
            .map(|v| v.cmp(&(t.timestamp(), t.timestamp_subsec_nanos()))),
    };
    ord.is_some_and(|ord| op.holds(ord))
}

fn compare_integer(value: &Value, n: i64) -> Option<Ordering> {
    let Value::Number(number) = value else {
        return None;
    };
    if let Some(v) = number.as_i64() {
        Some(v.cmp(&n))
    } else if number.as_u64().is_some() {
        // Only integers above i64::MAX fail `as_i64` but pass `as_u64`.
        Some(Ordering::Greater)
    } else {
        number.as_f64()?.partial_cmp(&(n as f64))
    }
}

// ---------------------------------------------------------------------------
// Timestamps
// ---------------------------------------------------------------------------

/// An instant as (seconds since the Unix epoch, nanoseconds); the derived
/// tuple order is chronological.
type Instant = (i64, u32);

/// Parses an alert's RFC 3339 timestamp; `None` if it is not one.
fn parse_alert_timestamp(s: &str) -> Option<Instant> {
    parse_rfc3339_fast(s).or_else(|| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| (t.timestamp(), t.timestamp_subsec_nanos()))
    })
}

/// The common shape `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, without
/// allocation or chrono's generic machinery. Digits beyond nanoseconds are
/// ignored.
fn parse_rfc3339_fast(s: &str) -> Option<Instant> {
    let mut c = Cursor::new(s);
    let days = c.date()?;
    if !c.eat_any(b"Tt") {
        return None;
    }
    let (h, mi) = c.hour_minute()?;
    if !c.eat(b':') {
        return None;
    }
    let sec = c.two_digits().filter(|&s| s < 60)?;
    let nanos = if c.eat(b'.') {
        c.fraction(usize::MAX)?
    } else {
        0
    };
    let offset = c.zone(false)?;
    if !c.at_end() {
        return None;
    }
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + sec) - offset;
    Some((secs, nanos))
}

/// Parses an unquoted datetime literal of a filter (see the module
/// documentation for the accepted forms).
fn parse_datetime_literal(s: &str) -> Option<DateTime<Utc>> {
    let mut c = Cursor::new(s);
    let days = c.date()?;
    let mut secs = days * 86_400;
    let mut nanos = 0;
    if c.eat_any(b"Tt") {
        let (h, mi) = c.hour_minute()?;
        let mut sec = 0;
        if c.eat(b':') {
            sec = c.two_digits().filter(|&s| s < 60)?;
            if c.eat(b'.') {
                nanos = c.fraction(9)?;
            }
        }
        secs += i64::from(h * 3600 + mi * 60 + sec);
        secs -= c.zone(true)?;
    } else if !c.at_end() {
        secs -= c.zone(true)?;
    }
    if !c.at_end() {
        return None;
    }
    DateTime::from_timestamp(secs, nanos)
}

/// A byte cursor for the timestamp parsers.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Cursor<'a> {
        Cursor {
            bytes: s.as_bytes(),
            pos: 0,
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        self.eat_any(&[b])
    }

    fn eat_any(&mut self, set: &[u8]) -> bool {
        match self.peek() {
            Some(b) if set.contains(&b) => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn digit(&mut self) -> Option<u32> {
        let b = self.peek().filter(u8::is_ascii_digit)?;
        self.pos += 1;
        Some(u32::from(b - b'0'))
    }

    fn two_digits(&mut self) -> Option<u32> {
        Some(self.digit()? * 10 + self.digit()?)
    }

    /// `YYYY-MM-DD`, validated, as days since 1970-01-01.
    fn date(&mut self) -> Option<i64> {
        let year = self.two_digits()? * 100 + self.two_digits()?;
        if !self.eat(b'-') {
            return None;
        }
        let month = self.two_digits().filter(|m| (1..=12).contains(m))?;
        if !self.eat(b'-') {
            return None;
        }
        let day = self.two_digits()?;
        if day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(days_from_civil(i64::from(year), month, day))
    }

    /// `HH:MM`, validated.
    fn hour_minute(&mut self) -> Option<(u32, u32)> {
        let h = self.two_digits().filter(|&h| h < 24)?;
        if !self.eat(b':') {
            return None;
        }
        let m = self.two_digits().filter(|&m| m < 60)?;
        Some((h, m))
    }

    /// One or more fraction digits, as nanoseconds. More than `max` digits is
    /// an error; digits beyond the ninth are ignored.
    fn fraction(&mut self, max: usize) -> Option<u32> {
        let mut nanos = 0;
        let mut count = 0usize;
        while let Some(d) = self.digit() {
            if count < 9 {
                nanos = nanos * 10 + d;
            }
            count += 1;
        }
        if count == 0 || count > max {
            return None;
        }
        for _ in count..9 {
            nanos *= 10;
        }
        Some(nanos)
    }

    /// `Z` or `±HH:MM`, as seconds east of UTC. With `space_is_plus`, a space
    /// may stand for the `+` that form decoding turned into one.
    fn zone(&mut self, space_is_plus: bool) -> Option<i64> {
        if self.eat_any(b"Zz") {
            return Some(0);
        }
        let sign = match self.peek()? {
            b'+' => 1,
            b' ' if space_is_plus => 1,
            b'-' => -1,
            _ => return None,
        };
        self.pos += 1;
        let (h, m) = self.hour_minute()?;
        Some(sign * i64::from(h * 3600 + m * 60))
    }
}

fn is_leap_year(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
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
struct Token<'a> {
    kind: Tok<'a>,
    /// Byte offset of the token in the filter.
    pos: usize,
    /// The token as written, for error messages.
    text: &'a str,
}

impl Token<'_> {
    fn describe(&self) -> String {
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

fn lex(input: &str) -> Result<Vec<Token<'_>>, FilterError> {
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

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

/// Operators and functions of OData that this simulator does not implement.
const UNSUPPORTED_OPERATORS: [&str; 7] = ["has", "in", "add", "sub", "mul", "div", "mod"];

struct Parser<'a> {
    tokens: std::vec::IntoIter<Token<'a>>,
    /// Byte length of the filter, the position of [`Tok::End`].
    end: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn advance(&mut self) -> Token<'a> {
        self.tokens.next().unwrap_or(Token {
            kind: Tok::End,
            pos: self.end,
            text: "",
        })
    }

    fn peek_is(&self, pred: impl FnOnce(&Tok<'a>) -> bool) -> bool {
        self.tokens
            .as_slice()
            .first()
            .is_some_and(|t| pred(&t.kind))
    }

    fn peek_keyword(&self, keyword: &str) -> bool {
        self.peek_is(|k| matches!(k, Tok::Word(w) if w.eq_ignore_ascii_case(keyword)))
    }

    fn descend(&mut self, pos: usize) -> Result<(), FilterError> {
        if self.depth >= MAX_DEPTH {
            return Err(FilterError::at(
                pos,
                format!("the filter nests parentheses and 'not' more than {MAX_DEPTH} levels deep"),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    /// `and_expr ('or' and_expr)*`
    fn parse_or(&mut self) -> Result<Expr, FilterError> {
        let first = self.parse_and()?;
        if !self.peek_keyword("or") {
            return Ok(first);
        }
        let mut terms = vec![first];
        while self.peek_keyword("or") {
            self.advance();
            terms.push(self.parse_and()?);
        }
        Ok(Expr::Or(terms))
    }

    /// `unary ('and' unary)*`
    fn parse_and(&mut self) -> Result<Expr, FilterError> {
        let first = self.parse_unary()?;
        if !self.peek_keyword("and") {
            return Ok(first);
        }
        let mut terms = vec![first];
        while self.peek_keyword("and") {
            self.advance();
            terms.push(self.parse_unary()?);
        }
        Ok(Expr::And(terms))
    }

    /// `'not' unary | primary`
    fn parse_unary(&mut self) -> Result<Expr, FilterError> {
        if !self.peek_keyword("not") {
            return self.parse_primary();
        }
        let not = self.advance();
        self.descend(not.pos)?;
        let inner = self.parse_unary()?;
        self.depth -= 1;
        Ok(Expr::Not(Box::new(inner)))
    }

    /// `'(' or_expr ')' | comparison`
    fn parse_primary(&mut self) -> Result<Expr, FilterError> {
        let tok = self.advance();
        match tok.kind {
            Tok::LParen => self.parse_group(tok.pos),
            Tok::Word(word) => self.parse_comparison(word, tok.pos),
            _ => Err(expected_operand(&tok)),
        }
    }

    /// `or_expr ')'`, after the `(` at `open`.
    fn parse_group(&mut self, open: usize) -> Result<Expr, FilterError> {
        self.descend(open)?;
        let inner = self.parse_or()?;
        let close = self.advance();
        if close.kind != Tok::RParen {
            return Err(unclosed_group(open, &close));
        }
        self.depth -= 1;
        Ok(inner)
    }

    /// `property op literal`, with `property` already consumed.
    fn parse_comparison(&mut self, name: &'a str, name_pos: usize) -> Result<Expr, FilterError> {
        if ["and", "or"].iter().any(|k| name.eq_ignore_ascii_case(k)) {
            return Err(FilterError::at(
                name_pos,
                format!("missing operand before '{name}'"),
            ));
        }
        if self.peek_is(|k| matches!(k, Tok::LParen)) {
            return Err(FilterError::at(
                name_pos,
                format!("the function '{name}' is not supported"),
            ));
        }
        let Some(property) = Property::from_name(name) else {
            let what = if ["null", "true", "false"]
                .iter()
                .any(|k| name.eq_ignore_ascii_case(k))
            {
                format!("expected a property name on the left of a comparison, found '{name}'")
            } else {
                format!("Could not find a property named '{name}' on type 'Alert'")
            };
            return Err(FilterError::at(name_pos, what));
        };

        let op_tok = self.advance();
        let op = match op_tok.kind {
            Tok::Word(word) => CmpOp::from_keyword(word).ok_or_else(|| {
                let what = if UNSUPPORTED_OPERATORS
                    .iter()
                    .any(|k| word.eq_ignore_ascii_case(k))
                {
                    format!("the operator '{word}' is not supported")
                } else {
                    format!("unknown operator '{word}'")
                };
                FilterError::at(
                    op_tok.pos,
                    format!("{what}; expected one of eq, ne, gt, ge, lt, le after '{name}'"),
                )
            })?,
            _ => {
                return Err(FilterError::at(
                    op_tok.pos,
                    format!(
                        "expected a comparison operator (eq, ne, gt, ge, lt, le) after '{name}', found {}",
                        op_tok.describe()
                    ),
                ));
            }
        };

        let value_tok = self.advance();
        let type_error = |value_tok: &Token<'_>| {
            FilterError::at(
                value_tok.pos,
                format!(
                    "cannot compare the {} property '{property}' with {}",
                    property.kind().describe(),
                    value_tok.describe()
                ),
            )
        };
        let value = match (&value_tok.kind, property.kind()) {
            (Tok::Word(w), _) if w.eq_ignore_ascii_case("null") => {
                if !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    return Err(FilterError::at(
                        op_tok.pos,
                        format!("the operator '{op}' cannot be used with null; only eq and ne can"),
                    ));
                }
                Literal::Null
            }
            (Tok::Word(w), _)
                if w.eq_ignore_ascii_case("true") || w.eq_ignore_ascii_case("false") =>
            {
                return Err(type_error(&value_tok));
            }
            (Tok::Word(w), _) if Property::from_name(w).is_some() => {
                return Err(FilterError::at(
                    value_tok.pos,
                    format!(
                        "comparing two properties ('{name}' and '{w}') is not supported; \
                         the right-hand side must be a literal"
                    ),
                ));
            }
            (Tok::Str(s), Kind::String) => Literal::String(s.clone()),
            (Tok::Int(n), Kind::Integer) => Literal::Integer(*n),
            (Tok::DateTime(t), Kind::DateTime) => Literal::DateTime(*t),
            (Tok::Str(_) | Tok::Int(_) | Tok::DateTime(_), _) => {
                return Err(type_error(&value_tok));
            }
            (Tok::Word(_) | Tok::LParen | Tok::RParen | Tok::Comma | Tok::End, _) => {
                return Err(FilterError::at(
                    value_tok.pos,
                    format!(
                        "expected a literal value after '{name} {op}', found {}",
                        value_tok.describe()
                    ),
                ));
            }
        };
        Ok(Expr::Compare {
            property,
            op,
            value,
        })
    }
}

// Error constructors kept out of the recursive parsing functions so that
// their formatting temporaries do not enlarge every recursion frame.

#[cold]
fn expected_operand(tok: &Token<'_>) -> FilterError {
    let what = if tok.kind == Tok::End {
        "expected a comparison such as status eq 'New', found end of filter".to_owned()
    } else {
        format!("expected a property name or '(', found {}", tok.describe())
    };
    FilterError::at(tok.pos, what)
}

#[cold]
fn unclosed_group(open: usize, found: &Token<'_>) -> FilterError {
    FilterError::at(
        found.pos,
        format!(
            "expected ')' to close the '(' at position {open}, found {}",
            found.describe()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    fn sample() -> Map<String, Value> {
        obj(json!({
            "id": "da637472900382838869_1364969609",
            "incidentId": 1126093,
            "investigationId": null,
            "assignedTo": "O'Brien",
            "severity": "High",
            "status": "New",
            "detectionSource": "WindowsDefenderAv",
            "category": "Malware",
            "alertCreationTime": "2021-01-26T20:33:57.7220239Z",
            "lastUpdateTime": "2021-01-26T20:33:59.2Z",
            "firstEventTime": "2021-01-25T16:26:01Z",
            "lastEventTime": "2021-01-25T16:26:02.123Z",
            "resolvedTime": null
        }))
    }

    fn parse(filter: &str) -> Expr {
        match parse_filter(filter) {
            Ok(e) => e,
            Err(e) => panic!("{filter:?} should parse: {e}"),
        }
    }

    fn eval(filter: &str, alert: &Map<String, Value>) -> bool {
        parse(filter).matches(alert)
    }

    fn err(filter: &str) -> String {
        match parse_filter(filter) {
            Ok(e) => panic!("{filter:?} should be rejected, parsed as {e:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_err(filter: &str, needles: &[&str]) {
        let message = err(filter);
        for needle in needles {
            assert!(
                message.contains(needle),
                "error for {filter:?} is {message:?}, which lacks {needle:?}"
            );
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        match DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => panic!("bad test timestamp {s}: {e}"),
        }
    }

    fn cmp(property: Property, op: CmpOp, value: Literal) -> Expr {
        Expr::Compare {
            property,
            op,
            value,
        }
    }

    fn status_is(s: &str) -> Expr {
        cmp(Property::Status, CmpOp::Eq, Literal::String(s.to_owned()))
    }

    // --- operators ------------------------------------------------------

    #[test]
    fn string_operators() {
        let a = sample();
        assert!(eval("status eq 'New'", &a));
        assert!(!eval("status eq 'Resolved'", &a));
        assert!(!eval("status ne 'New'", &a));
        assert!(eval("status ne 'Resolved'", &a));
        // Ordinal order: "New" < "Resolved", "New" > "InProgress".
        assert!(eval("status lt 'Resolved'", &a));
        assert!(eval("status le 'New'", &a));
        assert!(!eval("status le 'InProgress'", &a));
        assert!(eval("status gt 'InProgress'", &a));
        assert!(eval("status ge 'New'", &a));
        assert!(!eval("status ge 'Resolved'", &a));
        assert!(!eval("status gt 'New'", &a));
        assert!(!eval("status lt 'New'", &a));
    }

    #[test]
    fn string_equality_is_case_sensitive() {
        let a = sample();
        assert!(!eval("status eq 'new'", &a));
        assert!(eval("status ne 'NEW'", &a));
    }

    #[test]
    fn every_string_property() {
        let a = sample();
        assert!(eval("id eq 'da637472900382838869_1364969609'", &a));
        assert!(eval("assignedTo eq 'O''Brien'", &a));
        assert!(eval("detectionSource eq 'WindowsDefenderAv'", &a));
        assert!(eval("severity eq 'High'", &a));
        assert!(eval("category eq 'Malware'", &a));
        assert!(!eval("category eq 'Malware '", &a));
    }

    #[test]
    fn integer_operators() {
        let a = sample();
        assert!(eval("incidentId eq 1126093", &a));
        assert!(!eval("incidentId eq 1126094", &a));
        assert!(eval("incidentId ne 1126094", &a));
        assert!(!eval("incidentId ne 1126093", &a));
        assert!(eval("incidentId gt 1126092", &a));
        assert!(!eval("incidentId gt 1126093", &a));
        assert!(eval("incidentId ge 1126093", &a));
        assert!(!eval("incidentId ge 1126094", &a));
        assert!(eval("incidentId lt 1126094", &a));
        assert!(!eval("incidentId lt 1126093", &a));
        assert!(eval("incidentId le 1126093", &a));
        assert!(!eval("incidentId le 1126092", &a));
        // Numeric, not lexicographic: 1126093 > 999.
        assert!(eval("incidentId gt 999", &a));
        assert!(eval("incidentId gt -5", &a));
    }

    #[test]
    fn integer_edge_values() {
        let big = obj(json!({ "incidentId": u64::MAX, "investigationId": 2.5 }));
        assert!(eval("incidentId gt 9223372036854775807", &big));
        assert!(eval("incidentId ne 1", &big));
        assert!(eval("investigationId gt 2", &big));
        assert!(eval("investigationId lt 3", &big));
        assert!(!eval("investigationId eq 2", &big));
        let neg = obj(json!({ "incidentId": -9223372036854775808_i64 }));
        assert!(eval("incidentId eq -9223372036854775808", &neg));
        assert_eq!(
            parse("incidentId eq -42"),
            cmp(Property::IncidentId, CmpOp::Eq, Literal::Integer(-42))
        );
    }

    #[test]
    fn datetime_operators() {
        let a = sample(); // lastUpdateTime 2021-01-26T20:33:59.2Z
        assert!(eval("lastUpdateTime eq 2021-01-26T20:33:59.2Z", &a));
        assert!(!eval("lastUpdateTime ne 2021-01-26T20:33:59.2Z", &a));
        assert!(eval("lastUpdateTime ne 2021-01-26T20:33:59.21Z", &a));
        assert!(eval("lastUpdateTime gt 2021-01-26T20:33:59.1999999Z", &a));
        assert!(!eval("lastUpdateTime gt 2021-01-26T20:33:59.2Z", &a));
        assert!(eval("lastUpdateTime ge 2021-01-26T20:33:59.2Z", &a));
        assert!(!eval("lastUpdateTime ge 2021-01-26T20:33:59.2000001Z", &a));
        assert!(eval("lastUpdateTime lt 2021-01-26T20:33:59.2000001Z", &a));
        assert!(!eval("lastUpdateTime lt 2021-01-26T20:33:59.2Z", &a));
        assert!(eval("lastUpdateTime le 2021-01-26T20:33:59.2Z", &a));
        assert!(!eval("lastUpdateTime le 2021-01-26T20:33:59Z", &a));
        // Chronological, not lexicographic: "...59.2Z" > "...59Z" as instants
        // although '.' < 'Z' as bytes.
        assert!(eval("lastUpdateTime gt 2021-01-26T20:33:59Z", &a));
    }

    #[test]
    fn every_datetime_property() {
        let a = sample();
        assert!(eval(
            "alertCreationTime eq 2021-01-26T20:33:57.7220239Z",
            &a
        ));
        assert!(eval("firstEventTime eq 2021-01-25T16:26:01Z", &a));
        assert!(eval("lastEventTime eq 2021-01-25T16:26:02.123Z", &a));
        assert!(eval("resolvedTime eq null", &a));
    }

    #[test]
    fn timestamp_precision_is_irrelevant_to_equality() {
        let values = [
            "2021-01-26T20:33:59Z",
            "2021-01-26T20:33:59.0Z",
            "2021-01-26T20:33:59.00Z",
            "2021-01-26T20:33:59.000Z",
            "2021-01-26T20:33:59.0000Z",
            "2021-01-26T20:33:59.00000Z",
            "2021-01-26T20:33:59.000000Z",
            "2021-01-26T20:33:59.0000000Z",
            "2021-01-26T20:33:59.000000000Z",
            "2021-01-26T21:33:59+01:00",
        ];
        for value in values {
            let alert = obj(json!({ "lastUpdateTime": value }));
            for literal in values {
                let filter = format!("lastUpdateTime eq {literal}");
                assert!(eval(&filter, &alert), "{value} should equal {literal}");
                let filter = format!("lastUpdateTime ne {literal}");
                assert!(!eval(&filter, &alert), "{value} ne {literal}");
            }
        }
        let sevens = [
            "2021-01-26T20:33:59.2Z",
            "2021-01-26T20:33:59.20Z",
            "2021-01-26T20:33:59.200Z",
            "2021-01-26T20:33:59.2000Z",
            "2021-01-26T20:33:59.20000Z",
            "2021-01-26T20:33:59.200000Z",
            "2021-01-26T20:33:59.2000000Z",
        ];
        for value in sevens {
            let alert = obj(json!({ "lastUpdateTime": value }));
            for literal in sevens {
                assert!(eval(&format!("lastUpdateTime eq {literal}"), &alert));
                assert!(!eval(&format!("lastUpdateTime gt {literal}"), &alert));
                assert!(eval(&format!("lastUpdateTime ge {literal}"), &alert));
            }
        }
    }

    #[test]
    fn one_tick_apart_is_not_equal() {
        let alert = obj(json!({ "lastUpdateTime": "2021-01-26T20:33:57.7220239Z" }));
        assert!(eval(
            "lastUpdateTime gt 2021-01-26T20:33:57.7220238Z",
            &alert
        ));
        assert!(eval(
            "lastUpdateTime lt 2021-01-26T20:33:57.722024Z",
            &alert
        ));
        assert!(eval(
            "lastUpdateTime gt 2021-01-26T20:33:57.722023899Z",
            &alert
        ));
        assert!(eval(
            "lastUpdateTime eq 2021-01-26T20:33:57.722023900Z",
            &alert
        ));
    }

    // --- datetime literals ---------------------------------------------

    #[test]
    fn datetime_literal_forms() {
        let midnight = utc("2018-08-01T00:00:00Z");
        for form in [
            "2018-08-01",
            "2018-08-01Z",
            "2018-08-01T00:00Z",
            "2018-08-01T00:00:00Z",
            "2018-08-01t00:00:00z",
            "2018-08-01T00:00:00.0000000Z",
            "2018-08-01T02:00:00+02:00",
            "2018-07-31T19:00:00-05:00",
            "2018-08-01T00:00:00+00:00",
            "2018-08-01T00:00:00-00:00",
        ] {
            assert_eq!(
                parse(&format!("lastUpdateTime ge {form}")),
                cmp(
                    Property::LastUpdateTime,
                    CmpOp::Ge,
                    Literal::DateTime(midnight)
                ),
                "{form}"
            );
        }
    }

    #[test]
    fn datetime_literal_fractions() {
        assert_eq!(
            parse("lastUpdateTime lt 2020-07-20T10:53:50.19Z"),
            cmp(
                Property::LastUpdateTime,
                CmpOp::Lt,
                Literal::DateTime(utc("2020-07-20T10:53:50.190Z"))
            )
        );
        assert_eq!(
            parse("lastUpdateTime lt 2021-01-26T20:33:57.722023912Z"),
            cmp(
                Property::LastUpdateTime,
                CmpOp::Lt,
                Literal::DateTime(utc("2021-01-26T20:33:57.722023912Z"))
            )
        );
    }

    #[test]
    fn datetime_offset_sign_survives_plus_and_space() {
        let expected = Literal::DateTime(utc("2019-11-21T22:00:00Z"));
        for filter in [
            "lastUpdateTime ge 2019-11-22T00:00:00+02:00",
            "lastUpdateTime+ge+2019-11-22T00:00:00+02:00",
            "lastUpdateTime ge 2019-11-22T00:00:00 02:00",
            "lastUpdateTime+ge+2019-11-22T00:00:00+02:00+and+status+eq+'New'",
            "(lastUpdateTime ge 2019-11-22T00:00:00 02:00)",
        ] {
            let expr = parse(filter);
            let first = match &expr {
                Expr::And(terms) => terms.first().cloned(),
                other => Some(other.clone()),
            };
            assert_eq!(
                first,
                Some(cmp(Property::LastUpdateTime, CmpOp::Ge, expected.clone())),
                "{filter}"
            );
        }
    }

    #[test]
    fn datetime_then_plus_is_a_separator() {
        assert_eq!(
            parse("lastUpdateTime+ge+2019-11-22T00:00:00Z+and+incidentId+eq+5"),
            Expr::And(vec![
                cmp(
                    Property::LastUpdateTime,
                    CmpOp::Ge,
                    Literal::DateTime(utc("2019-11-22T00:00:00Z"))
                ),
                cmp(Property::IncidentId, CmpOp::Eq, Literal::Integer(5)),
            ])
        );
        assert_eq!(
            parse("lastUpdateTime+ge+2018-08-01+or+status+eq+'New'"),
            Expr::Or(vec![
                cmp(
                    Property::LastUpdateTime,
                    CmpOp::Ge,
                    Literal::DateTime(utc("2018-08-01T00:00:00Z"))
                ),
                status_is("New"),
            ])
        );
    }

    #[test]
    fn leap_days() {
        let expr = parse("lastUpdateTime eq 2020-02-29T12:00:00Z");
        assert!(expr.matches(&obj(json!({ "lastUpdateTime": "2020-02-29T12:00:00Z" }))));
        assert!(parse_filter("lastUpdateTime eq 2000-02-29").is_ok());
        assert_err("lastUpdateTime eq 2019-02-29", &["2019-02-29"]);
        assert_err("lastUpdateTime eq 1900-02-29", &["1900-02-29"]);
    }

    #[test]
    fn malformed_datetimes_are_rejected_naming_the_literal() {
        for bad in [
            "2019-13-01T00:00:00Z",
            "2019-00-01T00:00:00Z",
            "2019-04-31T00:00:00Z",
            "2019-01-00",
            "2019-01-01T24:00:00Z",
            "2019-01-01T23:60:00Z",
            "2019-01-01T23:59:60Z",
            "2019-01-01T00:00:00",
            "2019-01-01T00:00:00.Z",
            "2019-01-01T00:00:00.1234567890Z",
            "2019-01-01T00:00:00+24:00",
            "2019-01-01T00:00:00+0200",
            "2019-01-01T00:00:00ZZ",
            "2019-01-01T0:00:00Z",
            "2019-1-01",
            "2019-01-01T",
            "2019-01-01Zjunk",
        ] {
            assert_err(
                &format!("lastUpdateTime ge {bad}"),
                &["malformed datetime literal", bad, "position 18"],
            );
        }
    }

    // --- alert timestamp parsing -----------------------------------------

    #[test]
    fn alert_timestamps_parse_like_chrono() {
        for s in [
            "2021-01-26T20:33:57.7220239Z",
            "2021-01-26T20:33:57Z",
            "1970-01-01T00:00:00Z",
            "1969-12-31T23:59:59.999999999Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.9999999Z",
            "2024-02-29T23:00:00-01:30",
            "2021-01-26t20:33:57.5z",
            "2021-01-26T20:33:57.12345678912345Z",
        ] {
            let expected = DateTime::parse_from_rfc3339(s)
                .map(|t| (t.timestamp(), t.timestamp_subsec_nanos()))
                .ok();
            assert!(expected.is_some(), "{s}");
            assert_eq!(parse_rfc3339_fast(s), expected, "{s}");
        }
    }

    #[test]
    fn unparseable_alert_values_match_nothing_but_ne_null() {
        for value in [
            json!("not a date"),
            json!("2021-13-01T00:00:00Z"),
            json!(""),
            json!(12345),
            json!(true),
            json!(["2021-01-26T20:33:59Z"]),
            json!({ "t": 1 }),
        ] {
            let alert = obj(json!({ "lastUpdateTime": value }));
            for op in ["eq", "ne", "gt", "ge", "lt", "le"] {
                assert!(
                    !eval(&format!("lastUpdateTime {op} 2021-01-26T20:33:59Z"), &alert),
                    "{value} {op}"
                );
            }
            assert!(eval("lastUpdateTime ne null", &alert));
            assert!(!eval("lastUpdateTime eq null", &alert));
        }
    }

    #[test]
    fn wrongly_typed_values_do_not_match() {
        let alert = obj(json!({ "status": 5, "incidentId": "5" }));
        assert!(!eval("status eq '5'", &alert));
        assert!(!eval("status ne '5'", &alert));
        assert!(!eval("incidentId eq 5", &alert));
        assert!(!eval("incidentId ne 5", &alert));
        assert!(eval("incidentId ne null", &alert));
    }

    #[test]
    fn leap_second_value_falls_back_to_chrono() {
        // chrono accepts a leap second; it sorts after :59 of that minute.
        let alert = obj(json!({ "lastUpdateTime": "2016-12-31T23:59:60.5Z" }));
        assert!(eval("lastUpdateTime gt 2016-12-31T23:59:59.9Z", &alert));
        assert!(eval("lastUpdateTime lt 2017-01-01T00:00:00.1Z", &alert));
    }

    // --- nulls -------------------------------------------------------------

    #[test]
    fn null_semantics() {
        let missing = obj(json!({}));
        let null = obj(json!({ "status": null, "incidentId": null, "resolvedTime": null }));
        for alert in [&missing, &null] {
            assert!(eval("status eq null", alert));
            assert!(!eval("status ne null", alert));
            assert!(!eval("status eq 'New'", alert));
            assert!(eval("status ne 'New'", alert));
            assert!(!eval("status gt 'A'", alert));
            assert!(!eval("status lt 'A'", alert));
            assert!(!eval("status ge 'A'", alert));
            assert!(!eval("status le 'A'", alert));
            assert!(!eval("incidentId eq 1", alert));
            assert!(eval("incidentId ne 1", alert));
            assert!(!eval("incidentId gt -1", alert));
            assert!(!eval("incidentId le 1", alert));
            assert!(eval("resolvedTime eq null", alert));
            assert!(!eval("resolvedTime ge 2000-01-01", alert));
            assert!(!eval("resolvedTime lt 2000-01-01", alert));
            assert!(eval("resolvedTime ne 2000-01-01", alert));
            // Two-valued logic: not negates whatever the comparison yielded.
            assert!(eval("not (resolvedTime ge 2000-01-01)", alert));
        }
        let present = sample();
        assert!(!eval("status eq null", &present));
        assert!(eval("status ne null", &present));
        assert!(eval("incidentId ne null", &present));
        assert!(eval("investigationId eq null", &present));
        assert!(eval("lastUpdateTime ne NULL", &present));
    }

    #[test]
    fn null_literal_parses_for_every_kind() {
        for property in Property::ALL {
            assert_eq!(
                parse(&format!("{property} eq null")),
                cmp(property, CmpOp::Eq, Literal::Null)
            );
        }
    }

    #[test]
    fn null_allows_only_eq_and_ne() {
        for op in ["gt", "ge", "lt", "le"] {
            assert_err(
                &format!("resolvedTime {op} null"),
                &["'", op, "cannot be used with null", "position 13"],
            );
        }
    }

    // --- logic, precedence and nesting -------------------------------------

    #[test]
    fn or_binds_looser_than_and() {
        assert_eq!(
            parse("status eq 'a' or status eq 'b' and status eq 'c'"),
            Expr::Or(vec![
                status_is("a"),
                Expr::And(vec![status_is("b"), status_is("c")]),
            ])
        );
        assert_eq!(
            parse("status eq 'a' and status eq 'b' or status eq 'c'"),
            Expr::Or(vec![
                Expr::And(vec![status_is("a"), status_is("b")]),
                status_is("c"),
            ])
        );
        let a = sample(); // status New, severity High
        // true or (false and false) = true; (true or false) and false would be false.
        assert!(eval(
            "status eq 'New' or severity eq 'Low' and category eq 'None'",
            &a
        ));
        assert!(!eval(
            "(status eq 'New' or severity eq 'Low') and category eq 'None'",
            &a
        ));
    }

    #[test]
    fn chains_are_flat() {
        assert_eq!(
            parse("status eq 'a' or status eq 'b' or status eq 'c'"),
            Expr::Or(vec![status_is("a"), status_is("b"), status_is("c")])
        );
        assert_eq!(
            parse("status eq 'a' and status eq 'b' and status eq 'c'"),
            Expr::And(vec![status_is("a"), status_is("b"), status_is("c")])
        );
        // A long chain is neither deep nor slow.
        let long = vec!["status eq 'x'"; 5000].join(" or ") + " or status eq 'New'";
        assert!(eval(&long, &sample()));
    }

    #[test]
    fn and_or_truth_tables() {
        let a = sample();
        let t = "status eq 'New'";
        let f = "status eq 'Old'";
        for (x, xv) in [(t, true), (f, false)] {
            for (y, yv) in [(t, true), (f, false)] {
                assert_eq!(eval(&format!("{x} and {y}"), &a), xv && yv);
                assert_eq!(eval(&format!("{x} or {y}"), &a), xv || yv);
            }
        }
    }

    #[test]
    fn not_operator() {
        let a = sample();
        assert!(!eval("not status eq 'New'", &a));
        assert!(eval("not status eq 'Old'", &a));
        assert!(eval("not not status eq 'New'", &a));
        assert!(eval("not (status eq 'Old' or severity eq 'Low')", &a));
        assert!(!eval("not (status eq 'New' or severity eq 'Low')", &a));
        assert!(eval("NOT(status eq 'Old')", &a));
        // not binds tighter than and / or.
        assert_eq!(
            parse("not status eq 'a' and status eq 'b'"),
            Expr::And(vec![Expr::Not(Box::new(status_is("a"))), status_is("b")])
        );
        assert_eq!(
            parse("not status eq 'a' or status eq 'b'"),
            Expr::Or(vec![Expr::Not(Box::new(status_is("a"))), status_is("b")])
        );
        assert_eq!(
            parse("status eq 'a' and not status eq 'b'"),
            Expr::And(vec![status_is("a"), Expr::Not(Box::new(status_is("b")))])
        );
    }

    #[test]
    fn nested_parentheses() {
        let a = sample();
        assert!(eval("((((status eq 'New'))))", &a));
        assert!(eval(
            "(status eq 'Old' or (severity eq 'High' and (category eq 'Malware' or (id eq 'x'))))",
            &a
        ));
        assert_eq!(
            parse("(status eq 'a' or status eq 'b') and status eq 'c'"),
            Expr::And(vec![
                Expr::Or(vec![status_is("a"), status_is("b")]),
                status_is("c"),
            ])
        );
        let deep = format!(
            "{}status eq 'New'{}",
            "(".repeat(MAX_DEPTH),
            ")".repeat(MAX_DEPTH)
        );
        assert!(eval(&deep, &a));
        let deep_not = format!("{}status eq 'New'", "not ".repeat(MAX_DEPTH));
        assert_eq!(eval(&deep_not, &a), MAX_DEPTH.is_multiple_of(2));
    }

    #[test]
    fn nesting_limit() {
        let too_deep = format!(
            "{}status eq 'New'{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert_err(
            &too_deep,
            &["more than 128 levels", &format!("position {MAX_DEPTH}")],
        );
        let mixed = format!("{}status eq 'New'", "not (".repeat(MAX_DEPTH));
        assert_err(&mixed, &["levels deep"]);
        // A hostile filter fails cleanly instead of overflowing the stack.
        let hostile = "(".repeat(1_000_000);
        assert_err(&hostile, &["levels deep"]);
    }

    #[test]
    fn deepest_filters_fit_half_a_default_thread_stack() {
        // Spawned threads and tokio workers get 2 MiB; even unoptimised, the
        // deepest accepted filters must fit comfortably in half of that.
        let handle = std::thread::Builder::new()
            .stack_size(1024 * 1024)
            .spawn(|| {
                let parens = format!(
                    "{}status eq 'New'{}",
                    "(".repeat(MAX_DEPTH),
                    ")".repeat(MAX_DEPTH)
                );
                let nots = format!("{}status eq 'Old'", "not ".repeat(MAX_DEPTH - 1));
                let mut results = Vec::new();
                for filter in [parens, nots] {
                    let expr = parse_filter(&filter).map_err(|e| e.message)?;
                    results.push(expr.matches(&sample()));
                }
                Ok::<Vec<bool>, String>(results)
            });
        let result = handle.map(|h| h.join());
        // MAX_DEPTH - 1 is odd, so the nots negate "status eq 'Old'" to true.
        assert!(
            matches!(&result, Ok(Ok(Ok(v))) if v == &[true, true]),
            "{result:?}"
        );
    }

    // --- lexical details ------------------------------------------------------

    #[test]
    fn microsoft_examples() {
        let a = obj(json!({ "lastUpdateTime": "2019-11-22T00:00:00.0000001Z" }));
        assert!(eval("lastUpdateTime+ge+2019-11-22T00:00:00Z", &a));
        assert!(eval("lastUpdateTime ge 2019-11-22T00:00:00Z", &a));
        assert!(!eval("lastUpdateTime+lt+2019-11-22T00:00:00Z", &a));

        let filter = "alertCreationTime gt 2022-02-17T14:39:01.391001Z and \
                      ((status eq 'New') or (status eq 'Resolved')) and \
                      ((severity eq 'Informational') or (severity eq 'High'))";
        assert_eq!(
            parse(filter),
            Expr::And(vec![
                cmp(
                    Property::AlertCreationTime,
                    CmpOp::Gt,
                    Literal::DateTime(utc("2022-02-17T14:39:01.391001Z"))
                ),
                Expr::Or(vec![status_is("New"), status_is("Resolved")]),
                Expr::Or(vec![
                    cmp(
                        Property::Severity,
                        CmpOp::Eq,
                        Literal::String("Informational".into())
                    ),
                    cmp(
                        Property::Severity,
                        CmpOp::Eq,
                        Literal::String("High".into())
                    ),
                ]),
            ])
        );
        let alert = |created: &str, status: &str, severity: &str| {
            obj(json!({
                "alertCreationTime": created,
                "status": status,
                "severity": severity,
            }))
        };
        let expr = parse(filter);
        assert!(expr.matches(&alert("2022-02-17T14:39:01.3910011Z", "New", "High")));
        assert!(expr.matches(&alert("2023-01-01T00:00:00Z", "Resolved", "Informational")));
        assert!(!expr.matches(&alert("2022-02-17T14:39:01.391001Z", "New", "High")));
        assert!(!expr.matches(&alert("2022-02-17T14:39:01.391Z", "New", "High")));
        assert!(!expr.matches(&alert("2023-01-01T00:00:00Z", "InProgress", "High")));
        assert!(!expr.matches(&alert("2023-01-01T00:00:00Z", "New", "Medium")));
        // The same filter with every space written as `+`.
        assert_eq!(parse(&filter.replace(' ', "+")), expr);
    }

    #[test]
    fn whitespace_and_plus_are_interchangeable() {
        let expected = parse("status eq 'New' and incidentId ne 5");
        for variant in [
            "status+eq+'New'+and+incidentId+ne+5",
            "  status   eq\t'New'\nand\r\nincidentId ne 5  ",
            "+++status+ +eq++'New' and+incidentId ne+5+",
            "status eq'New'and incidentId ne 5",
        ] {
            assert_eq!(parse(variant), expected, "{variant:?}");
        }
        // Inside a string, `+` is a plus sign.
        assert_eq!(
            parse("category eq 'a+b'"),
            cmp(Property::Category, CmpOp::Eq, Literal::String("a+b".into()))
        );
    }

    #[test]
    fn quotes_in_strings() {
        assert_eq!(
            parse("assignedTo eq 'O''Brien'"),
            cmp(
                Property::AssignedTo,
                CmpOp::Eq,
                Literal::String("O'Brien".into())
            )
        );
        assert!(eval("assignedTo eq 'O''Brien'", &sample()));
        assert!(!eval("assignedTo eq 'OBrien'", &sample()));
        for (literal, value) in [
            ("''", ""),
            ("''''", "'"),
            ("''''''", "''"),
            ("'a''''b'", "a''b"),
            ("'it''s ( and ) and or'", "it's ( and ) and or"),
            ("'Zoë ✓'", "Zoë ✓"),
        ] {
            assert_eq!(
                parse(&format!("category eq {literal}")),
                cmp(Property::Category, CmpOp::Eq, Literal::String(value.into())),
                "{literal}"
            );
        }
    }

    #[test]
    fn keywords_and_properties_are_case_insensitive() {
        let a = sample();
        assert!(eval("STATUS EQ 'New' AnD SeVeRiTy Eq 'High'", &a));
        assert!(eval("status Ne 'x' OR status eq 'y'", &a));
        assert!(eval("LASTUPDATETIME GE 2021-01-01", &a));
        assert!(eval("incidentid Gt 1 and INVESTIGATIONID eq Null", &a));
        assert!(eval("asssignedTo eq 'O''Brien'", &a));
        assert!(eval("ASSSIGNEDTO eq 'O''Brien'", &a));
        assert_eq!(parse("asssignedTo eq 'x'"), parse("assignedTo eq 'x'"));
    }

    // --- errors ----------------------------------------------------------------

    #[test]
    fn empty_filters() {
        for empty in ["", "   ", "+++", "\t\n"] {
            assert_err(empty, &["empty"]);
        }
    }

    #[test]
    fn unknown_property() {
        assert_err(
            "foo eq 'bar'",
            &[
                "Could not find a property named 'foo' on type 'Alert'",
                "position 0",
            ],
        );
        assert_err(
            "status eq 'New' and machineId eq 'x'",
            &["'machineId'", "position 20"],
        );
        assert_err("assigned_To eq 'x'", &["'assigned_To'"]);
    }

    #[test]
    fn syntax_errors() {
        let cases: &[(&str, &[&str])] = &[
            // unbalanced parentheses
            (
                "(status eq 'New'",
                &[
                    "expected ')'",
                    "'(' at position 0",
                    "end of filter",
                    "position 16",
                ],
            ),
            ("((status eq 'New')", &["expected ')'", "position 18"]),
            (
                "status eq 'New')",
                &["')' without a matching '('", "position 15"],
            ),
            (
                "(status eq 'New'))",
                &["')' without a matching '('", "position 17"],
            ),
            (
                "()",
                &["expected a property name or '('", "')'", "position 1"],
            ),
            (")", &["found ')'", "position 0"]),
            // missing operands
            (
                "status eq",
                &[
                    "expected a literal value after 'status eq'",
                    "end of filter",
                    "position 9",
                ],
            ),
            (
                "status",
                &[
                    "expected a comparison operator",
                    "end of filter",
                    "position 6",
                ],
            ),
            (
                "status eq 'New' and",
                &["expected a comparison", "end of filter", "position 19"],
            ),
            ("status eq 'New' or", &["end of filter", "position 18"]),
            (
                "and status eq 'New'",
                &["missing operand before 'and'", "position 0"],
            ),
            (
                "status eq 'New' and or status eq 'x'",
                &["missing operand before 'or'", "position 20"],
            ),
            ("not", &["end of filter", "position 3"]),
            (
                "status eq and",
                &["expected a literal value", "'and'", "position 10"],
            ),
            (
                "status eq )",
                &["expected a literal value", "')'", "position 10"],
            ),
            // trailing garbage
            (
                "status eq 'New' foo",
                &["unexpected 'foo'", "expected 'and', 'or'", "position 16"],
            ),
            (
                "status eq 'New' 'x'",
                &["unexpected string literal 'x'", "position 16"],
            ),
            (
                "status eq 'New' (status eq 'x')",
                &["unexpected '('", "position 16"],
            ),
            (
                "incidentId eq 5 6",
                &["unexpected integer literal 6", "position 16"],
            ),
            // unknown or unsupported operators
            (
                "status equals 'New'",
                &[
                    "unknown operator 'equals'",
                    "eq, ne, gt, ge, lt, le",
                    "position 7",
                ],
            ),
            (
                "status == 'New'",
                &["unexpected character '='", "position 7"],
            ),
            (
                "status in ('New')",
                &["operator 'in' is not supported", "position 7"],
            ),
            (
                "incidentId add 5 eq 6",
                &["operator 'add' is not supported"],
            ),
            (
                "status 'New'",
                &[
                    "expected a comparison operator",
                    "string literal 'New'",
                    "position 7",
                ],
            ),
            (
                "contains(status, 'New')",
                &["function 'contains' is not supported", "position 0"],
            ),
            (
                "status eq 'New', severity eq 'High'",
                &["unexpected ','", "position 15"],
            ),
            (
                "status eq 'New' && severity eq 'High'",
                &["unexpected character '&'", "position 16"],
            ),
            (
                "status/name eq 'x'",
                &["unexpected character '/'", "position 6"],
            ),
            (
                "status eq \"New\"",
                &["unexpected character '\"'", "position 10"],
            ),
            ("státus eq 'x'", &["unexpected character 'á'", "position 2"]),
            // unterminated strings
            (
                "status eq 'New",
                &["unterminated string literal", "position 10"],
            ),
            (
                "status eq 'O''Brien",
                &["unterminated string literal", "position 10"],
            ),
            (
                "status eq '",
                &["unterminated string literal", "position 10"],
            ),
            // malformed numbers
            (
                "incidentId eq 1.5",
                &["invalid numeric literal 1.5", "position 14"],
            ),
            ("incidentId eq 12abc", &["invalid numeric literal 12abc"]),
            (
                "incidentId eq 99999999999999999999",
                &["out of range", "99999999999999999999"],
            ),
            (
                "incidentId eq -",
                &["unexpected character '-'", "position 14"],
            ),
            ("incidentId eq --5", &["invalid numeric literal --5"]),
            // literals and properties in the wrong place
            (
                "'New' eq status",
                &[
                    "expected a property name or '('",
                    "string literal 'New'",
                    "position 0",
                ],
            ),
            (
                "null eq status",
                &["expected a property name on the left", "'null'"],
            ),
            (
                "lastUpdateTime gt firstEventTime",
                &[
                    "comparing two properties",
                    "'firstEventTime'",
                    "position 18",
                ],
            ),
            (
                "status eq xyz",
                &["expected a literal value", "'xyz'", "position 10"],
            ),
            (
                "status eq datetime'2019-01-01'",
                &["expected a literal value", "'datetime'"],
            ),
        ];
        for (filter, needles) in cases {
            assert_err(filter, needles);
        }
    }

    #[test]
    fn type_errors() {
        let cases: &[(&str, &[&str])] = &[
            (
                "lastUpdateTime ge '2019-11-22T00:00:00Z'",
                &[
                    "datetime property 'lastUpdateTime'",
                    "string literal '2019-11-22T00:00:00Z'",
                    "position 18",
                ],
            ),
            (
                "lastUpdateTime ge 5",
                &["datetime property", "integer literal 5"],
            ),
            (
                "status eq 2019-11-22T00:00:00Z",
                &[
                    "string property 'status'",
                    "datetime literal 2019-11-22T00:00:00Z",
                    "position 10",
                ],
            ),
            (
                "status eq 5",
                &["string property 'status'", "integer literal 5"],
            ),
            (
                "incidentId eq '5'",
                &["integer property 'incidentId'", "string literal '5'"],
            ),
            (
                "incidentId eq 2019-11-22",
                &["integer property", "datetime literal 2019-11-22"],
            ),
            ("status eq true", &["string property", "'true'"]),
            ("incidentId ne FALSE", &["integer property", "'FALSE'"]),
            ("resolvedTime eq true", &["datetime property", "'true'"]),
        ];
        for (filter, needles) in cases {
            assert_err(filter, needles);
        }
    }

    #[test]
    fn error_is_a_std_error_displaying_its_message() {
        let e = match parse_filter("foo eq 1") {
            Err(e) => e,
            Ok(expr) => panic!("parsed as {expr:?}"),
        };
        let boxed: Box<dyn std::error::Error> = Box::new(e.clone());
        assert_eq!(boxed.to_string(), e.message);
    }

    // --- robustness --------------------------------------------------------------

    const VALID: &[&str] = &[
        "alertCreationTime gt 2022-02-17T14:39:01.391001Z and ((status eq 'New') or (status eq 'Resolved')) and ((severity eq 'Informational') or (severity eq 'High'))",
        "lastUpdateTime+ge+2019-11-22T00:00:00+02:00+and+not+assignedTo+eq+'O''Brien'",
        "not (incidentId ge -5 or resolvedTime eq null) and lastEventTime lt 2018-08-01",
        "lastUpdateTime ge 2019-11-22T00:00:00 02:00 or firstEventTime le 2018-08-01Z",
    ];

    fn evaluate_on_odd_alerts(expr: &Expr) {
        for alert in [
            sample(),
            obj(json!({})),
            obj(json!({
                "status": 1, "incidentId": "x", "lastUpdateTime": 5,
                "resolvedTime": "garbage", "severity": [1], "investigationId": 1e300
            })),
        ] {
            let _ = expr.matches(&alert);
        }
    }

    #[test]
    fn truncations_and_deletions_never_panic() {
        for filter in VALID {
            assert!(parse_filter(filter).is_ok(), "{filter}");
            for (i, _) in filter.char_indices() {
                if let Ok(e) = parse_filter(&filter[..i]) {
                    evaluate_on_odd_alerts(&e);
                }
                let mut deleted = filter.to_string();
                deleted.remove(i);
                if let Ok(e) = parse_filter(&deleted) {
                    evaluate_on_odd_alerts(&e);
                }
                for insert in ["(", ")", "'", "+", " ", "-", ":", "9", "Z", "é"] {
                    let mut inserted = filter.to_string();
                    inserted.insert_str(i, insert);
                    if let Ok(e) = parse_filter(&inserted) {
                        evaluate_on_odd_alerts(&e);
                    }
                }
            }
        }
    }

    fn token_soup() -> impl Strategy<Value = String> {
        let token = prop::sample::select(vec![
            "(",
            ")",
            "not",
            "and",
            "or",
            "eq",
            "ne",
            "gt",
            "ge",
            "lt",
            "le",
            "null",
            "true",
            "status",
            "incidentId",
            "lastUpdateTime",
            "asssignedTo",
            "foo",
            "'New'",
            "'O''B",
            "''",
            "'",
            "5",
            "-7",
            "1.5",
            "2019-11-22T00:00:00Z",
            "2019-11-22",
            "2019-11-22T00:00",
            "2019-13-01",
            "+02:00",
            "02:00",
            "-",
            "+",
            "  ",
            "Z",
            ".",
            ":",
            "é",
        ]);
        prop::collection::vec((token, prop::sample::select(vec!["", " ", "+"])), 0..24).prop_map(
            |parts| {
                parts
                    .into_iter()
                    .map(|(t, sep)| format!("{t}{sep}"))
                    .collect()
            },
        )
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,80}") {
            if let Ok(e) = parse_filter(&s) {
                evaluate_on_odd_alerts(&e);
            }
        }

        #[test]
        fn token_soup_never_panics(s in token_soup()) {
            if let Ok(e) = parse_filter(&s) {
                evaluate_on_odd_alerts(&e);
            }
        }

        #[test]
        fn fast_timestamp_parser_agrees_with_chrono(
            secs in -62_135_596_800i64..253_402_214_400,
            nanos in 0u32..1_000_000_000,
            digits in 0usize..=9,
            offset_minutes in -1439i32..=1439,
        ) {
            let truncated = nanos - nanos % 10u32.pow(9 - digits as u32);
            let Some(t) = DateTime::from_timestamp(secs, truncated) else {
                return Ok(());
            };
            let Some(zone) = chrono::FixedOffset::east_opt(offset_minutes * 60) else {
                return Ok(());
            };
            let fraction = format!("{:09}", truncated);
            let local = t.with_timezone(&zone);
            let text = if digits == 0 {
                local.format("%Y-%m-%dT%H:%M:%S%:z").to_string()
            } else {
                format!("{}.{}{}", local.format("%Y-%m-%dT%H:%M:%S"), &fraction[..digits], local.format("%:z"))
            };
            prop_assert_eq!(parse_rfc3339_fast(&text), Some((t.timestamp(), truncated)), "{}", text);
            let literal = parse_datetime_literal(&text);
            prop_assert_eq!(literal, Some(t), "{}", text);
        }
    }
}
