//! Which alerts an export or a query selects, by the fields the store indexes. It lives with the
//! alert's vocabulary because both the config (which writes it) and the store (which applies it)
//! use it, and neither should depend on the other for it.

/// Filters on the indexed fields. Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this severity and above (`Informational` < `Low` < `Medium` < `High`; values newer
    /// than this list count as above, so they are never silently dropped).
    pub min_severity: Option<u8>,
    /// Only these statuses.
    pub statuses: Vec<String>,
    /// Only these categories.
    pub categories: Vec<String>,
    /// Only these tenants (names from `[[tenants]]`).
    pub tenants: Vec<String>,
}
