//! Where alerts come from: Defender for Endpoint's `/api/alerts` (`mde`, which Microsoft's
//! MC1220762 says stops on 2027-02-01) or Microsoft Graph's `security/alerts_v2` ([`graph`]), both over one
//! HTTP client ([`client`]), and a scripted in-memory source for tests (`fake`, with the `test-support` feature). Which of the two
//! a tenant reads is [`route`]'s decision.
//!
//! A source answers one question — "give me a page of alerts whose last update is within this
//! bound, oldest first" — and knows nothing of cursors or the store. The paging strategy that loses
//! nothing lives in [`crate::poll`]; it checks the order of every page, because neither API
//! documents `$orderby` for alerts.

pub mod client;
#[cfg(any(test, feature = "test-support"))]
pub mod fake;
pub mod graph;
mod mde;
pub mod route;

use crate::alert::time::ApiTime;
use crate::alert::{Alert, Envelope, Invalid};
use crate::auth::AuthError;
use crate::redact::ServerText;

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

impl PageRequest {
    /// The `$filter` on time both APIs share, in their own field names (`lastUpdateTime` and
    /// `alertCreationTime`, or Graph's `lastUpdateDateTime` and `createdDateTime`); each API adds
    /// its own clauses after it.
    fn time_filter(&self, updated: &str, created: &str) -> String {
        let mut filter = match self.bound {
            Bound::AtOrAfter(t) => format!("{updated} ge {}", t.to_api_string()),
            Bound::After(t) => format!("{updated} gt {}", t.to_api_string()),
            Bound::Exactly(t) => format!("{updated} eq {}", t.to_api_string()),
        };
        if let Some(t) = self.before {
            filter.push_str(&format!(" and {updated} lt {}", t.to_api_string()));
        }
        match self.created {
            Some(Created::Within(a, b)) => {
                if let Some(a) = a {
                    filter.push_str(&format!(" and {created} ge {}", a.to_api_string()));
                }
                if let Some(b) = b {
                    filter.push_str(&format!(" and {created} lt {}", b.to_api_string()));
                }
                if a.is_none() && b.is_none() {
                    filter.push_str(&format!(" and {created} ne null"));
                }
            }
            Some(Created::Missing) => filter.push_str(&format!(" and {created} eq null")),
            None => {}
        }
        filter
    }
}

/// One element of a page that is not a usable alert.
#[derive(Debug, Clone)]
pub(crate) struct Rejected {
    /// Its position on the page.
    pub(crate) index: usize,
    /// Why.
    pub(crate) why: Invalid,
    /// The element as received (known secrets scrubbed), kept by the store.
    pub(crate) raw: Box<str>,
}

/// A page as received.
#[derive(Debug, Default)]
pub struct Page {
    /// The valid alerts, in the order received.
    pub(crate) alerts: Vec<Alert>,
    /// Elements that were not valid alerts.
    pub(crate) rejected: Vec<Rejected>,
    /// How many elements the page had (valid or not): a page is short when this is below `$top`.
    pub(crate) received: usize,
    /// The server said there is more (`@odata.nextLink`): the page is not the end, however short.
    pub(crate) more: bool,
    /// The server's clock when it answered (its `Date` header), when it sent one: the pager's
    /// settled watermark follows the server's clock, not only this machine's.
    pub(crate) served_at: Option<ApiTime>,
    /// The `@odata.nextLink`, when it points at the configured API (checked by the source).
    pub(crate) next: Option<NextLink>,
    /// The `@odata.nextLink` as sent, before that check.
    pub(crate) next_text: Option<String>,
}

/// An `@odata.nextLink` that points at the configured API (scheme, host, port and path): an
/// opaque URL the pager may follow; the token goes nowhere else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextLink(pub(crate) url::Url);

/// Why a page could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// No token: the sign-in (Entra ID) failed, not the API; its message says so.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The API refused the request for good (400, 403, 404, or 401 after a fresh token).
    #[error("{api} answered HTTP {status} {code}: {message}{}", advice.meaning_said())]
    Refused {
        /// Which API.
        api: &'static str,
        /// HTTP status.
        status: u16,
        /// The API's error code (`Forbidden`, `ODataError`, …), redacted.
        code: ServerText,
        /// The API's message (or a description of a body that is not its error JSON), redacted.
        message: ServerText,
        /// What the answer means and what to do, when we know.
        advice: Advice,
    },
    /// The body of a 200 response was not a valid page (truncated, not JSON, no `value`).
    #[error("{api} sent a page that is not valid JSON ({detail}); nothing from it was stored")]
    Malformed {
        /// Which API.
        api: &'static str,
        /// What was wrong, with a snippet of the body (redacted).
        detail: ServerText,
    },
    /// The API answered with a redirect, which is never followed.
    #[error(
        "{api} answered HTTP {status}, a redirect to {location}; the alerts APIs never redirect, so it was not followed (the token went nowhere else and nothing was stored)"
    )]
    Redirected {
        /// Which API.
        api: &'static str,
        /// HTTP status (3xx).
        status: u16,
        /// Where it pointed (redacted).
        location: ServerText,
    },
    /// The page was larger than `crate::http::MAX_PAGE_BYTES`.
    #[error("{api} sent a page too large to read: {why}; nothing from it was stored")]
    TooLarge {
        /// Which API.
        api: &'static str,
        /// The limit and what was seen.
        why: crate::http::BodyError,
    },
    /// The page did not fit in the memory all answers being read at once share
    /// ([`crate::http::BODY_BUDGET_BYTES`]); the other polls go on.
    #[error(
        "{api}'s page could not be read: {why}; nothing from it was stored, and the next poll tries again"
    )]
    OverBudget {
        /// Which API.
        api: &'static str,
        /// The budget, and what this answer held.
        why: crate::http::BodyError,
    },
    /// Waiting (for budget, `Retry-After` or a backoff) would pass the poll's deadline.
    #[error("stopped before the deadline (the next scheduled poll): the next call could only be made in {}s", .wait.as_secs())]
    Deadline {
        /// The wait that did not fit.
        wait: std::time::Duration,
    },
    /// Transient failures did not clear within the retries.
    #[error(
        "{api} is not answering properly ({attempts} attempts; the last: {last}); the next poll tries again"
    )]
    Unavailable {
        /// Which API.
        api: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last failure, without the API's name (redacted).
        last: ServerText,
    },
}

/// What an API's refusal means and what to do about it: the meaning is part of the error's
/// message, the fix is its `SourceError::hint`, so that each is said once wherever the error is
/// shown (a log line, `status`, the command's own output).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advice {
    /// What the answer means, when we know ("the app lacks SecurityAlert.Read.All").
    meaning: Option<String>,
    /// What to do about it.
    pub(crate) fix: Option<String>,
}

impl Advice {
    /// Advice with both parts.
    fn new(meaning: impl Into<String>, fix: impl Into<String>) -> Advice {
        Advice {
            meaning: Some(meaning.into()),
            fix: Some(fix.into()),
        }
    }

    /// The meaning as the tail of the error's message (` — …`), or nothing.
    fn meaning_said(&self) -> String {
        self.meaning
            .as_deref()
            .map(|m| format!(" — {m}"))
            .unwrap_or_default()
    }
}

impl SourceError {
    /// What the admin can do about it, when there is something to do: printed once, as
    /// `fix: …`, after the error (and kept beside it in the run's row, which `status` shows).
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            SourceError::Auth(e) => e.hint(),
            SourceError::Refused { advice, .. } => advice.fix.clone(),
            // The next poll reads it again; nothing on this side makes a server send valid JSON.
            SourceError::Malformed { .. } | SourceError::Deadline { .. } => None,
            SourceError::Redirected { .. } => Some(
                "check api_url (the Defender API host, e.g. https://api.securitycenter.microsoft.com) or graph_url (e.g. https://graph.microsoft.com) and any proxy in between".into(),
            ),
            SourceError::TooLarge { .. } => Some(
                "lower poll.page_size (fewer alerts per page), or set poll.expand_evidence = false; a real page of 10,000 alerts with evidence is about 32 MiB, a quarter of the limit, so a proxy or server may be broken".into(),
            ),
            SourceError::OverBudget { .. } => Some(
                "lower [poll] concurrency or poll.page_size; sixteen pages of 10,000 alerts with evidence fit, so answers this large at once usually mean a broken proxy or server in front of several tenants".into(),
            ),
            SourceError::Unavailable { .. } => Some(
                "check api_url (graph_url for a Graph tenant) and that this machine can reach it (DNS, firewall, [http] proxy or HTTPS_PROXY), and Microsoft's service health".into(),
            ),
        }
    }
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
    /// Fetches the page behind a `nextLink` this source returned.
    fn follow(
        &self,
        link: &NextLink,
    ) -> impl std::future::Future<Output = Result<Page, SourceError>> + Send {
        let _ = link;
        std::future::ready(Err(SourceError::Malformed {
            api: "this source",
            detail: ServerText::new("it sends no nextLink"),
        }))
    }
    /// The Defender products this source reads, as Graph names them: `all`, or the names
    /// joined by commas in a stable order. The MDE API reads endpoint alerts only.
    fn services(&self) -> String {
        "microsoftDefenderForEndpoint".to_owned()
    }
    /// The largest `$skip` the API accepts (Graph: 500; above, the pager follows `nextLink`).
    fn max_skip(&self) -> u32 {
        u32::MAX
    }
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

/// Turns the body of a `200` answer into a [`Page`]: the envelope (`value`, `@odata.nextLink`) is
/// parsed once, each element on its own, so one bad element costs only itself. Any bytes may come
/// in (see the proptest below): the answer is an error or a page, never a panic.
#[cfg(test)]
fn decode_page(body: &[u8]) -> Result<Page, serde_json::Error> {
    decode_page_fetched_with(body, None)
}

/// `decode_page` of a page fetched with `token`, which is scrubbed from the alerts too: a
/// service of many tenants remembers only the newest tokens it was issued, and a server that
/// echoes one echoes the one it was sent.
fn decode_page_fetched_with(body: &[u8], token: Option<&str>) -> Result<Page, serde_json::Error> {
    let env: Envelope<'_> = serde_json::from_slice(body)?;
    let also = token.map(crate::redact::Also::new);
    let mut page = parse_elements(env.value, also.as_ref());
    page.more = env.next_link.as_ref().is_some_and(|v| !v.is_null());
    page.next_text = match env.next_link {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    };
    Ok(page)
}

/// Splits a page's elements into alerts and rejects; `also` (the page's token) is scrubbed with
/// the known secrets.
fn parse_elements<'a>(
    elements: impl IntoIterator<Item = &'a serde_json::value::RawValue>,
    also: Option<&crate::redact::Also>,
) -> Page {
    let mut page = Page::default();
    for (index, el) in elements.into_iter().enumerate() {
        page.received += 1;
        // A server that echoes a known secret or token into alert data (a title, a comment) must
        // not get it into the store or an export: known values only, never patterns, since a
        // command line with someone else's token is evidence.
        let text = crate::redact::scrub_known_and(el.get(), also);
        match Alert::parse(&text) {
            Ok(a) => page.alerts.push(a),
            Err(why) => page.rejected.push(Rejected {
                index,
                why,
                raw: text.into(),
            }),
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// A server that echoes the request's token into an alert's title would put it into the store
    /// and the CSV. Known secrets and tokens are scrubbed from alert text; other
    /// text (a command line with a stranger's token, which is evidence) is kept.
    #[test]
    fn known_secrets_echoed_into_alert_data_are_scrubbed() {
        crate::redact::register_token("eyJhbGciOi.echoed-into-an-alert.SECRETTOKEN123456");
        let body = br#"{"value":[{"id":"da1","lastUpdateTime":"2026-11-01T00:00:00Z","title":"Bearer eyJhbGciOi.echoed-into-an-alert.SECRETTOKEN123456","commandLine":"curl -H 'Authorization: Bearer attacker-token'"}]}"#;
        let page = decode_page(body).unwrap();
        let raw = &page.alerts[0].raw;
        assert!(!raw.contains("SECRETTOKEN123456"), "{raw}");
        assert!(raw.contains("attacker-token"), "evidence is kept: {raw}");
    }

    /// Any JSON value, nested up to `depth`, with numbers at the edges of what JSON tools accept.
    fn any_json(depth: u32) -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            Just(json!(1e308)),
            Just(json!(-1e308)),
            Just(json!(u64::MAX)),
            ".{0,12}".prop_map(Value::String),
            Just(json!("2024-05-01T10:00:00Z")),
        ];
        leaf.prop_recursive(depth, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z@.]{1,10}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const KNOWN: [&str; 6] = [
        "id",
        "lastUpdateTime",
        "status",
        "severity",
        "category",
        "alertCreationTime",
    ];

    /// An element with odd values for the known fields: it may or may not be a valid alert.
    fn odd_element() -> impl Strategy<Value = Value> {
        (
            prop::collection::vec((0..KNOWN.len(), any_json(3)), 0..8),
            any_json(2),
        )
            .prop_map(|(fields, extra)| {
                let mut m = serde_json::Map::new();
                for (k, v) in fields {
                    m.insert(KNOWN[k].to_owned(), v);
                }
                m.insert("extra".into(), extra);
                Value::Object(m)
            })
    }

    /// A valid alert (string `id`, readable `lastUpdateTime`) whose other fields, known or not, are
    /// anything at all.
    fn valid_alert(n: usize) -> impl Strategy<Value = Value> {
        (odd_element(), 0u32..2_000_000_000).prop_map(move |(mut v, secs)| {
            let t = chrono::DateTime::from_timestamp(i64::from(secs), 0).unwrap();
            v["id"] = json!(format!("da{n}-\u{e9}\"x"));
            v["lastUpdateTime"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
            v
        })
    }

    fn page_of(valid: &[Value], junk: &[Value], junk_first: bool, link: bool) -> Vec<u8> {
        let mut value: Vec<Value> = Vec::new();
        let mut j = junk.iter();
        for v in valid {
            if junk_first && let Some(x) = j.next() {
                value.push(x.clone());
            }
            value.push(v.clone());
        }
        value.extend(j.cloned());
        let mut env = json!({ "@odata.context": "x", "value": value });
        if link {
            env["@odata.nextLink"] = json!("https://next");
        }
        serde_json::to_vec(&env).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_page(&body);
        }

        #[test]
        fn arbitrary_json_never_panics(v in any_json(6)) {
            let _ = decode_page(&serde_json::to_vec(&v).unwrap());
            let _ = decode_page(&serde_json::to_vec(&json!({"value": [v]})).unwrap());
        }

        #[test]
        fn valid_alerts_survive_odd_neighbours(
            valid in (0usize..6).prop_flat_map(|n| (0..n).map(valid_alert).collect::<Vec<_>>()),
            junk in prop::collection::vec(prop_oneof![odd_element(), any_json(4)], 0..6),
            junk_first in any::<bool>(),
            link in any::<bool>(),
        ) {
            let body = page_of(&valid, &junk, junk_first, link);
            let page = decode_page(&body).unwrap();
            prop_assert_eq!(page.received, valid.len() + junk.len());
            prop_assert_eq!(page.alerts.len() + page.rejected.len(), page.received);
            prop_assert_eq!(page.more, link);
            for v in &valid {
                let id = v["id"].as_str().unwrap();
                let got = page.alerts.iter().find(|a| a.id == id);
                prop_assert!(got.is_some(), "valid alert {} was lost", id);
                // Verbatim: the text as sent, not a re-serialisation.
                prop_assert_eq!(&*got.unwrap().raw, serde_json::to_string(v).unwrap());
            }
        }
    }

    #[test]
    fn deep_nesting_and_huge_numbers_are_not_fatal() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let _ = decode_page(deep.as_bytes());
        let body = format!(
            r#"{{"value":[{{"id":"a","lastUpdateTime":"2024-01-01T00:00:00Z","n":99999999999999999999,"x":{}{}}}, {{"id":"b","lastUpdateTime":"2024-01-01T00:00:00Z"}}]}}"#,
            "[".repeat(5000),
            "]".repeat(5000)
        );
        let page = decode_page(body.as_bytes()).unwrap();
        assert_eq!(page.received, 2);
        assert!(page.alerts.iter().any(|a| a.id == "b"));
    }

    /// A Graph alert with one number out of f64's range anywhere (an evidence field, `additionalData`):
    /// JSON allows it, and the alert is otherwise valid. It must be stored as an alert, not set aside
    /// as "not a JSON object" while the cursor moves past it.
    #[test]
    fn a_huge_number_in_an_unread_field_does_not_reject_the_alert() {
        let body = br#"{"value":[{"id":"da1","lastUpdateDateTime":"2026-11-01T00:00:00Z","status":"new","additionalData":{"score":1e400}}]}"#;
        let page = decode_page(body).expect("the envelope is valid JSON");
        assert_eq!(
            page.alerts.len(),
            1,
            "rejected: {:?}",
            page.rejected
                .iter()
                .map(|r| r.why.to_string())
                .collect::<Vec<_>>()
        );
    }

    /// Graph types every field; a hostile or buggy answer may not. None of these may panic, and an
    /// alert with a usable id and lastUpdateDateTime is kept whatever its other fields hold.
    #[test]
    fn wrong_types_in_every_field_the_product_reads() {
        let odd = [
            serde_json::json!(null),
            serde_json::json!(true),
            serde_json::json!(1e308),
            serde_json::json!(-1),
            serde_json::json!(u64::MAX),
            serde_json::json!([1, [2]]),
            serde_json::json!({"a": {"b": []}}),
            serde_json::json!(""),
            serde_json::json!("\u{0}=1+2"),
        ];
        for field in [
            "status",
            "severity",
            "serviceSource",
            "evidence",
            "createdDateTime",
            "incidentId",
            "classification",
            "determination",
            "@odata.type",
            "title",
        ] {
            for v in &odd {
                let mut a =
                    serde_json::json!({"id": "da1", "lastUpdateDateTime": "2026-11-01T00:00:00Z"});
                a[field] = v.clone();
                let body = serde_json::to_vec(&serde_json::json!({"value": [a.clone()]})).unwrap();
                let page = decode_page(&body).unwrap();
                assert_eq!(page.alerts.len(), 1, "{field} = {v}");
                let _ = crate::alert::graph::to_mde_shape(&a);
            }
        }
    }

    /// An `@odata.nextLink` of the wrong type (`true`, a number, an object) must not make the whole
    /// page undecodable (every valid alert on it refused, retried, and the poll failed, each poll):
    /// the link is only a hint, and a page with an unusable link is kept.
    #[test]
    fn a_next_link_of_the_wrong_type_does_not_refuse_the_page() {
        for v in [
            serde_json::json!(true),
            serde_json::json!(1),
            serde_json::json!({"href": "x"}),
        ] {
            let body = serde_json::to_vec(&serde_json::json!({"value": [{"id": "da1", "lastUpdateDateTime": "2026-11-01T00:00:00Z"}], "@odata.nextLink": v})).unwrap();
            let page = decode_page(&body);
            assert!(page.is_ok(), "nextLink = {v}: {:?}", page.err());
        }
    }
}
