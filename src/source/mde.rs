//! Defender for Endpoint's `GET /api/alerts`.
//!
//! Builds the OData query (times as unquoted literals with seven fractional digits, so that the
//! filter's instant is exactly the stored one), sends it with the tenant's token, and turns every
//! answer into a [`Page`] or a [`SourceError`] a person can act on. Transient failures (network,
//! 5xx, 408, 429, a body cut short) are retried here with capped exponential backoff and full
//! jitter, honouring `Retry-After`; a 401 renews the token once.
//!
//! `@odata.nextLink` is ignored on purpose: Microsoft does not document it for alerts, and the
//! keyset pager in [`crate::poll`] never needs it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng;
use url::Url;

use super::{AlertSource, Bound, Page, PageRequest, SourceError, parse_elements};
use crate::alert::Envelope;
use crate::auth::{TokenProvider, error_chain, join_path, snippet};
use crate::http::{Retry, classify_status, classify_transport, retry_after};

const API: &str = "Defender for Endpoint";

/// How often one page is tried before the poll fails.
const MAX_ATTEMPTS: u32 = 6;
/// The first backoff; doubled per attempt, capped at [`MAX_BACKOFF`], fully jittered.
const BASE_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured within one poll; longer waits fail the poll instead, so it
/// never runs into the next scheduled one.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// The MDE alerts source for one tenant.
pub struct MdeSource {
    http: reqwest::Client,
    alerts_url: Url,
    tokens: Arc<TokenProvider>,
    expand_evidence: bool,
    calls: AtomicU64,
}

impl MdeSource {
    /// A source calling `api_url` with tokens from `tokens`.
    pub fn new(
        http: reqwest::Client,
        api_url: &Url,
        tokens: Arc<TokenProvider>,
        expand_evidence: bool,
    ) -> Self {
        MdeSource {
            http,
            alerts_url: join_path(api_url, "api/alerts"),
            tokens,
            expand_evidence,
            calls: AtomicU64::new(0),
        }
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
                        last: error_chain(&e),
                    },
                    None,
                )
            })?;
        let status = resp.status().as_u16();
        let wait = retry_after(resp.headers());
        let body = resp.bytes().await.map_err(|e| {
            (
                Retry::Later,
                SourceError::Malformed {
                    api: API,
                    detail: format!("the body was cut short: {}", error_chain(&e)),
                },
                None,
            )
        })?;
        if status == 200 {
            let env: Envelope<'_> = serde_json::from_slice(&body).map_err(|e| {
                (
                    Retry::Later,
                    SourceError::Malformed {
                        api: API,
                        detail: format!("{e} in {} bytes", body.len()),
                    },
                    None,
                )
            })?;
            return Ok(parse_elements(env.value));
        }
        let text = String::from_utf8_lossy(&body);
        let (code, message) = defender_error(&text);
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

/// Reads Defender's error body `{"error":{"code","message","target"}}`.
fn defender_error(body: &str) -> (String, String) {
    let v: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let err = v.as_ref().and_then(|v| v.get("error"));
    let field = |k: &str| {
        err.and_then(|e| e.get(k))
            .and_then(|c| c.as_str())
            .map(str::to_owned)
    };
    match (field("code"), field("message")) {
        (Some(c), m) => (c, m.unwrap_or_default()),
        (None, _) => ("(no error code)".to_owned(), snippet(body)),
    }
}

impl AlertSource for MdeSource {
    fn name(&self) -> &'static str {
        "mde"
    }

    async fn fetch(&self, request: &PageRequest) -> Result<Page, SourceError> {
        let mut renewed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (retry, err, wait) = match self.attempt(request).await {
                Ok(page) => return Ok(page),
                Err(e) => e,
            };
            let retry = match retry {
                Retry::RenewToken if !renewed => {
                    renewed = true;
                    tracing::debug!("The API rejected the token; renewing it once.");
                    continue;
                }
                Retry::RenewToken => Retry::Never,
                r => r,
            };
            if retry == Retry::Never {
                return Err(err);
            }
            if attempt >= MAX_ATTEMPTS {
                return Err(match err {
                    e @ SourceError::Malformed { .. } => e,
                    e => SourceError::Unavailable {
                        api: API,
                        attempts: attempt,
                        last: e.to_string(),
                    },
                });
            }
            let backoff = match wait {
                Some(w) if w > MAX_RETRY_AFTER => {
                    return Err(SourceError::Unavailable {
                        api: API,
                        attempts: attempt,
                        last: format!(
                            "asked to wait {}s, longer than a poll may wait: {err}",
                            w.as_secs()
                        ),
                    });
                }
                Some(w) => w,
                None => {
                    let cap = BASE_BACKOFF
                        .saturating_mul(1 << (attempt - 1).min(16))
                        .min(MAX_BACKOFF);
                    rand::rng().random_range(Duration::ZERO..=cap)
                }
            };
            tracing::warn!(
                attempt,
                wait_ms = backoff.as_millis() as u64,
                error = %err,
                "API call failed; retrying."
            );
            tokio::time::sleep(backoff).await;
        }
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
        let src = MdeSource::new(http, &tenant.api_url, tokens, true);
        let t = ApiTime::parse("2024-05-01T10:00:00.5Z").unwrap();
        let q = src.query(&PageRequest {
            bound: Bound::AtOrAfter(t),
            before: Some(t.plus(Duration::from_secs(1))),
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
            ordered: false,
            top: 10,
            skip: 20,
        });
        assert_eq!(q[0].1, "lastUpdateTime eq 2024-05-01T10:00:00.5000000Z");
        assert!(!q.iter().any(|(k, _)| *k == "$orderby"));
        assert!(q.contains(&("$skip", "20".to_owned())));
    }

    #[test]
    fn defender_error_body_is_read() {
        let (c, m) =
            defender_error(r#"{"error":{"code":"Forbidden","message":"no","target":"x"}}"#);
        assert_eq!((c.as_str(), m.as_str()), ("Forbidden", "no"));
        let (c, _) = defender_error("<html>");
        assert_eq!(c, "(no error code)");
    }
}
