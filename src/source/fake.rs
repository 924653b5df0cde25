//! An in-memory [`AlertSource`] that answers [`PageRequest`]s exactly as the API's filter, order,
//! `$top` and `$skip` say, over a world the test changes between calls: the pager's test double.
//!
//! It is built for the unit tests and, with the `test-support` feature, for the integration
//! tests; a release build has none of it. Its hazards are the ones that matter to the pager: alerts that
//! move while pages are read, alerts that become visible late, many alerts at one instant, odd
//! creation times, `$orderby` refused or ignored, and the hostile servers of [`Hostile`]: every
//! way a server can depart from Graph's documented query surface that the pager must survive.

use std::sync::Mutex;

use super::{AlertSource, Bound, Created, NextLink, Page, PageRequest, SourceError};
use crate::alert::Alert;
use crate::alert::time::ApiTime;

/// One alert of the fake world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeAlert {
    /// Its id.
    pub id: String,
    /// `lastUpdateTime`.
    pub updated: ApiTime,
    /// `alertCreationTime` (`None`: null).
    pub(crate) created: Option<ApiTime>,
    /// Bumped on every change, so versions differ in content.
    pub version: u32,
    /// Calls to come before it is visible (late ingestion); 0 = visible.
    pub(crate) hidden_for: u32,
    /// Graph's `serviceSource`: the alert is sent in Graph's shape when set.
    service: Option<&'static str>,
}

/// The product a tenant reads by default, as the fake's `services` says.
const ENDPOINT: &str = "microsoftDefenderForEndpoint";

impl FakeAlert {
    /// A visible alert.
    pub fn new(id: impl Into<String>, updated: ApiTime, created: Option<ApiTime>) -> Self {
        FakeAlert {
            id: id.into(),
            updated,
            created,
            version: 0,
            hidden_for: 0,
            service: None,
        }
    }

    /// The same alert from Graph, as product `service` reports it.
    #[cfg(test)]
    pub(crate) fn with_service(mut self, service: &'static str) -> Self {
        self.service = Some(service);
        self
    }

    /// Its JSON, as the API would send it.
    pub(crate) fn json(&self) -> String {
        if let Some(service) = self.service {
            return serde_json::json!({
                "id": self.id,
                "lastUpdateDateTime": self.updated.to_api_string(),
                "createdDateTime": self.created.map(|c| c.to_api_string()),
                "serviceSource": service,
                "status": if self.version % 3 == 2 { "resolved" } else { "new" },
                "title": format!("alert {} v{}", self.id, self.version),
            })
            .to_string();
        }
        serde_json::json!({
            "id": self.id,
            "lastUpdateTime": self.updated.to_api_string(),
            "alertCreationTime": self.created.map(|c| c.to_api_string()),
            "status": if self.version % 3 == 2 { "Resolved" } else { "New" },
            "title": format!("alert {} v{}", self.id, self.version),
        })
        .to_string()
    }
}

/// How the fake treats `$orderby`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrderBy {
    /// Honoured.
    #[default]
    Sorted,
    /// Answered with 400.
    Refused,
    /// Accepted, but pages come in reverse id order.
    Ignored,
    /// Accepted, but pages come in creation order: often close to update order, so pages look
    /// sorted while an alert updated later waits behind newer ones.
    ByCreation,
}

/// How a hostile server departs from what Graph documents. All off by default.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hostile {
    /// A null comparison on the creation time is answered 400 "Invalid filter clause".
    pub(crate) refuse_null: bool,
    /// `$skip` above this is answered 400 (Graph: 500); the source says so as its `max_skip`.
    pub(crate) max_skip: Option<u32>,
    /// `@odata.nextLink` on every page after which more match (as Graph does); an exactly full
    /// last page has none.
    pub(crate) links: bool,
    /// Every nextLink leads back to the page it came with.
    pub(crate) looping_links: bool,
    /// The time and creation clauses of `$filter` are ignored.
    pub(crate) ignore_filter: bool,
    /// Alerts of other products are sent whatever `serviceSource` says.
    pub(crate) ignore_service: bool,
    /// Pages carry this many alerts more than `$top`.
    pub(crate) oversize: usize,
    /// Pages hold at most this many alerts, and say nothing of the rest (no nextLink).
    pub(crate) cap: Option<usize>,
    /// The `Date` header is always this.
    pub(crate) date: Option<ApiTime>,
}

/// What a test may do to the world before each call.
type Mutator = Box<dyn FnMut(u64, &mut Vec<FakeAlert>) + Send>;

/// The fake source.
pub struct FakeSource {
    state: Mutex<State>,
    order: OrderBy,
    /// How far the server's clock is behind this machine's (its `Date` header), if it sends one.
    server_behind: Option<std::time::Duration>,
    hostile: Hostile,
}

struct State {
    alerts: Vec<FakeAlert>,
    calls: u64,
    mutate: Option<Mutator>,
    /// What each nextLink handed out asks for: the request and its `$skip`.
    links: Vec<(PageRequest, u32)>,
}

impl std::fmt::Debug for FakeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSource")
            .field("order", &self.order)
            .finish_non_exhaustive()
    }
}

impl FakeSource {
    /// A world of `alerts`.
    pub fn new(alerts: Vec<FakeAlert>, order: OrderBy) -> Self {
        FakeSource {
            state: Mutex::new(State {
                alerts,
                calls: 0,
                mutate: None,
                links: Vec::new(),
            }),
            order,
            server_behind: None,
            hostile: Hostile::default(),
        }
    }

    /// The server departs from Graph's documented behaviour as `hostile` says.
    #[cfg(test)]
    pub(crate) fn with_hostile(mut self, hostile: Hostile) -> Self {
        self.hostile = hostile;
        self
    }

    /// The server sends a `Date` this far behind this machine's clock.
    #[cfg(test)]
    pub(crate) fn with_server_clock_behind(mut self, by: std::time::Duration) -> Self {
        self.server_behind = Some(by);
        self
    }

    /// Calls `f(call number, world)` before every call from now on (`None` stops it).
    pub fn set_mutator(&self, f: Option<Mutator>) {
        self.lock().mutate = f;
    }

    /// Changes the world now.
    #[cfg(test)]
    pub(crate) fn with_world<T>(&self, f: impl FnOnce(&mut Vec<FakeAlert>) -> T) -> T {
        f(&mut self.lock().alerts)
    }

    /// Every alert's latest version, visible or not, of the products the tenant reads: what a
    /// perfect client ends up with.
    #[cfg(test)]
    pub(crate) fn truth(&self) -> Vec<FakeAlert> {
        let mut all = self.lock().alerts.clone();
        all.retain(|a| a.service.is_none_or(|s| s == ENDPOINT));
        all
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn matches(a: &FakeAlert, r: &PageRequest, h: &Hostile) -> bool {
    let t = a.updated;
    let bound = match r.bound {
        Bound::AtOrAfter(b) => t >= b,
        Bound::After(b) => t > b,
        Bound::Exactly(b) => t == b,
    };
    let created = match (r.created, a.created) {
        (None, _) => true,
        (Some(Created::Missing), c) => c.is_none(),
        (Some(Created::Within(None, None)), c) => c.is_some(),
        (Some(Created::Within(_, _)), None) => false,
        (Some(Created::Within(lo, hi)), Some(c)) => {
            lo.is_none_or(|lo| c >= lo) && hi.is_none_or(|hi| c < hi)
        }
    };
    let time = bound && created && r.before.is_none_or(|b| t < b);
    let service = a.service.is_none_or(|s| s == ENDPOINT);
    (time || h.ignore_filter) && (service || h.ignore_service) && a.hidden_for == 0
}

fn refused(code: &str, message: &str) -> SourceError {
    SourceError::Refused {
        api: "fake",
        status: 400,
        code: crate::redact::ServerText::new(code),
        message: crate::redact::ServerText::new(message),
        advice: Default::default(),
    }
}

impl FakeSource {
    /// One call: the world moves, then the page of `r` at `skip` is answered; `link` is the
    /// nextLink that asked for it, if one did.
    fn answer(&self, r: &PageRequest, skip: u32, link: Option<usize>) -> Result<Page, SourceError> {
        let h = &self.hostile;
        let mut guard = self.lock();
        let s = &mut *guard;
        s.calls += 1;
        for a in &mut s.alerts {
            a.hidden_for = a.hidden_for.saturating_sub(1);
        }
        if let Some(m) = s.mutate.as_mut() {
            m(s.calls, &mut s.alerts);
        }
        if r.ordered && self.order == OrderBy::Refused {
            return Err(refused("InvalidOrderBy", "$orderby is not supported"));
        }
        if h.refuse_null
            && matches!(
                r.created,
                Some(Created::Missing | Created::Within(None, None))
            )
        {
            return Err(refused("BadRequest", "Invalid filter clause"));
        }
        // A link carries the server's own continuation, which no `$skip` limit applies to.
        if link.is_none() && h.max_skip.is_some_and(|m| skip > m) {
            return Err(refused(
                "BadRequest",
                "The limit of '500' for Skip query has been exceeded.",
            ));
        }
        let mut hits: Vec<&FakeAlert> = s.alerts.iter().filter(|a| matches(a, r, h)).collect();
        if r.ordered && self.order == OrderBy::Sorted {
            hits.sort_by(|a, b| a.updated.cmp(&b.updated).then(a.id.cmp(&b.id)));
        } else if self.order == OrderBy::ByCreation {
            hits.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        } else {
            // An order that is stable for `$skip` but unrelated to time.
            hits.sort_by(|a, b| b.id.cmp(&a.id));
        }
        let take = h
            .cap
            .map_or(r.top as usize, |c| c.min(r.top as usize))
            .saturating_add(h.oversize);
        let total = hits.len();
        let alerts: Vec<Alert> = hits
            .into_iter()
            .skip(skip as usize)
            .take(take)
            .map(|a| Alert::parse(&a.json()).expect("the fake's JSON is valid"))
            .collect();
        let more = (skip as usize).saturating_add(take) < total && h.cap.is_none();
        let next = (h.links && more).then(|| {
            let n = match link {
                Some(n) if h.looping_links => n,
                _ => {
                    let at = u32::try_from(alerts.len()).unwrap_or(u32::MAX);
                    s.links.push((*r, skip.saturating_add(at)));
                    s.links.len() - 1
                }
            };
            NextLink(
                url::Url::parse(&format!("https://fake.invalid/next?n={n}")).expect("a valid URL"),
            )
        });
        Ok(Page {
            more: next.is_some(),
            next,
            next_text: None,
            received: alerts.len(),
            alerts,
            rejected: Vec::new(),
            served_at: h
                .date
                .or(self.server_behind.map(|b| ApiTime::now().minus(b))),
        })
    }
}

impl AlertSource for FakeSource {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn fetch(&self, r: &PageRequest) -> Result<Page, SourceError> {
        self.answer(r, r.skip, None)
    }

    async fn follow(&self, link: &NextLink) -> Result<Page, SourceError> {
        let n: Option<usize> = link
            .0
            .query_pairs()
            .find(|(k, _)| k == "n")
            .and_then(|(_, v)| v.parse().ok());
        let found = n.and_then(|n| self.lock().links.get(n).copied().map(|l| (n, l)));
        match found {
            Some((n, (r, skip))) => self.answer(&r, skip, Some(n)),
            None => Err(refused("BadRequest", "The skip token is not valid.")),
        }
    }

    fn max_skip(&self) -> u32 {
        self.hostile.max_skip.unwrap_or(u32::MAX)
    }

    fn calls(&self) -> u64 {
        self.lock().calls
    }
}
