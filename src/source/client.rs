//! The HTTP client both alert APIs share: budget, token, retries, and an untrusted answer turned
//! into a [`Page`] or a [`SourceError`] a person can act on. What differs between Defender's
//! `/api/alerts` and Graph's `security/alerts_v2` — the path, the query's field names, headers,
//! what an error means — is the `Dialect`'s (`super::mde`, [`super::graph`]).
//!
//! Every HTTP attempt first takes a slot from the tenant's [`Budget`], so the client never trips
//! the API's quotas on its own. Transient failures (network, 5xx, 408, a body cut short or not
//! JSON) are retried with capped exponential backoff (backon's schedule) and full jitter; a 429
//! waits exactly its `Retry-After` (never less) and does not use up a retry, so a throttled
//! backfill finishes in the same poll, just later; a 401 renews the token once. Nothing waits past
//! the poll's deadline (the next scheduled poll).
//!
//! The answer is untrusted: a redirect is an error (never followed: the token would go along, and
//! a foreign host's answer would be stored as alerts), the body is read in chunks up to
//! `MAX_PAGE_BYTES` (error bodies up to a few KB) into memory paid for from the process's
//! `BodyBudget` (taken before the call, grown with the body), a `Retry-After` is clamped, and every piece of
//! server text that reaches an error is redacted (`ServerText`). An `@odata.nextLink` is kept
//! for the pager only when it points at the configured API (same scheme, host, port and path): a
//! token never goes anywhere else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::BackoffBuilder;
use rand::Rng;
use url::Url;

use super::{AlertSource, NextLink, Page, PageRequest, SourceError, decode_page_fetched_with};
use crate::auth::TokenProvider;
use crate::budget::Budget;
use crate::config::Services;
use crate::http::{
    BodyBudget, BodyError, FIRST_SHARE, MAX_PAGE_BYTES, Retry, classify_status, classify_transport,
    content_type, describe_body, read_budgeted, read_error_body, redirect_target, retry_after,
};
use crate::http::{error_chain, join_path};
use crate::redact::ServerText;

/// Retries of one page after transient failures (429s are not counted: they wait their turn).
const MAX_RETRIES: usize = 6;
/// The first backoff; doubled per retry, capped at [`MAX_BACKOFF`], then fully jittered.
const BASE_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Waited when a 429 carries no `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The backoff schedule: backon's capped exponential sequence gives each retry's ceiling, and the
/// actual wait is drawn uniformly below it ("full jitter"; backon's own jitter only adds on top).
fn backoff_schedule() -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(BASE_BACKOFF)
        .with_max_delay(MAX_BACKOFF)
        .with_factor(2.0)
        .with_max_times(MAX_RETRIES)
        .build()
        .map(|ceiling| rand::rng().random_range(Duration::ZERO..=ceiling))
}

/// What differs between the two alert APIs.
#[derive(Debug, Clone)]
enum Dialect {
    /// Defender for Endpoint's `GET /api/alerts`.
    Mde {
        /// Ask for `$expand=evidence`.
        expand_evidence: bool,
    },
    /// Microsoft Graph's `GET /v1.0/security/alerts_v2`.
    Graph {
        /// Which Defender products' alerts to read.
        services: Services,
    },
}

impl Dialect {
    /// The API's name in messages.
    fn api(&self) -> &'static str {
        match self {
            Dialect::Mde { .. } => super::mde::API,
            Dialect::Graph { .. } => super::graph::API,
        }
    }

    fn path(&self) -> &'static str {
        match self {
            Dialect::Mde { .. } => super::mde::PATH,
            Dialect::Graph { .. } => super::graph::PATH,
        }
    }

    fn query(&self, r: &PageRequest) -> Vec<(&'static str, String)> {
        match self {
            Dialect::Mde { expand_evidence } => super::mde::query(r, *expand_evidence),
            Dialect::Graph { services } => super::graph::query(r, services),
        }
    }

    fn advice(&self, status: u16, code: &str, message: &str) -> super::Advice {
        match self {
            Dialect::Mde { .. } => super::mde::advice(status, code, message),
            Dialect::Graph { .. } => super::graph::advice(status, code),
        }
    }
}

/// One tenant's alerts, read over HTTP from the MDE API or Graph.
pub struct ApiSource {
    http: reqwest::Client,
    alerts_url: Url,
    tokens: Arc<TokenProvider>,
    dialect: Dialect,
    calls: AtomicU64,
    throttled: AtomicU64,
    waited_ms: AtomicU64,
    budget: Arc<Budget>,
    deadline: Option<tokio::time::Instant>,
    max_page_bytes: usize,
    bodies: BodyBudget,
}

impl ApiSource {
    /// Defender's `/api/alerts` at `api_url`, with tokens from `tokens`.
    pub fn mde(
        http: reqwest::Client,
        api_url: &Url,
        tokens: Arc<TokenProvider>,
        expand_evidence: bool,
        budget: Arc<Budget>,
    ) -> Self {
        Self::new(
            http,
            api_url,
            tokens,
            Dialect::Mde { expand_evidence },
            budget,
        )
    }

    /// Graph's `security/alerts_v2` under `graph_url`, with tokens from `tokens`.
    pub fn graph(
        http: reqwest::Client,
        graph_url: &Url,
        tokens: Arc<TokenProvider>,
        services: Services,
        budget: Arc<Budget>,
    ) -> Self {
        Self::new(http, graph_url, tokens, Dialect::Graph { services }, budget)
    }

    /// A source of `dialect` under `root`.
    fn new(
        http: reqwest::Client,
        root: &Url,
        tokens: Arc<TokenProvider>,
        dialect: Dialect,
        budget: Arc<Budget>,
    ) -> Self {
        ApiSource {
            http,
            alerts_url: join_path(root, dialect.path()),
            tokens,
            dialect,
            calls: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            waited_ms: AtomicU64::new(0),
            budget,
            deadline: None,
            max_page_bytes: MAX_PAGE_BYTES,
            bodies: BodyBudget::process(),
        }
    }

    /// Caps a page at `bytes` instead of `MAX_PAGE_BYTES` (for tests: the real cap is large).
    pub fn with_page_limit(mut self, bytes: usize) -> Self {
        self.max_page_bytes = bytes;
        self
    }

    /// Nothing waits past `deadline` (the next scheduled poll).
    pub fn with_deadline(mut self, deadline: Option<tokio::time::Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    async fn sleep(&self, d: Duration) -> Result<(), SourceError> {
        // `d` may come from the server: an instant that cannot be represented is past any deadline.
        if let Some(deadline) = self.deadline
            && crate::http::later(tokio::time::Instant::now(), d).is_none_or(|t| t > deadline)
        {
            return Err(SourceError::Deadline { wait: d });
        }
        tokio::time::sleep(d).await;
        self.waited_ms.fetch_add(
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        Ok(())
    }

    /// The query string for a request (public for tests and logs).
    fn query(&self, r: &PageRequest) -> Vec<(&'static str, String)> {
        self.dialect.query(r)
    }

    /// One HTTP attempt: the page `r`, or the page behind a `nextLink`.
    async fn attempt(
        &self,
        r: Request<'_>,
    ) -> Result<Page, (Retry, SourceError, Option<Duration>)> {
        let api = self.dialect.api();
        // Every call checks the deadline, not only every wait: with a large budget no call waits,
        // and a pager the server never lets finish would otherwise run far past the next poll.
        if let Some(deadline) = self.deadline
            && tokio::time::Instant::now() >= deadline
        {
            return Err((
                Retry::Never,
                SourceError::Deadline {
                    wait: Duration::ZERO,
                },
                None,
            ));
        }
        // Budget first: a long wait for the hourly quota must not outlast the token.
        self.budget
            .acquire(self.deadline)
            .await
            .map_err(|e| (Retry::Never, SourceError::Deadline { wait: e.wait }, None))?;
        // Then the first share of memory for the answer: waiting for it is waiting for other
        // answers to finish, before anything is asked (the request timeout does not run yet).
        let mut share = self
            .bodies
            .reserve(FIRST_SHARE, self.deadline)
            .await
            .map_err(|why| (Retry::Never, SourceError::OverBudget { api, why }, None))?;
        let token = self.tokens.token().await.map_err(|e| {
            (
                if e.is_transient() {
                    Retry::Later
                } else {
                    Retry::Never
                },
                e.into(),
                None,
            )
        })?;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut req = match r {
            Request::Page(r) => self.http.get(self.alerts_url.clone()).query(&self.query(r)),
            Request::Next(link) => self.http.get(link.0.clone()),
        };
        if matches!(self.dialect, Dialect::Graph { .. }) {
            // Without it, Graph hides enum members newer than the client's schema behind
            // `unknownFutureValue`: the alert would be stored with less than Graph knows.
            req = req.header("Prefer", "include-unknown-enum-members");
        }
        let resp = req.bearer_auth(token.bearer()).send().await.map_err(|e| {
            (
                classify_transport(&e),
                SourceError::Unavailable {
                    api,
                    attempts: 1,
                    // The URL is in api_url already; its query string is only noise here.
                    last: ServerText::new(&error_chain(&e.without_url())),
                },
                None,
            )
        })?;
        let status = resp.status().as_u16();
        if let Some(location) = redirect_target(&resp) {
            return Err((
                Retry::Never,
                SourceError::Redirected {
                    api,
                    status,
                    location,
                },
                None,
            ));
        }
        let wait = retry_after(resp.headers());
        let served_at = crate::http::server_date(resp.headers());
        let content_type = content_type(&resp);
        if status == 200 {
            let body = read_budgeted(resp, self.max_page_bytes, &mut share)
                .await
                .map_err(|e| match e {
                    BodyError::Cut(reason) => (
                        Retry::Later,
                        SourceError::Malformed {
                            api,
                            detail: ServerText::new(&format!("the body was cut short: {reason}")),
                        },
                        None,
                    ),
                    why @ (BodyError::OverBudget { .. } | BodyError::NoBudget { .. }) => {
                        (Retry::Never, SourceError::OverBudget { api, why }, None)
                    }
                    why => (Retry::Never, SourceError::TooLarge { api, why }, None),
                })?;
            return decode_page_fetched_with(&body, Some(token.bearer()))
                .map(|mut page| {
                    page.served_at = served_at;
                    page.next = page.next_text.take().and_then(|l| self.own_link(&l));
                    page
                })
                .map_err(|e| {
                    // An HTML page in place of JSON: a gateway's hiccup (asked again, it passes) or a
                    // proxy's login page (it does not): one more try tells them apart.
                    let retry = if crate::http::is_html(content_type.as_deref(), &body) {
                        Retry::Once
                    } else {
                        Retry::Later
                    };
                    (
                        retry,
                        SourceError::Malformed {
                            api,
                            detail: ServerText::with_limit(
                                &format!(
                                    "{e} in {} bytes: {}",
                                    body.len(),
                                    describe_body(content_type.as_deref(), &body)
                                ),
                                1000,
                            ),
                        },
                        None,
                    )
                });
        }
        let body = read_error_body(resp).await;
        let (code, message) = defender_error(content_type.as_deref(), &body);
        let retry = classify_status(status);
        if retry == Retry::RenewToken {
            self.tokens.reject(&token).await;
        }
        let advice = self
            .dialect
            .advice(status, code.as_str(), &message.to_string());
        Err((
            retry,
            SourceError::Refused {
                api,
                status,
                code,
                message,
                advice,
            },
            wait,
        ))
    }
}

/// Reads Defender's error body `{"error":{"code","message","target"}}`; any other body (an HTML page
/// from a proxy, plain text) is described by its content type and a clean snippet. Both redacted.
fn defender_error(content_type: Option<&str>, body: &[u8]) -> (ServerText, ServerText) {
    let v: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let err = v.as_ref().and_then(|v| v.get("error"));
    let field = |k: &str| err.and_then(|e| e.get(k)).and_then(|c| c.as_str());
    match (field("code"), field("message")) {
        (Some(c), m) => (
            ServerText::with_limit(c, 80),
            ServerText::new(m.unwrap_or_default()),
        ),
        (None, _) => (
            ServerText::new("(no error code)"),
            ServerText::with_limit(&describe_body(content_type, body), 1000),
        ),
    }
}

impl ApiSource {
    /// Keeps a `nextLink` only when it points at the configured API: same scheme, host and port,
    /// and the alerts path. Anything else is logged and dropped (the page still counts as not the
    /// last), so the token never goes to another host.
    fn own_link(&self, text: &str) -> Option<NextLink> {
        let ours = &self.alerts_url;
        match Url::parse(text) {
            Ok(u)
                if u.scheme() == ours.scheme()
                    && u.host_str() == ours.host_str()
                    && u.port_or_known_default() == ours.port_or_known_default()
                    && u.path() == ours.path()
                    && u.username().is_empty()
                    && u.password().is_none() =>
            {
                Some(NextLink(u))
            }
            _ => {
                tracing::warn!(
                    api = self.dialect.api(),
                    link = %ServerText::with_limit(text, 200),
                    expected = %ours,
                    "The API sent an @odata.nextLink that does not point at the configured API; it is not followed (the token goes only to the configured host)."
                );
                None
            }
        }
    }

    async fn call(&self, request: Request<'_>) -> Result<Page, SourceError> {
        let api = self.dialect.api();
        let mut renewed = false;
        let mut backoff = backoff_schedule();
        let mut attempts = 0u32;
        let mut throttle_logged = false;
        loop {
            attempts += 1;
            let (retry, err, wait) = match self.attempt(request).await {
                Ok(page) => return Ok(page),
                Err(e) => e,
            };
            let throttled = matches!(err, SourceError::Refused { status: 429, .. });
            let retry = match retry {
                Retry::RenewToken if !renewed => {
                    renewed = true;
                    tracing::debug!("The API rejected the token; renewing it once.");
                    continue;
                }
                Retry::RenewToken => Retry::Never,
                Retry::Once if attempts >= 2 => Retry::Never,
                Retry::Once => Retry::Later,
                r => r,
            };
            if retry == Retry::Never {
                return Err(err);
            }
            if throttled {
                // Throttled: wait exactly as long as asked (never less), without using up a retry.
                self.throttled.fetch_add(1, Ordering::Relaxed);
                // Never sooner than asked, and never in a tight loop on `Retry-After: 0`.
                let wait = wait
                    .unwrap_or(DEFAULT_RETRY_AFTER)
                    .max(Duration::from_secs(1));
                if !throttle_logged {
                    tracing::warn!(
                        api,
                        wait_secs = wait.as_secs(),
                        "The API answered 429 (quota spent, perhaps by another tool on this app); waiting as asked."
                    );
                    throttle_logged = true;
                }
                self.sleep(wait).await?;
                continue;
            }
            let Some(delay) = backoff.next() else {
                return Err(match err {
                    // A sign-in failure is the sign-in's, not the API's: its own message says so.
                    e @ (SourceError::Malformed { .. } | SourceError::Auth(_)) => e,
                    SourceError::Unavailable { last, .. } => SourceError::Unavailable {
                        api,
                        attempts,
                        last,
                    },
                    SourceError::Refused {
                        status,
                        code,
                        message,
                        ..
                    } => SourceError::Unavailable {
                        api,
                        attempts,
                        last: ServerText::with_limit(
                            &format!("HTTP {status} {code}: {message}"),
                            1000,
                        ),
                    },
                    e => e,
                });
            };
            // A server that says when to come back is believed (never sooner).
            let delay = wait.map_or(delay, |w| w.max(delay));
            tracing::warn!(
                attempt = attempts,
                wait_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %err,
                "API call failed; retrying."
            );
            self.sleep(delay).await?;
        }
    }
}

/// What one call asks for.
#[derive(Clone, Copy)]
enum Request<'a> {
    /// A page by its query.
    Page(&'a PageRequest),
    /// The page behind a `nextLink` (already checked to be ours).
    Next(&'a NextLink),
}

impl AlertSource for ApiSource {
    fn name(&self) -> &'static str {
        match self.dialect {
            Dialect::Mde { .. } => "mde",
            Dialect::Graph { .. } => "graph",
        }
    }

    async fn fetch(&self, request: &PageRequest) -> Result<Page, SourceError> {
        self.call(Request::Page(request)).await
    }

    async fn follow(&self, link: &NextLink) -> Result<Page, SourceError> {
        self.call(Request::Next(link)).await
    }

    fn services(&self) -> String {
        match &self.dialect {
            Dialect::Mde { .. } => "microsoftDefenderForEndpoint".to_owned(),
            Dialect::Graph {
                services: Services::All,
            } => "all".to_owned(),
            Dialect::Graph {
                services: Services::Only(list),
            } => {
                let mut l = list.clone();
                l.sort_unstable();
                l.join(",")
            }
        }
    }

    fn max_skip(&self) -> u32 {
        match self.dialect {
            Dialect::Mde { .. } => u32::MAX,
            Dialect::Graph { .. } => super::graph::MAX_SKIP,
        }
    }

    fn throttled(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    fn take_unsaved_calls(&self) -> Vec<std::time::SystemTime> {
        self.budget.take_unsaved()
    }

    fn waited(&self) -> Duration {
        Duration::from_millis(self.waited_ms.load(Ordering::Relaxed)) + self.budget.waited()
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defender_error_body_is_read() {
        let (c, m) = defender_error(
            Some("application/json"),
            br#"{"error":{"code":"Forbidden","message":"no","target":"x"}}"#,
        );
        assert_eq!((c.as_str(), m.as_str()), ("Forbidden", "no"));
        let (c, m) = defender_error(
            Some("text/html"),
            b"<html>\r\n<body>Please sign in to the proxy</body></html>",
        );
        assert_eq!(c.as_str(), "(no error code)");
        assert!(m.as_str().contains("text/html"), "{m}");
        assert!(m.as_str().contains("Please sign in to the proxy"), "{m}");
        assert!(m.as_str().contains("captive portal"), "{m}");
        assert!(!m.as_str().contains('\r'), "{m}");
    }
}
