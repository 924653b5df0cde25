//! The hazards of `docs/design.md` §2 that the Defender and Graph endpoints inject, each a switch.

use std::time::Duration;

/// Faults and quirks to inject. All off by default.
#[derive(Debug, Clone)]
pub struct Hazards {
    /// Share of `/api/alerts` calls answered with a fault (429, 500, 503, truncated body, non-JSON
    /// body, or a slow but correct answer).
    pub fault_rate: f64,
    /// `Retry-After` seconds on injected 429s.
    pub retry_after_secs: u64,
    /// Delay of a "slow" fault.
    pub slow_delay: Duration,
    /// Alerts updated (sharing one new `lastUpdateTime`) right after each page is served.
    pub mutate_per_page: usize,
    /// Share of updates that become visible late.
    pub late_fraction: f64,
    /// How late, at most.
    pub late_delay: Duration,
    /// Share of pages that carry an extra invalid element (no `id`, or a bad `lastUpdateTime`).
    pub invalid_element_rate: f64,
    /// Whether `$orderby` is accepted (the real API does not document it); refused with 400 when not.
    pub orderby_supported: bool,
    /// Accept `$orderby` but ignore it, answering in the undocumented order.
    pub orderby_ignored: bool,
    /// The faults `fault_rate` draws from (all of them when empty).
    pub fault_kinds: Vec<FaultKind>,
    /// Defender's quota, `(per minute, per hour)`: calls beyond it get 429 with `Retry-After`.
    pub rate_limit: Option<(u32, u32)>,
    /// Server-driven paging: answer at most this many alerts, with `@odata.nextLink` when more
    /// match (the real API does this on some endpoints; not documented for alerts).
    pub server_page: Option<usize>,
    /// Graph only: what `security/alerts_v2` does with `$orderby` (undocumented there).
    pub graph_orderby: GraphOrderBy,
    /// Graph only: `@odata.nextLink` points at another host ([`Hazards::graph_foreign_host`]),
    /// for a test that the client never follows it (and never sends it a token).
    pub graph_foreign_next_link: bool,
    /// Graph only: a `$filter` that compares a property with `null` (`createdDateTime eq null`,
    /// not in Graph's documented filter surface) is answered 400 "Invalid filter clause", as
    /// Graph answers other clauses it does not support.
    pub graph_null_refused: bool,
    /// The base URL of that other host (`https://evil.example` when `None`); a test may point
    /// it at a second simulator to see what reaches it.
    pub graph_foreign_host: Option<String>,
}

/// What Graph's `security/alerts_v2` does with `$orderby`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GraphOrderBy {
    /// `lastUpdateDateTime` and `createdDateTime`, `asc` or `desc`, work.
    #[default]
    Supported,
    /// 400 `BadRequest` "$orderby is not supported".
    Refused,
    /// Accepted and silently ignored: newest first.
    Ignored,
}

/// A fault the simulator can inject into an `/api/alerts` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// 429 with `Retry-After`.
    TooManyRequests,
    /// 500 with Defender's error body.
    Internal,
    /// 503 with a plain-text body.
    Unavailable,
    /// 200 with the page cut in half.
    Truncated,
    /// 200 with an HTML body.
    NotJson,
    /// The right answer, late.
    Slow,
}

pub(crate) const ALL_FAULTS: [FaultKind; 6] = [
    FaultKind::TooManyRequests,
    FaultKind::Internal,
    FaultKind::Unavailable,
    FaultKind::Truncated,
    FaultKind::NotJson,
    FaultKind::Slow,
];

impl Default for Hazards {
    fn default() -> Self {
        Hazards {
            fault_rate: 0.0,
            retry_after_secs: 1,
            slow_delay: Duration::from_millis(1500),
            mutate_per_page: 0,
            late_fraction: 0.0,
            late_delay: Duration::from_secs(2),
            invalid_element_rate: 0.0,
            orderby_supported: true,
            orderby_ignored: false,
            fault_kinds: Vec::new(),
            rate_limit: None,
            server_page: None,
            graph_orderby: GraphOrderBy::Supported,
            graph_foreign_next_link: false,
            graph_null_refused: false,
            graph_foreign_host: None,
        }
    }
}

impl Hazards {
    /// Draws the fault for one call, if any (and counts nothing).
    pub(crate) fn draw_fault(&self, rng: &mut impl rand::Rng) -> Option<FaultKind> {
        if self.fault_rate <= 0.0 || !rng.random_bool(self.fault_rate.clamp(0.0, 1.0)) {
            return None;
        }
        let kinds: &[FaultKind] = if self.fault_kinds.is_empty() {
            &ALL_FAULTS
        } else {
            &self.fault_kinds
        };
        Some(kinds[rng.random_range(0..kinds.len())])
    }
}
