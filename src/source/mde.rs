//! Defender for Endpoint's `GET /api/alerts`.
//!
//! Builds the OData query (times as unquoted literals with seven fractional digits, so that the
//! filter's instant is exactly the stored one), sends it with the tenant's token, and turns every
//! answer into a [`Page`] or a [`SourceError`] a person can act on.
//!
//! Every HTTP attempt first takes a slot from the tenant's [`Budget`], so the client never trips
//! Defender's quotas on its own. Transient failures (network, 5xx, 408, a body cut short or not
//! JSON) are retried with capped exponential backoff (backon's schedule) and full jitter; a 429
//! waits exactly its `Retry-After` (never less) and does not use up a retry, so a throttled
//! backfill finishes in the same poll, just later; a 401 renews the token once. Nothing waits past
//! the poll's deadline (the next scheduled poll).
//!
//! The answer is untrusted: a redirect is an error (never followed: the token would go along, and
//! a foreign host's answer would be stored as alerts), the body is read in chunks up to
//! [`MAX_PAGE_BYTES`] (error bodies up to a few KB), a `Retry-After` is clamped, and every piece of
//! server text that reaches an error is redacted ([`ServerText`]).
//!
//! `@odata.nextLink` is not followed (Microsoft does not document it for alerts, and reports show
//! it looping), but it is heeded: a page that carries one is never taken for the last page.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::BackoffBuilder;
use rand::Rng;
use url::Url;

use super::{AlertSource, Bound, Created, Page, PageRequest, SourceError, decode_page};
use crate::auth::TokenProvider;
use crate::budget::Budget;
use crate::http::{
    BodyError, MAX_PAGE_BYTES, Retry, classify_status, classify_transport, content_type,
    describe_body, read_body, read_error_body, redirect_target, retry_after,
};
use crate::http::{error_chain, join_path};
use crate::redact::ServerText;

const API: &str = "Defender for Endpoint";

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

/// The MDE alerts source for one tenant.
pub struct MdeSource {
    http: reqwest::Client,
    alerts_url: Url,
    tokens: Arc<TokenProvider>,
    expand_evidence: bool,
    calls: AtomicU64,
    throttled: AtomicU64,
    waited_ms: AtomicU64,
    budget: Arc<Budget>,
    deadline: Option<tokio::time::Instant>,
    max_page_bytes: usize,
}

impl MdeSource {
    /// A source calling `api_url` with tokens from `tokens`.
    pub fn new(
        http: reqwest::Client,
        api_url: &Url,
        tokens: Arc<TokenProvider>,
        expand_evidence: bool,
        budget: Arc<Budget>,
    ) -> Self {
        MdeSource {
            http,
            alerts_url: join_path(api_url, "api/alerts"),
            tokens,
            expand_evidence,
            calls: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            waited_ms: AtomicU64::new(0),
            budget,
            deadline: None,
            max_page_bytes: MAX_PAGE_BYTES,
        }
    }

    /// Caps a page at `bytes` instead of [`MAX_PAGE_BYTES`] (for tests: the real cap is large).
    pub fn with_page_limit(mut self, bytes: usize) -> Self {
        self.max_page_bytes = bytes;
        self
    }

    /// Nothing waits past `deadline` (the next scheduled poll).
    pub fn with_deadline(mut self, deadline: Option<tokio::time::Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// The token provider this source uses.
    pub fn tokens(&self) -> &Arc<TokenProvider> {
        &self.tokens
    }

    /// The budget this source spends.
    pub fn budget(&self) -> &Arc<Budget> {
        &self.budget
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
    pub fn query(&self, r: &PageRequest) -> Vec<(&'static str, String)> {
        let mut filter = match r.bound {
            Bound::AtOrAfter(t) => format!("lastUpdateTime ge {}", t.to_api_string()),
            Bound::After(t) => format!("lastUpdateTime gt {}", t.to_api_string()),
            Bound::Exactly(t) => format!("lastUpdateTime eq {}", t.to_api_string()),
        };
        if let Some(t) = r.before {
            filter.push_str(&format!(" and lastUpdateTime lt {}", t.to_api_string()));
        }
        match r.created {
            Some(Created::Within(a, b)) => {
                if let Some(a) = a {
                    filter.push_str(&format!(" and alertCreationTime ge {}", a.to_api_string()));
                }
                if let Some(b) = b {
                    filter.push_str(&format!(" and alertCreationTime lt {}", b.to_api_string()));
                }
                if a.is_none() && b.is_none() {
                    filter.push_str(" and alertCreationTime ne null");
                }
            }
            Some(Created::Missing) => filter.push_str(" and alertCreationTime eq null"),
            None => {}
        }
        let mut q = vec![("$filter", filter)];
        if r.ordered {
            q.push(("$orderby", "lastUpdateTime asc".to_owned()));
        }
        q.push(("$top", r.top.to_string()));
        if r.skip > 0 {
            q.push(("$skip", r.skip.to_string()));
        }
        if self.expand_evidence {
            q.push(("$expand", "evidence".to_owned()));
        }
        q
    }

    async fn attempt(
        &self,
        r: &PageRequest,
    ) -> Result<Page, (Retry, SourceError, Option<Duration>)> {
        // Budget first: a long wait for the hourly quota must not outlast the token.
        self.budget
            .acquire(self.deadline)
            .await
            .map_err(|e| (Retry::Never, SourceError::Deadline { wait: e.wait }, None))?;
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
        let resp = self
            .http
            .get(self.alerts_url.clone())
            .query(&self.query(r))
            .bearer_auth(token.bearer())
            .send()
            .await
            .map_err(|e| {
                (
                    classify_transport(&e),
                    SourceError::Unavailable {
                        api: API,
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
                    api: API,
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
            let body = read_body(resp, self.max_page_bytes)
                .await
                .map_err(|e| match e {
                    BodyError::Cut(reason) => (
                        Retry::Later,
                        SourceError::Malformed {
                            api: API,
                            detail: ServerText::new(&format!("the body was cut short: {reason}")),
                        },
                        None,
                    ),
                    why => (Retry::Never, SourceError::TooLarge { api: API, why }, None),
                })?;
            return decode_page(&body)
                .map(|mut page| {
                    page.served_at = served_at;
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
                            api: API,
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
        let hint = match (status, code.as_str()) {
            (401, _) => " — the token was rejected even after renewal; check the app's permissions and that tenant_id is right".to_owned(),
            (403, _) => " — the app lacks the WindowsDefenderATP application permission Alert.Read.All (or Alert.ReadWrite.All) with admin consent, or the token's audience is not https://api.securitycenter.microsoft.com".to_owned(),
            (404, _) => " — check api_url: the alerts API lives at /api/alerts on the Defender API host".to_owned(),
            (429, _) => " — the tenant's API quota (100 calls/min, 1,500/h per app) is spent; another tool may share the app".to_owned(),
            _ => String::new(),
        };
        Err((
            retry,
            SourceError::Refused {
                api: API,
                status,
                code,
                message,
                hint,
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

impl AlertSource for MdeSource {
    fn name(&self) -> &'static str {
        "mde"
    }

    async fn fetch(&self, request: &PageRequest) -> Result<Page, SourceError> {
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
                        wait_secs = wait.as_secs(),
                        "Defender answered 429 (quota spent, perhaps by another tool on this app); waiting as asked."
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
                        api: API,
                        attempts,
                        last,
                    },
                    SourceError::Refused {
                        status,
                        code,
                        message,
                        ..
                    } => SourceError::Unavailable {
                        api: API,
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
    use crate::time::ApiTime;

    #[test]
    fn query_uses_seven_digit_literals_and_bounds() {
        let tenant = crate::config::Config::parse(
            "[[tenants]]\nname = \"t\"\ntenant_id = \"contoso.com\"\nclient_id = \"00000000-0000-0000-0000-000000000000\"\nclient_secret_env = \"X\"\n",
            std::path::Path::new("c.toml"),
        )
        .unwrap()
        .tenants
        .remove(0);
        let http = reqwest::Client::new();
        // SAFETY-free: the provider only reads the secret at construction, from this test's own var.
        unsafe { std::env::set_var("X", "s") };
        let tokens = Arc::new(TokenProvider::new(http.clone(), &tenant).unwrap());
        let budget = Arc::new(Budget::new(100, 1500, []));
        let src = MdeSource::new(http, &tenant.api_url, tokens, true, budget);
        let t = ApiTime::parse("2024-05-01T10:00:00.5Z").unwrap();
        let q = src.query(&PageRequest {
            bound: Bound::AtOrAfter(t),
            before: Some(t.plus(Duration::from_secs(1))),
            created: None,
            ordered: true,
            top: 500,
            skip: 0,
        });
        assert_eq!(
            q,
            vec![
                ("$filter", "lastUpdateTime ge 2024-05-01T10:00:00.5000000Z and lastUpdateTime lt 2024-05-01T10:00:01.5000000Z".to_owned()),
                ("$orderby", "lastUpdateTime asc".to_owned()),
                ("$top", "500".to_owned()),
                ("$expand", "evidence".to_owned()),
            ]
        );
        let q = src.query(&PageRequest {
            bound: Bound::Exactly(t),
            before: None,
            created: Some(Created::Missing),
            ordered: false,
            top: 10,
            skip: 20,
        });
        assert_eq!(
            q[0].1,
            "lastUpdateTime eq 2024-05-01T10:00:00.5000000Z and alertCreationTime eq null"
        );
        assert!(!q.iter().any(|(k, _)| *k == "$orderby"));
        assert!(q.contains(&("$skip", "20".to_owned())));
    }

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
