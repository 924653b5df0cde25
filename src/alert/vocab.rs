//! Defender's two vocabularies that every output ranks or filters by: severity and status.
//!
//! Why one module: the report, the XLSX summary, the export filters and the store's `open`
//! selection must agree on "more severe" and "open" (an unknown severity such as `Critical` ranks
//! above `High` everywhere; `resolved` is closed everywhere), so all of them ask these two types.
//!
//! Both are read as Defender sends them, ignoring ASCII case and surrounding white space, and
//! both keep values they do not know: Microsoft adds enum values without notice, and an alert
//! with a new severity must never be dropped or ranked as harmless.

use std::fmt;

/// An alert's severity. The order is the severity order: `UnSpecified` < `Informational` < `Low`
/// < `Medium` < `High` < any value this version does not know (a new value is more likely to be
/// `Critical` than harmless, and the config documents that unknown severities count as above
/// `High`). Unknown values keep their original (trimmed) text; they are equally severe, and
/// their tie is broken so that a most-severe-first list shows them alphabetically.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Severity {
    /// `UnSpecified`, blank or absent.
    UnSpecified,
    /// `Informational`.
    Informational,
    /// `Low`.
    Low,
    /// `Medium`.
    Medium,
    /// `High`.
    High,
    /// Anything else, as sent (trimmed).
    Other(String),
}

/// The documented severities, most severe first.
pub(crate) const KNOWN_SEVERITIES: [Severity; 5] = [
    Severity::High,
    Severity::Medium,
    Severity::Low,
    Severity::Informational,
    Severity::UnSpecified,
];

impl Severity {
    /// Reads a severity: case-insensitive, trimmed; blank is `UnSpecified`; anything else is kept.
    pub(crate) fn parse(text: &str) -> Severity {
        let t = text.trim();
        if t.is_empty() {
            return Severity::UnSpecified;
        }
        KNOWN_SEVERITIES
            .iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(t))
            .cloned()
            .unwrap_or_else(|| Severity::Other(t.to_owned()))
    }

    /// Reads an optional severity (an alert without one is `UnSpecified`).
    pub(crate) fn of(text: Option<&str>) -> Severity {
        text.map_or(Severity::UnSpecified, Severity::parse)
    }

    /// The canonical name of a known severity, or the text of an unknown one.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Severity::UnSpecified => "UnSpecified",
            Severity::Informational => "Informational",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Other(s) => s,
        }
    }

    /// The rank for thresholds such as `min_severity`: 0 (`UnSpecified`) to 4 (`High`), and 5 for
    /// every unknown value.
    pub fn rank(&self) -> u8 {
        match self {
            Severity::UnSpecified => 0,
            Severity::Informational => 1,
            Severity::Low => 2,
            Severity::Medium => 3,
            Severity::High => 4,
            Severity::Other(_) => 5,
        }
    }

    /// Whether this is one of the documented values.
    pub(crate) fn is_known(&self) -> bool {
        !matches!(self, Severity::Other(_))
    }

    /// `High` or above (unknown values included): what "High severity" counts.
    pub(crate) fn is_high_or_above(&self) -> bool {
        *self >= Severity::High
    }
}

impl Ord for Severity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank()
            .cmp(&other.rank())
            .then_with(|| match (self, other) {
                // Reversed: descending (most severe first) is then alphabetical.
                (Severity::Other(a), Severity::Other(b)) => b.cmp(a),
                _ => std::cmp::Ordering::Equal,
            })
    }
}

impl PartialOrd for Severity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An alert's status. Only one thing matters to the outputs: whether it is open.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    /// `New`.
    New,
    /// `InProgress`.
    InProgress,
    /// `Resolved`: the only closed status.
    Resolved,
    /// Absent, or anything else as sent (trimmed); open.
    Other(String),
}

/// The documented statuses, in an alert's life order.
const KNOWN_STATUSES: [Status; 3] = [Status::New, Status::InProgress, Status::Resolved];

impl Status {
    /// Reads a status: case-insensitive, trimmed; anything else is kept.
    pub(crate) fn parse(text: &str) -> Status {
        let t = text.trim();
        KNOWN_STATUSES
            .iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(t))
            .cloned()
            .unwrap_or_else(|| Status::Other(t.to_owned()))
    }

    /// The canonical name of a known status, or the text of an unknown one.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Status::New => "New",
            Status::InProgress => "InProgress",
            Status::Resolved => "Resolved",
            Status::Other(s) => s,
        }
    }

    /// The one definition of open: every status but `Resolved` (an unknown status is open, so
    /// that an alert in a state this version does not know is never hidden from "open" lists).
    pub fn is_open(&self) -> bool {
        *self != Status::Resolved
    }

    /// Whether an alert with this optional status is open (no status: open).
    pub(crate) fn is_open_text(text: Option<&str>) -> bool {
        text.is_none_or(|t| Status::parse(t).is_open())
    }

    /// Position in [`KNOWN_STATUSES`], or its length for unknown values (for sorting).
    pub(crate) fn order(&self) -> usize {
        KNOWN_STATUSES
            .iter()
            .position(|k| k == self)
            .unwrap_or(KNOWN_STATUSES.len())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_severities_rank_above_high_and_keep_their_text() {
        let crit = Severity::parse(" Critical ");
        assert_eq!(crit, Severity::Other("Critical".into()));
        assert_eq!(crit.as_str(), "Critical");
        assert!(crit > Severity::High && crit.is_high_or_above());
        assert!(Severity::High > Severity::Medium);
        assert!(Severity::Informational > Severity::UnSpecified);
        assert_eq!(crit.rank(), 5);
        let mut v = [
            Severity::Low,
            Severity::parse("Zeta"),
            Severity::High,
            Severity::parse("Alpha"),
        ];
        v.sort_by(|a, b| b.cmp(a));
        let names: Vec<&str> = v.iter().map(Severity::as_str).collect();
        assert_eq!(names, ["Alpha", "Zeta", "High", "Low"]);
        assert!(!crit.is_known());
    }

    #[test]
    fn severities_ignore_case_and_blank_is_unspecified() {
        assert_eq!(Severity::parse("HIGH"), Severity::High);
        assert_eq!(Severity::parse("unspecified"), Severity::UnSpecified);
        assert_eq!(Severity::parse("  "), Severity::UnSpecified);
        assert_eq!(Severity::of(None), Severity::UnSpecified);
        assert!(!Severity::Medium.is_high_or_above());
    }

    #[test]
    fn only_resolved_is_closed() {
        for closed in ["Resolved", "resolved", " RESOLVED\t"] {
            assert!(!Status::parse(closed).is_open(), "{closed:?}");
            assert!(!Status::is_open_text(Some(closed)));
        }
        for open in ["New", "InProgress", "Unknown", "Dismissed", ""] {
            assert!(Status::parse(open).is_open(), "{open:?}");
        }
        assert!(Status::is_open_text(None));
        assert!(Status::parse("new").order() < Status::parse("resolved").order());
        assert_eq!(Status::parse("Later").order(), 3);
    }
}
