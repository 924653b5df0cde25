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
//!   Alert values are parsed as RFC 3339 by chrono, which also judges the
//!   calendar of datetime literals: the crate has no date arithmetic of its own.
//! * Strings compare case-sensitively (`status eq 'new'` does not match
//!   `"New"`); integers compare numerically.
//! * Nulls follow OData: a missing key and JSON `null` are both null; null
//!   equals only null, so `eq null` matches them, `ne null` matches every
//!   other value and `ne 'x'` matches them; ordering comparisons involving
//!   null are false.
//! * A value that is present but of the wrong JSON type or unparseable as a
//!   datetime is unknown: it satisfies `ne null` and no other comparison
//!   (not even `ne`).
//!
//! The lexer (`lex`), the recursive-descent parser (`parse`) and the evaluator
//! (`eval`) each have a file; the language is small and its tests (in `tests`)
//! exercise it whole. Hand-written rather than a crate: the Rust OData crates are
//! young (`odata-params` 0.4 calls itself a work in progress) and none offers
//! this exact subset with Defender's quirks (`+` as a space, `asssignedTo`).

mod eval;
mod lex;
mod parse;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, Utc};

pub use parse::{parse_filter, parse_filter_in};

/// Which API's property names a filter is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// Defender for Endpoint's `/api/alerts`: its thirteen properties (see the module
    /// documentation); `in` is refused.
    #[default]
    Defender,
    /// Microsoft Graph's `security/alerts_v2`: the eight documented filterable properties
    /// `assignedTo`, `classification`, `determination`, `createdDateTime`,
    /// `lastUpdateDateTime`, `severity`, `serviceSource` and `status`, and the `in` operator
    /// (`serviceSource in ('a', 'b')`, read as a chain of `eq` joined by `or`).
    Graph,
}

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

impl Expr {
    /// Whether the filter compares any property with `null` (`eq null`, `ne null`): Graph does
    /// not document null comparisons, and a hazard refuses them.
    #[must_use]
    pub fn compares_null(&self) -> bool {
        match self {
            Expr::Compare { value, .. } => *value == Literal::Null,
            Expr::Not(e) => e.compares_null(),
            Expr::And(v) | Expr::Or(v) => v.iter().any(Expr::compares_null),
        }
    }
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
    /// Graph's `createdDateTime` (datetime).
    CreatedDateTime,
    /// Graph's `lastUpdateDateTime` (datetime).
    LastUpdateDateTime,
    /// Graph's `serviceSource` (string).
    ServiceSource,
    /// Graph's `classification` (string).
    Classification,
    /// Graph's `determination` (string).
    Determination,
}

/// The type of a [`Property`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    DateTime,
    Integer,
    String,
}

impl Kind {
    pub(super) fn describe(self) -> &'static str {
        match self {
            Kind::DateTime => "datetime",
            Kind::Integer => "integer",
            Kind::String => "string",
        }
    }
}

impl Property {
    pub(super) const ALL: [Property; 13] = [
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

    /// The properties of Graph's alerts_v2 that are documented as filterable.
    pub(super) const GRAPH: [Property; 8] = [
        Property::AssignedTo,
        Property::Classification,
        Property::Determination,
        Property::CreatedDateTime,
        Property::LastUpdateDateTime,
        Property::Severity,
        Property::ServiceSource,
        Property::Status,
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
            Property::CreatedDateTime => "createdDateTime",
            Property::LastUpdateDateTime => "lastUpdateDateTime",
            Property::ServiceSource => "serviceSource",
            Property::Classification => "classification",
            Property::Determination => "determination",
        }
    }

    pub(super) fn kind(self) -> Kind {
        match self {
            Property::AlertCreationTime
            | Property::LastUpdateTime
            | Property::LastEventTime
            | Property::FirstEventTime
            | Property::ResolvedTime
            | Property::CreatedDateTime
            | Property::LastUpdateDateTime => Kind::DateTime,
            Property::IncidentId | Property::InvestigationId => Kind::Integer,
            Property::Id
            | Property::AssignedTo
            | Property::DetectionSource
            | Property::Status
            | Property::Severity
            | Property::Category
            | Property::ServiceSource
            | Property::Classification
            | Property::Determination => Kind::String,
        }
    }

    /// Looks a property of `dialect` up by name, case-insensitively.
    pub(super) fn from_name(name: &str, dialect: Dialect) -> Option<Property> {
        let all: &[Property] = match dialect {
            Dialect::Defender => {
                if name.eq_ignore_ascii_case("asssignedTo") {
                    return Some(Property::AssignedTo);
                }
                &Property::ALL
            }
            Dialect::Graph => &Property::GRAPH,
        };
        all.iter()
            .copied()
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
    pub(super) fn from_keyword(word: &str) -> Option<CmpOp> {
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
    pub(super) fn holds(self, ord: Ordering) -> bool {
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
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    /// A human-readable explanation, naming the offending token and its
    /// 0-based byte position in the filter where there is one.
    pub message: String,
}

impl FilterError {
    pub(super) fn new(message: impl Into<String>) -> FilterError {
        FilterError {
            message: message.into(),
        }
    }

    pub(super) fn at(pos: usize, what: impl fmt::Display) -> FilterError {
        FilterError::new(format!("Invalid $filter at position {pos}: {what}"))
    }
}
