//! Where alerts come from: a seam, so that the Graph `security/alerts_v2` source can follow the MDE
//! one (Microsoft has announced the MDE API's retirement).
//!
//! A source answers one question — "give me a page of alerts whose `lastUpdateTime` is within this
//! bound, oldest first" — and knows nothing of cursors or the store. The paging strategy that loses
//! nothing lives in [`crate::poll`].

pub mod fake;
pub mod mde;

use crate::alert::{Alert, Invalid};
use crate::auth::AuthError;
use crate::time::ApiTime;

/// The lower bound of a page's time filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// `lastUpdateTime ge T`: keyset paging; alerts at exactly `T` come again and are deduplicated.
    AtOrAfter(ApiTime),
    /// `lastUpdateTime gt T`: after every alert at `T` was read by [`Bound::Exactly`] paging.
    After(ApiTime),
    /// `lastUpdateTime eq T`: paging inside one instant shared by more alerts than fit on a page.
    Exactly(ApiTime),
}

/// A filter on `alertCreationTime`, which never changes: used to split an instant shared by more
/// alerts than fit on a page into windows that alerts can leave but never shift between.
///
/// A side left open (`None`) has no bound at all, so that windows can cover every value the server
/// may hold, however odd (.NET's `0001-01-01T00:00:00Z` sentinel, a creation time years ahead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// `alertCreationTime ge A and alertCreationTime lt B`, each side only when given.
    Within(Option<ApiTime>, Option<ApiTime>),
    /// `alertCreationTime eq null`.
    Missing,
}

/// One page to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// The time filter's lower bound.
    pub bound: Bound,
    /// An upper bound, `lastUpdateTime lt T` (window paging, when `$orderby` is refused).
    pub before: Option<ApiTime>,
    /// A creation-time window (paging inside one instant).
    pub created: Option<Created>,
    /// Ask for `$orderby=lastUpdateTime asc`.
    pub ordered: bool,
    /// `$top`.
    pub top: u32,
    /// `$skip` (only used inside one instant).
    pub skip: u32,
}

/// One element of a page that is not a usable alert.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// Its position on the page.
    pub index: usize,
    /// Why.
    pub why: Invalid,
}

/// A page as received.
#[derive(Debug, Default)]
pub struct Page {
    /// The valid alerts, in the order received.
    pub alerts: Vec<Alert>,
    /// Elements that were not valid alerts.
    pub rejected: Vec<Rejected>,
    /// How many elements the page had (valid or not): a page is short when this is below `$top`.
    pub received: usize,
    /// The server said there is more (`@odata.nextLink`): the page is not the end, however short.
    pub more: bool,
}

/// Why a page could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// No token.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The API refused the request for good (400, 403, 404, or 401 after a fresh token).
    #[error("{api} answered HTTP {status} {code}: {message}{hint}")]
    Refused {
        /// Which API.
        api: &'static str,
        /// HTTP status.
        status: u16,
        /// The API's error code (`Forbidden`, `ODataError`, …).
        code: String,
        /// The API's message.
        message: String,
        /// What to do, when we know.
        hint: String,
    },
    /// The body of a 200 response was not a valid page (truncated, not JSON, no `value`).
    #[error("{api} sent a page that is not valid JSON ({detail}); nothing from it was stored")]
    Malformed {
        /// Which API.
        api: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// Waiting (for budget, `Retry-After` or a backoff) would pass the poll's deadline.
    #[error("stopped before the deadline (the next scheduled poll): the next call could only be made in {}s", .wait.as_secs())]
    Deadline {
        /// The wait that did not fit.
        wait: std::time::Duration,
    },
    /// Transient failures did not clear within the retries.
    #[error("{api} is not answering properly after {attempts} attempts: {last}")]
    Unavailable {
        /// Which API.
        api: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// A source of alerts.
pub trait AlertSource: Send + Sync {
    /// A short name for logs (`mde`).
    fn name(&self) -> &'static str;
    /// Fetches one page, ordered by `lastUpdateTime` ascending.
    fn fetch(
        &self,
        request: &PageRequest,
    ) -> impl std::future::Future<Output = Result<Page, SourceError>> + Send;
    /// API calls made so far (every HTTP request, retries included).
    fn calls(&self) -> u64;
    /// Calls made since the last time this was asked, to be recorded in the store for the budget.
    fn take_unsaved_calls(&self) -> Vec<std::time::SystemTime> {
        Vec::new()
    }
    /// 429 answers so far.
    fn throttled(&self) -> u64 {
        0
    }
    /// Time spent waiting for budget, `Retry-After` and backoffs.
    fn waited(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// Splits a page's elements into alerts and rejects.
pub fn parse_elements<'a>(
    elements: impl IntoIterator<Item = &'a serde_json::value::RawValue>,
) -> Page {
    let mut page = Page::default();
    for (index, el) in elements.into_iter().enumerate() {
        page.received += 1;
        match Alert::parse(el.get()) {
            Ok(a) => page.alerts.push(a),
            Err(why) => page.rejected.push(Rejected { index, why }),
        }
    }
    page
}
