//! Evaluating a parsed filter against an alert's JSON, with OData's null rules.

use std::cmp::Ordering;

use chrono::DateTime;
use serde_json::{Map, Value};

use super::{CmpOp, Expr, Literal, Property};

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

impl Expr {
    /// The earliest value of the datetime `property` an alert can have and still satisfy the
    /// filter, when every way of satisfying it says so (`property ge|gt|eq t`, in each operand
    /// of an `or`, in some operand of an `and`). The simulator skips the alerts before it
    /// without building them; `None` when the filter sets no such floor.
    #[must_use]
    pub fn floor_of(&self, property: Property) -> Option<DateTime<chrono::Utc>> {
        match self {
            Expr::Compare {
                property: p,
                op: CmpOp::Ge | CmpOp::Gt | CmpOp::Eq,
                value: Literal::DateTime(t),
            } if *p == property => Some(*t),
            Expr::Compare { .. } | Expr::Not(_) => None,
            Expr::And(all) => all.iter().filter_map(|e| e.floor_of(property)).max(),
            Expr::Or(any) => any
                .iter()
                .map(|e| e.floor_of(property))
                .collect::<Option<Vec<_>>>()?
                .into_iter()
                .min(),
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

/// An instant as (seconds since the Unix epoch, nanoseconds); the derived
/// tuple order is chronological (a leap second, as chrono reads it, sorts
/// after :59 of its minute).
type Instant = (i64, u32);

/// Parses an alert's RFC 3339 timestamp; `None` if it is not one. chrono's
/// RFC 3339 reader neither allocates nor goes through its generic format
/// machinery, so evaluation stays allocation-free.
pub(super) fn parse_alert_timestamp(s: &str) -> Option<Instant> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| (t.timestamp(), t.timestamp_subsec_nanos()))
}
